package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
)

// hostKeyError is a node's host key that HostKeyCallback refused, as dialNode sees it.
type hostKeyError struct{ err error }

func (e *hostKeyError) Error() string { return "refusing the node's host key: " + e.err.Error() }
func (e *hostKeyError) Unwrap() error { return e.err }

// nodeHostKeyCallback marks check's refusals as hostKeyErrors, so the user can be told
// that the node, not the login, was the problem.
func nodeHostKeyCallback(check ssh.HostKeyCallback) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		if err := check(host, remote, key); err != nil {
			return &hostKeyError{err}
		}
		return nil
	}
}

// NodeFailureMessage is what the user reads when the enforcement point, having allowed the
// session, could not open an SSH connection to the node as login: the node's host key was
// refused, the node refused the login, or it could not be reached. It says which and what to
// do; the details (addresses, key types, the error chain) go to the cluster's log only.
func NodeFailureMessage(node, cluster, login string, err error) string {
	var hk *hostKeyError
	switch {
	case errors.As(err, &hk):
		return fmt.Sprintf("node %q in cluster %s did not present a host certificate of cluster %s for that name, so it was not trusted; ask an admin of %s to sign its host key (tetherctl auth sign --host=%s)",
			node, cluster, cluster, cluster, node)
	case err != nil && strings.Contains(err.Error(), "ssh: unable to authenticate"):
		// x/crypto/ssh has no typed error for a server refusing every method offered.
		// The usual cause first, for a node agent and an OpenSSH server alike.
		return fmt.Sprintf("node %q in cluster %s refused the login %q; ask an admin of %s to check that the node has the Unix user %s (an OpenSSH server also needs the cluster's openssh CA as TrustedUserCAKeys: tetherctl auth export --type=openssh)",
			node, cluster, login, cluster, login)
	default:
		return fmt.Sprintf("node %q in cluster %s refused the connection or could not be reached; try again later or ask an admin", node, cluster)
	}
}

// closeOnEnd closes the user's and the node's session channels once the relay between them
// has ended (relayed closed). When ctx ends first, the session is being cut while its program
// runs (a policy change, the node removed, the user's connection gone): the node is asked to
// kill the program before the channel closes, since OpenSSH's sshd leaves a command without a
// terminal running when its channel just closes.
func closeOnEnd(ctx context.Context, relayed <-chan struct{}, user io.Closer, node ssh.Channel) {
	select {
	case <-ctx.Done():
		_, _ = node.SendRequest("signal", false, ssh.Marshal(struct{ Signal string }{"KILL"}))
	case <-relayed:
	}
	user.Close()
	node.Close()
}
