// Package testproc runs Tether's own binaries (tetherd, tetherctl, tether) and the real
// OpenSSH server as separate processes for end-to-end tests: it builds the binaries once per
// test binary, starts daemons on free 127.0.0.1 ports with their own data directories, runs
// tetherctl against them, runs tether as a user with a profile directory of their own (signing
// up and answering one-time codes the way an authenticator app would), and stops every
// process it started when the test ends, also when the test fails or the test binary dies.
package testproc
