package web

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetherproject/tether/gateway/auth"
)

// A node stream is tether proxy ssh's connection to a node over the web port's TLS, as
// Teleport's tsh proxy ssh reaches its proxy: the user authenticates as for the node list
// (the TLS client certificate and the SSH certificate of one key), the proxy decides and
// opens the route as its SSH entry's proxy: subsystem does, and the connection then
// carries the user's SSH connection to the enforcement point. It saves the SSH layer the
// subsystem adds around that connection (a cipher, packets and channel windows in tether
// proxy ssh and in the proxy).
//
//	GET /webapi/ssh/stream?target=NODE:PORT@CLUSTER
//	Connection: Upgrade
//	Upgrade: tether-node-stream/1
//	Tether-SSH-Certificate: <the SSH certificate, authorized_keys form>
//
// The proxy answers a refusal as any user route does (a JSON error: 401, 403 with what
// the user reads, 426 without the upgrade), or 101 Switching Protocols. After it, the
// user sends raw bytes (a TLS close_notify ends them), and the proxy sends frames: a type
// byte, a 4-byte big-endian length, the payload. Data frames ('D') hold 1 to
// MaxStreamFrame bytes of the node's side; one end frame ('E') closes the stream with the
// exit status (4 bytes) and what the user reads (at most MaxStreamEndMessage bytes), as
// the subsystem's exit-status and stderr do.
const (
	NodeStreamPath     = "/webapi/ssh/stream"
	NodeStreamProtocol = "tether-node-stream/1"

	// MaxStreamFrame is the largest data frame.
	MaxStreamFrame = 1 << 20
	// MaxStreamEndMessage is the longest message of an end frame.
	MaxStreamEndMessage = 4096

	frameData = 'D'
	frameEnd  = 'E'
)

// ErrBadStreamFrame is a node stream frame that breaks the format.
var ErrBadStreamFrame = errors.New("malformed node stream frame")

// NodeRoute is a route to a node, opened and ready to carry the user's stream.
type NodeRoute interface {
	// Carry copies between user and the node until either side ends. When a decision
	// no longer allows the route (or the certificate expires) it calls say with what the
	// user reads, ends the route and reports true.
	Carry(ctx context.Context, user io.ReadWriter, say func(why string)) (cut bool)
	// Close gives up a route that will not be carried.
	Close()
}

// NodeRouteOpener opens the route to target (NODE[:PORT][@CLUSTER]) for req's user; when
// it cannot, route is nil and msg is what the user reads.
type NodeRouteOpener func(ctx context.Context, req UserRequest, target string) (route NodeRoute, msg string)

// HandleNodeStreams adds GET /webapi/ssh/stream: the user authenticates as for the node
// list, open decides and opens the route, and the upgraded connection carries it.
func (s *Server) HandleNodeStreams(users *auth.Users, open NodeRouteOpener) {
	s.mux.HandleFunc("GET "+NodeStreamPath, func(w http.ResponseWriter, r *http.Request) {
		if !headerHasToken(r.Header, "Connection", "upgrade") || !strings.EqualFold(r.Header.Get("Upgrade"), NodeStreamProtocol) {
			w.Header().Set("Upgrade", NodeStreamProtocol)
			writeError(w, http.StatusUpgradeRequired, "this route carries tether proxy ssh's stream: it needs Connection: Upgrade and Upgrade: "+NodeStreamProtocol)
			return
		}
		req, ok := s.userRequest(w, r, users)
		if !ok {
			return
		}
		target := r.URL.Query().Get("target")
		route, msg := open(r.Context(), req, target)
		if route == nil {
			writeError(w, http.StatusForbidden, msg)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			route.Close()
			s.log.Error("taking over a node stream's connection", "remote", r.RemoteAddr, "err", err)
			writeError(w, http.StatusInternalServerError, "the proxy could not carry the stream; try again")
			return
		}
		defer conn.Close()
		// The server's end ends the stream (Shutdown does not wait for connections
		// handlers took over).
		stop := context.AfterFunc(r.Context(), func() { conn.Close() })
		defer stop()
		_ = conn.SetDeadline(time.Time{})
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + NodeStreamProtocol + "\r\n\r\n")
		if err := brw.Flush(); err != nil {
			route.Close()
			return
		}
		var (
			mu  sync.Mutex
			why string
		)
		user := &streamUser{r: brw.Reader, w: &frameWriter{w: conn}}
		cut := route.Carry(r.Context(), user, func(reason string) {
			mu.Lock()
			defer mu.Unlock()
			if why == "" {
				why = reason
			}
		})
		code, end := uint32(0), ""
		if cut {
			mu.Lock()
			code, end = 1, why
			mu.Unlock()
		}
		_ = writeEndFrame(conn, code, end)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	})
}

// headerHasToken reports whether a comma-separated header holds token (any case).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// streamUser is the proxy's side of an upgraded node stream: it reads the user's raw
// bytes and writes data frames.
type streamUser struct {
	r io.Reader
	w *frameWriter
}

func (u *streamUser) Read(p []byte) (int, error)  { return u.r.Read(p) }
func (u *streamUser) Write(p []byte) (int, error) { return u.w.Write(p) }

// frameWriter writes what it is given as data frames, each header and payload in one
// write (one TLS record train, not a record for the header alone).
type frameWriter struct {
	w   io.Writer
	buf []byte
}

func (f *frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), MaxStreamFrame)]
		f.buf = append(append(f.buf[:0], frameData, 0, 0, 0, 0), chunk...)
		binary.BigEndian.PutUint32(f.buf[1:5], uint32(len(chunk)))
		if _, err := f.w.Write(f.buf); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

// writeEndFrame writes the end frame: the exit status and msg, cut to
// MaxStreamEndMessage bytes.
func writeEndFrame(w io.Writer, code uint32, msg string) error {
	if len(msg) > MaxStreamEndMessage {
		msg = msg[:MaxStreamEndMessage]
	}
	b := make([]byte, 9, 9+len(msg))
	b[0] = frameEnd
	binary.BigEndian.PutUint32(b[1:5], uint32(4+len(msg)))
	binary.BigEndian.PutUint32(b[5:9], code)
	_, err := w.Write(append(b, msg...))
	return err
}

// StreamEnd is how a node stream ended: the exit status and what the proxy said.
type StreamEnd struct {
	Code    int
	Message string
}

// StreamReader reads the node's side of a node stream from the proxy's frames: Read
// returns the data, then io.EOF at the end frame, whose status End gives. A stream that
// stops without an end frame reads io.ErrUnexpectedEOF; a frame that breaks the format,
// ErrBadStreamFrame.
type StreamReader struct {
	r    *bufio.Reader
	left int // data bytes left in the current frame
	end  atomic.Pointer[StreamEnd]
	err  error
}

// NewStreamReader reads frames from r (the reader that read the 101 answer, so that
// nothing it buffered is lost).
func NewStreamReader(r *bufio.Reader) *StreamReader { return &StreamReader{r: r} }

// End is the end frame's status, or nil before it was read. It may be called while
// another goroutine reads.
func (s *StreamReader) End() *StreamEnd { return s.end.Load() }

func (s *StreamReader) Read(p []byte) (int, error) {
	for s.left == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.err = s.next()
	}
	n, err := s.r.Read(p[:min(len(p), s.left)])
	s.left -= n
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		s.left, s.err = 0, err
	}
	return n, err
}

// next reads a frame header: a data frame sets left; an end frame is read whole and
// ends the stream (io.EOF).
func (s *StreamReader) next() error {
	var h [5]byte
	if _, err := io.ReadFull(s.r, h[:]); err != nil {
		return io.ErrUnexpectedEOF
	}
	n := binary.BigEndian.Uint32(h[1:])
	switch h[0] {
	case frameData:
		if n == 0 || n > MaxStreamFrame {
			return fmt.Errorf("%w: a data frame of %d bytes", ErrBadStreamFrame, n)
		}
		s.left = int(n)
		return nil
	case frameEnd:
		if n < 4 || n > 4+MaxStreamEndMessage {
			return fmt.Errorf("%w: an end frame of %d bytes", ErrBadStreamFrame, n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(s.r, b); err != nil {
			return io.ErrUnexpectedEOF
		}
		code := binary.BigEndian.Uint32(b)
		if code > 255 {
			return fmt.Errorf("%w: exit status %d", ErrBadStreamFrame, code)
		}
		s.end.Store(&StreamEnd{Code: int(code), Message: string(b[4:])})
		return io.EOF
	default:
		return fmt.Errorf("%w: unknown type %q", ErrBadStreamFrame, h[0])
	}
}

// NodeStreamRequest is the request that opens a node stream to target with the SSH
// certificate sshCert (authorized_keys form) on a TLS connection to host (HOST:PORT).
func NodeStreamRequest(host, target, sshCert string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, "https://"+host+NodeStreamPath+"?target="+url.QueryEscape(target), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", NodeStreamProtocol)
	req.Header.Set(SSHCertHeader, strings.TrimSpace(sshCert))
	return req, nil
}
