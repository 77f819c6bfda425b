package tunnel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/transport"
	"github.com/tetherproject/tether/transport/frame"
)

// The leaf's typed services (frame.ServiceNodeList, frame.ServiceUserRoles): the root asks
// on a dial stream with the user's certificate, the leaf verifies that certificate itself
// against the user CA of the root whose tunnel carries the request, decides with its own
// engine, writes one JSON answer and closes the stream. The root reads at most
// MaxServiceAnswer bytes within its context's deadline and decodes strictly: a leaf is
// trusted for what it says about its own nodes, never for the root's memory or time.

// ServiceFunc answers a typed service request on the leaf. root is the trusted cluster
// whose tunnel carried req (the only root whose user CA may have signed req.UserCert).
// To refuse it returns an error; a transport.Deny reason reaches the root.
type ServiceFunc func(ctx context.Context, root string, req *frame.DialRequest) ([]byte, error)

// Limits of a service answer, checked by the root.
const (
	// MaxServiceAnswer bounds the bytes the root reads of one answer.
	MaxServiceAnswer = 16 << 20
	// MaxListedNodes bounds the nodes of one node list answer.
	MaxListedNodes = 100_000
	// MaxNodeLabels bounds the labels of one node (auth refuses to store more).
	MaxNodeLabels = auth.MaxNodeLabels
	// MaxLabelBytes bounds a label's key and value (auth.ValidNodeLabel).
	MaxLabelBytes = auth.MaxNodeLabelBytes
	// MaxLogins bounds the logins (and roles) of one answer entry.
	MaxLogins = 256
	// MaxNotes bounds the notes of a user roles answer.
	MaxNotes = 64
)

// LeafNode is one node of a leaf's node list: a node its policy lets the user reach, with
// the logins an ssh.session there would be allowed with.
type LeafNode struct {
	Name     string            `json:"name"`
	Addr     string            `json:"addr,omitempty"`
	Hostname string            `json:"hostname,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Logins   []string          `json:"logins"`
}

// NodeListAnswer is the leaf's answer to frame.ServiceNodeList.
type NodeListAnswer struct {
	Nodes []LeafNode `json:"nodes"`
}

// UserRolesAnswer is the leaf's answer to frame.ServiceUserRoles: the local roles its
// role_map gives the user, and why none or some were left out.
type UserRolesAnswer struct {
	Roles []string `json:"roles"`
	Notes []string `json:"notes,omitempty"`
}

// ErrBadAnswer is what a leaf's malformed, oversized or otherwise unreadable answer is.
var ErrBadAnswer = errors.New("the leaf sent an answer the root cannot accept")

// loginRE is the portable Unix login rule resource validation applies.
var loginRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}[$]?$`)

// roleName: what a resource name may be (1 to 253 bytes, printable, no whitespace).
func roleName(s string) bool {
	return s != "" && len(s) <= 253 && printable(s) && !strings.ContainsFunc(s, unicode.IsSpace)
}

func badAnswer(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadAnswer, fmt.Sprintf(format, a...))
}

// decodeStrict decodes exactly one JSON value of data into v: unknown fields and trailing
// data are refused.
func decodeStrict(data []byte, v any) error {
	if len(data) > MaxServiceAnswer {
		return badAnswer("%d bytes, more than %d", len(data), MaxServiceAnswer)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badAnswer("not the expected JSON (%v)", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badAnswer("data after the answer")
	}
	return nil
}

// DecodeNodeList reads a leaf's node list answer and checks every entry: node names are
// node names, labels and logins are bounded, logins are login names, no node twice.
func DecodeNodeList(data []byte) ([]LeafNode, error) {
	var a NodeListAnswer
	if err := decodeStrict(data, &a); err != nil {
		return nil, err
	}
	if len(a.Nodes) > MaxListedNodes {
		return nil, badAnswer("%d nodes, more than %d", len(a.Nodes), MaxListedNodes)
	}
	seen := make(map[string]bool, len(a.Nodes))
	for i, n := range a.Nodes {
		if err := frame.ValidNodeName(n.Name); err != nil {
			return nil, badAnswer("node %d: %v", i, err)
		}
		if seen[n.Name] {
			return nil, badAnswer("node %q listed twice", n.Name)
		}
		seen[n.Name] = true
		if err := CheckLeafNode(n); err != nil {
			return nil, err
		}
	}
	return a.Nodes, nil
}

// CheckLeafNode is DecodeNodeList's check of one entry (but for duplicates): a leaf sends
// only entries that pass it, since the root refuses a whole list for one that does not.
func CheckLeafNode(n LeafNode) error {
	if err := frame.ValidNodeName(n.Name); err != nil {
		return badAnswer("%v", err)
	}
	if len(n.Addr) > 290 || len(n.Hostname) > 253 || !printable(n.Addr) || !printable(n.Hostname) {
		return badAnswer("node %q: address or hostname too long or not printable", n.Name)
	}
	if len(n.Labels) > MaxNodeLabels {
		return badAnswer("node %q: %d labels, more than %d", n.Name, len(n.Labels), MaxNodeLabels)
	}
	for k, v := range n.Labels {
		if !auth.ValidNodeLabel(k, v) {
			return badAnswer("node %q: a label is empty, longer than %d bytes or not printable", n.Name, MaxLabelBytes)
		}
	}
	if len(n.Logins) == 0 || len(n.Logins) > MaxLogins {
		return badAnswer("node %q: %d logins (want 1 to %d)", n.Name, len(n.Logins), MaxLogins)
	}
	for _, l := range n.Logins {
		if !loginRE.MatchString(l) {
			return badAnswer("node %q: %q is not a login", n.Name, l)
		}
	}
	return nil
}

// DecodeUserRoles reads a leaf's user roles answer: role names are names, bounded, and
// the notes are short printable text.
func DecodeUserRoles(data []byte) (*UserRolesAnswer, error) {
	var a UserRolesAnswer
	if err := decodeStrict(data, &a); err != nil {
		return nil, err
	}
	if len(a.Roles) > MaxLogins || len(a.Notes) > MaxNotes {
		return nil, badAnswer("%d roles and %d notes (limits %d and %d)", len(a.Roles), len(a.Notes), MaxLogins, MaxNotes)
	}
	for _, r := range a.Roles {
		if !roleName(r) {
			return nil, badAnswer("%q is not a role name", r)
		}
	}
	for _, n := range a.Notes {
		if len(n) > 1024 || !printable(n) {
			return nil, badAnswer("a note is longer than 1024 bytes or not printable")
		}
	}
	if a.Roles == nil {
		a.Roles = []string{}
	}
	return &a, nil
}

// printable: valid UTF-8 without control characters (what reaches a user's terminal).
func printable(s string) bool { return auth.Printable(s) }

// SetServices installs the handler of typed service requests (nil: they are refused).
func (l *Leaf) SetServices(f ServiceFunc) {
	if f == nil {
		l.services.Store(nil)
		return
	}
	l.services.Store(&f)
}

// serve answers a typed service request from root: the answer is computed before the dial
// is accepted, so a refusal's reason reaches the root as the dial answer.
func (l *Leaf) serve(ctx context.Context, root string, req *frame.DialRequest) (func(net.Conn), error) {
	f := l.services.Load()
	if f == nil {
		l.log.Warn("refused a tunnel service request: this leaf serves none", "root", root, "service", req.Service.String())
		return nil, transport.Deny("this leaf cluster does not serve " + req.Service.String() + " requests")
	}
	answer, err := (*f)(ctx, root, req)
	if err != nil {
		return nil, err
	}
	return func(c net.Conn) {
		_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(answer); err != nil {
			l.log.Info("writing a service answer", "root", root, "service", req.Service.String(), "err", err)
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}, nil
}

// Ask sends a typed service request to leaf through its tunnel on behalf of the user
// whose certificate (SSH wire form) and address are given, and returns the leaf's answer:
// at most MaxServiceAnswer bytes, read within ctx. Errors are those of DialLeaf (offline,
// elsewhere, the leaf's refusal as a *transport.DialDeniedError), ErrBadAnswer for an
// oversized answer, or frame.ErrServiceUnsupported for a leaf of an older version.
func (r *Root) Ask(ctx context.Context, leaf string, svc frame.Service, userCert []byte, clientAddr string) ([]byte, error) {
	if svc == frame.ServiceSSH {
		return nil, errors.New("tunnel: Ask is for typed services; dial SSH with DialLeaf")
	}
	conn, err := r.dial(ctx, leaf, &frame.DialRequest{Service: svc, UserCert: userCert, ClientAddr: clientAddr})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	data, err := io.ReadAll(io.LimitReader(conn, MaxServiceAnswer+1))
	if ctx.Err() != nil {
		return nil, fmt.Errorf("cluster %s did not answer in time: %w", leaf, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("reading the answer of cluster %s: %w", leaf, err)
	}
	if len(data) > MaxServiceAnswer {
		return nil, badAnswer("cluster %s sent more than %d bytes", leaf, MaxServiceAnswer)
	}
	return data, nil
}
