// Package e2e runs the seed guide's trusted-cluster steps against real tetherd processes
// (root and leaf, each with its own data dir and port on 127.0.0.1) with the real tetherctl
// binary. It has only tests; the binaries are built from this module when the tests run.
package e2e
