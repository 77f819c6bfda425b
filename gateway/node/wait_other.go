//go:build !linux

package node

// waitExited does not wait where waitid is not available: the program is forgotten when
// it is reaped, a moment later than on Linux.
func waitExited(int) {}
