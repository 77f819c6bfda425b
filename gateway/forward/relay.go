package forward

import (
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/internal/relaycopy"
)

// refusedRequests are session requests never passed to a node: X11 would give the node a
// way back to the user's display. Agent forwarding is decided per request (allow).
var refusedRequests = map[string]bool{
	"x11-req": true,
}

// relay passes a session's data and requests between the user's channel and the node's
// until the node closes its channel or the user closes theirs. Requests (pty-req, env,
// exec, shell, subsystem, window-change, signal, and the node's exit-status and
// exit-signal) are passed as they are, with the other side's reply. The user's channel
// is closed only after the node's output has been copied, so no output is lost after
// exit-status. It returns the bytes sent to the node and to the user.
// allow, when not nil, is asked about every user request first; false refuses it.
func relay(uch ssh.Channel, ureqs <-chan *ssh.Request, nch ssh.Channel, nreqs <-chan *ssh.Request, allow func(*ssh.Request) bool) (up, down int64) {
	var upN, downN atomic.Int64
	var out sync.WaitGroup
	out.Add(2)
	go func() {
		defer out.Done()
		n, _ := relaycopy.Copy(uch, nch)
		downN.Add(n)
	}()
	go func() {
		defer out.Done()
		n, _ := io.Copy(uch.Stderr(), nch.Stderr())
		downN.Add(n)
	}()
	go func() {
		n, _ := relaycopy.Copy(nch, uch)
		upN.Add(n)
		_ = nch.CloseWrite()
	}()
	userDone := make(chan struct{})
	// inFlight is held while a user's request is passed on and answered, so that the
	// user's channel is not closed between the node's answer and the user's: a command
	// that ends at once (exec "true") would otherwise read as "exec request failed" to
	// OpenSSH, its output already shown.
	var inFlight sync.Mutex
	go func() {
		defer close(userDone)
		for req := range ureqs {
			inFlight.Lock()
			if refusedRequests[req.Type] || (allow != nil && !allow(req)) {
				_ = req.Reply(false, nil)
				inFlight.Unlock()
				continue
			}
			ok, err := nch.SendRequest(req.Type, req.WantReply, req.Payload)
			if err != nil {
				ok = false
			}
			if req.WantReply {
				_ = req.Reply(ok, nil)
			}
			inFlight.Unlock()
		}
		// The user closed the session: close the node's side too.
		nch.Close()
	}()
	for req := range nreqs {
		ok, err := uch.SendRequest(req.Type, req.WantReply, req.Payload)
		if err != nil {
			ok = false
		}
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
	}
	// The node closed its channel: finish copying its output and answering the request
	// in flight (the node's close ends its wait), then end the user's.
	out.Wait()
	inFlight.Lock()
	inFlight.Unlock() //nolint:staticcheck // an empty section: waits for the request in flight
	_ = uch.CloseWrite()
	uch.Close()
	<-userDone
	return upN.Load(), downN.Load()
}
