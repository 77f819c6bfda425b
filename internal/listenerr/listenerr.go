// Package listenerr says why tetherd could not listen on an address it was configured with,
// in words an operator acts on (which setting, which address, what to do), instead of Go's
// "listen tcp HOST:PORT: bind: ..." chain.
package listenerr

import (
	"errors"
	"fmt"
	"syscall"
)

// Wrap explains err, the failure to listen on addr, which the configuration setting names.
func Wrap(setting, addr string, err error) error {
	var why string
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		why = "the address is already in use (another tetherd, or another program, listens there): choose a free port or stop the other program"
	case errors.Is(err, syscall.EACCES):
		why = "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE): choose a port above 1023 or give tetherd the capability"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		why = "no network interface of this machine has that address: use one of its addresses, or 0.0.0.0 for all"
	default:
		var se syscall.Errno
		if errors.As(err, &se) {
			why = se.Error()
		} else {
			why = err.Error()
		}
	}
	return fmt.Errorf("%s %s: %s", setting, addr, why)
}
