// Package e2e is the seed guide (shared/seed/trusted-clusters-guide.txt, steps 1–6) as an
// executable scenario: a root and a leaf tetherd, a Tether node agent and a real OpenSSH
// server as the leaf's nodes, the tetherctl and tether binaries and the real OpenSSH client,
// each a separate process on 127.0.0.1, driven in the guide's order with one subtest per
// step, plus the bad input of issue 10 (unknown cluster or node, a login the user lacks, an
// expired or incomplete profile, an offline leaf, a node that refuses). It has only tests;
// internal/testproc builds and runs the processes.
package e2e
