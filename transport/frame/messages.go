package frame

import (
	"fmt"
	"math"
	"net"
	"time"
)

// Hello is the leaf's first frame on a new tunnel. Its layout is frozen across versions.
type Hello struct {
	MinVersion, MaxVersion uint16
	// KeepAliveInterval and KeepAliveCount are what the leaf proposes; the root decides.
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// Cluster is the leaf cluster name the leaf claims; the root checks it against the
	// name its certificate verified for.
	Cluster string
	// Agent describes the leaf's software, for logs.
	Agent string
	// Bulk (tag 7, optional; older roots skip it): the leaf keeps an SSH-over-TCP tunnel
	// beside its QUIC one for user session streams. On a QUIC tunnel it asks whether the
	// root sends sessions to such a tunnel; on an SSH tunnel it marks the tunnel as one
	// the leaf keeps (never drains) while QUIC is up.
	Bulk bool
}

// HelloAck is the root's answer to a hello. Reason non-empty means refused: the tunnel
// closes, and the leaf waits at least RetryAfter before it tries again.
type HelloAck struct {
	Version           uint16
	KeepAliveInterval time.Duration
	KeepAliveCount    int
	// Replica names the root proxy replica that answered.
	Replica string
	// Replicas are the tunnel endpoints of every root replica the leaf should keep a
	// tunnel to.
	Replicas   []Endpoint
	RetryAfter time.Duration
	Reason     string
	// Bulk (tag 8, optional; older leaves skip it) answers a hello that set Bulk: this
	// root sends user session streams to the leaf's SSH tunnel marked Bulk when it is
	// healthy. An older root never sets it, and the leaf then opens no such tunnel.
	Bulk bool
}

// Endpoint is where a root replica listens for tunnels: UDP for QUIC and TCP for the
// SSH fallback.
type Endpoint struct {
	QUIC, TCP string
}

// Heartbeat is the leaf's periodic status on the control stream.
type Heartbeat struct {
	Seq uint64
	// State is the leaf's own account of its health ("ok", or what is wrong).
	State string
	// ActiveStreams is the number of dial streams the leaf is serving on this tunnel.
	ActiveStreams uint64
}

// HeartbeatReply answers a heartbeat. ReconnectAfter, when set, tells the leaf how long to
// wait before reconnecting should this tunnel drop (a root spreads reconnects this way).
type HeartbeatReply struct {
	Seq            uint64
	ReconnectAfter time.Duration
	Replicas       []Endpoint
}

// Service is what a dial stream asks of the leaf. The zero value, ServiceSSH, is the only
// one versions 1 and 2 know.
type Service uint8

// Services a root may ask a leaf for. Every other value is malformed.
const (
	// ServiceSSH connects the stream to the registered node DialRequest.Node: the stream
	// then carries the user's SSH connection to the leaf's enforcement point.
	ServiceSSH Service = 0
	// ServiceNodeList asks for the leaf's nodes the user of DialRequest.UserCert may
	// reach, decided by the leaf's own policy; the leaf answers on the stream and closes.
	ServiceNodeList Service = 1
	// ServiceUserRoles asks which local roles the leaf maps the user of
	// DialRequest.UserCert to (its role_map, its engine); the leaf answers and closes.
	ServiceUserRoles Service = 2
	// ServiceRootLocks pushes the root's locks to the leaf (Teleport's lock replication):
	// once the leaf accepts, the root writes the whole set as one JSON document and closes
	// its side; the leaf stores them scoped to that root's users, answers and closes. A
	// leaf that predates it refuses the request as malformed.
	ServiceRootLocks Service = 3
	// ServiceTrustCAs exchanges the SSH CAs each side keeps a copy of (a rotation reaches
	// the other side): the root writes its user and host CAs as one JSON document and
	// closes its side; the leaf stores them and answers with its host CA, and closes. A
	// leaf that predates it refuses the request as malformed.
	ServiceTrustCAs Service = 4

	maxService = ServiceTrustCAs
)

func (s Service) String() string {
	switch s {
	case ServiceSSH:
		return "ssh"
	case ServiceNodeList:
		return "node-list"
	case ServiceUserRoles:
		return "user-roles"
	case ServiceRootLocks:
		return "root-locks"
	case ServiceTrustCAs:
		return "trust-cas"
	}
	return fmt.Sprintf("service-%d", uint8(s))
}

// DialRequest asks the leaf to connect the stream to one of its registered nodes, by name,
// or (version 3) for one of its typed services.
type DialRequest struct {
	// Node is a node name, never an address; set for ServiceSSH only.
	Node string
	// UserCert is the user's certificate as the root authenticated it.
	UserCert []byte
	// ClientAddr is the user's address as the root saw it.
	ClientAddr string
	// TraceID correlates the dial in both clusters' audit logs (version 2).
	TraceID string
	// Service is what the stream is for (version 3; ServiceSSH when absent).
	Service Service
}

// DialAnswer is the leaf's answer to a dial request: accept, or a denial reason.
type DialAnswer struct {
	Accepted bool
	Reason   string
}

// GoAway tells the leaf the root is closing this tunnel and when to come back.
type GoAway struct {
	ReconnectAfter time.Duration
	Reason         string
}

// Field tags and their specs, per message.
var (
	helloSpecs = map[byte]fieldSpec{
		1: {kind: kindUint, max: 3, since: 1}, 2: {kind: kindUint, max: 3, since: 1},
		3: {kind: kindUint, max: 10, since: 1}, 4: {kind: kindUint, max: 10, since: 1},
		5: {kind: kindString, max: 253, since: 1}, 6: {kind: kindString, max: 128, since: 1},
		7: {kind: kindBool, max: 1, since: 1},
	}
	helloAckSpecs = map[byte]fieldSpec{
		1: {kind: kindUint, max: 3, since: 1}, 2: {kind: kindUint, max: 10, since: 1},
		3: {kind: kindUint, max: 10, since: 1}, 4: {kind: kindString, max: 253, since: 1},
		5: {kind: kindMessage, max: 600, repeated: true, since: 1},
		6: {kind: kindUint, max: 10, since: 1}, 7: {kind: kindString, max: 512, since: 1},
		8: {kind: kindBool, max: 1, since: 1},
	}
	endpointSpecs = map[byte]fieldSpec{
		1: {kind: kindString, max: 290, since: 1}, 2: {kind: kindString, max: 290, since: 1},
	}
	heartbeatSpecs = map[byte]fieldSpec{
		1: {kind: kindUint, max: 10, since: 1}, 2: {kind: kindString, max: 512, since: 1},
		3: {kind: kindUint, max: 10, since: 1},
	}
	heartbeatReplySpecs = map[byte]fieldSpec{
		1: {kind: kindUint, max: 10, since: 1}, 2: {kind: kindUint, max: 10, since: 1},
		3: {kind: kindMessage, max: 600, repeated: true, since: 1},
	}
	dialRequestSpecs = map[byte]fieldSpec{
		1: {kind: kindString, max: 253, since: 1}, 2: {kind: kindBytes, max: 24 << 10, since: 1},
		3: {kind: kindString, max: 128, since: 1}, 4: {kind: kindString, max: 128, since: 2},
		5: {kind: kindUint, max: 1, since: 3},
	}
	dialAnswerSpecs = map[byte]fieldSpec{
		1: {kind: kindBool, max: 1, since: 1}, 2: {kind: kindString, max: 512, since: 1},
	}
	goAwaySpecs = map[byte]fieldSpec{
		1: {kind: kindUint, max: 10, since: 1}, 2: {kind: kindString, max: 512, since: 1},
	}
)

// MaxReplicas bounds the replica list a root advertises.
const MaxReplicas = 16

func ms(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d / time.Millisecond)
}

func fromMS(v uint64) (time.Duration, error) {
	if v > uint64(math.MaxInt64/int64(time.Millisecond)) {
		return 0, fmt.Errorf("%w: duration out of range", ErrMalformed)
	}
	return time.Duration(v) * time.Millisecond, nil
}

// Marshal encodes the hello.
func (h *Hello) Marshal() []byte {
	var e encoder
	e.uint(1, uint64(h.MinVersion))
	e.uint(2, uint64(h.MaxVersion))
	e.uint(3, ms(h.KeepAliveInterval))
	e.uint(4, uint64(max(h.KeepAliveCount, 0)))
	e.str(5, h.Cluster)
	e.str(6, h.Agent)
	e.bool(7, h.Bulk)
	return e.b
}

// UnmarshalHello decodes a hello, skipping fields it does not know.
func UnmarshalHello(p []byte) (*Hello, error) {
	fs, err := decodeFields(p, helloSpecs, math.MaxUint16, false)
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	h := &Hello{}
	for _, f := range fs {
		switch f.tag {
		case 1, 2:
			v := mustUint(f.val)
			if v > math.MaxUint16 {
				return nil, fmt.Errorf("hello: %w: version %d out of range", ErrMalformed, v)
			}
			if f.tag == 1 {
				h.MinVersion = uint16(v)
			} else {
				h.MaxVersion = uint16(v)
			}
		case 3:
			if h.KeepAliveInterval, err = fromMS(mustUint(f.val)); err != nil {
				return nil, fmt.Errorf("hello: %w", err)
			}
		case 4:
			v := mustUint(f.val)
			if v > 1000 {
				return nil, fmt.Errorf("hello: %w: keep-alive count %d out of range", ErrMalformed, v)
			}
			h.KeepAliveCount = int(v)
		case 5:
			h.Cluster = string(f.val)
		case 6:
			h.Agent = string(f.val)
		case 7:
			h.Bulk = true // a boolean field is present only when true
		}
	}
	if h.MinVersion == 0 || h.MaxVersion < h.MinVersion {
		return nil, fmt.Errorf("hello: %w: version range [%d,%d]", ErrMalformed, h.MinVersion, h.MaxVersion)
	}
	if h.Cluster == "" {
		return nil, fmt.Errorf("hello: %w: no cluster name", ErrMalformed)
	}
	return h, nil
}

// Negotiate picks the highest version in both [leafMin, leafMax] and [rootMin, rootMax].
func Negotiate(leafMin, leafMax, rootMin, rootMax uint16) (uint16, error) {
	v := min(leafMax, rootMax)
	if v < max(leafMin, rootMin) {
		return 0, fmt.Errorf("%w: leaf speaks [%d,%d], root [%d,%d]", ErrNoVersion, leafMin, leafMax, rootMin, rootMax)
	}
	return v, nil
}

func encodeEndpoints(e *encoder, tag byte, eps []Endpoint) {
	for _, ep := range eps {
		var sub encoder
		sub.str(1, ep.QUIC)
		sub.str(2, ep.TCP)
		e.bytes(tag, sub.b)
	}
}

func decodeEndpoint(p []byte) (Endpoint, error) {
	fs, err := decodeFields(p, endpointSpecs, math.MaxUint16, false)
	if err != nil {
		return Endpoint{}, fmt.Errorf("endpoint: %w", err)
	}
	var ep Endpoint
	for _, f := range fs {
		if f.tag == 1 {
			ep.QUIC = string(f.val)
		} else {
			ep.TCP = string(f.val)
		}
	}
	for _, a := range []string{ep.QUIC, ep.TCP} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return Endpoint{}, fmt.Errorf("endpoint: %w: %q is not host:port", ErrMalformed, a)
		}
	}
	if ep.QUIC == "" && ep.TCP == "" {
		return Endpoint{}, fmt.Errorf("endpoint: %w: no address", ErrMalformed)
	}
	return ep, nil
}

// Marshal encodes the answer to a hello.
func (a *HelloAck) Marshal() []byte {
	var e encoder
	e.uint(1, uint64(a.Version))
	e.uint(2, ms(a.KeepAliveInterval))
	e.uint(3, uint64(max(a.KeepAliveCount, 0)))
	e.str(4, a.Replica)
	encodeEndpoints(&e, 5, a.Replicas)
	e.uint(6, ms(a.RetryAfter))
	e.str(7, a.Reason)
	e.bool(8, a.Bulk)
	return e.b
}

// UnmarshalHelloAck decodes the answer to a hello, skipping fields it does not know. An
// acceptance must name a version and positive keep-alive values.
func UnmarshalHelloAck(p []byte) (*HelloAck, error) {
	fs, err := decodeFields(p, helloAckSpecs, math.MaxUint16, false)
	if err != nil {
		return nil, fmt.Errorf("hello-ack: %w", err)
	}
	a := &HelloAck{}
	for _, f := range fs {
		switch f.tag {
		case 1:
			v := mustUint(f.val)
			if v > math.MaxUint16 {
				return nil, fmt.Errorf("hello-ack: %w: version %d", ErrMalformed, v)
			}
			a.Version = uint16(v)
		case 2:
			if a.KeepAliveInterval, err = fromMS(mustUint(f.val)); err != nil {
				return nil, fmt.Errorf("hello-ack: %w", err)
			}
		case 3:
			v := mustUint(f.val)
			if v > 1000 {
				return nil, fmt.Errorf("hello-ack: %w: keep-alive count %d", ErrMalformed, v)
			}
			a.KeepAliveCount = int(v)
		case 4:
			a.Replica = string(f.val)
		case 5:
			if len(a.Replicas) >= MaxReplicas {
				return nil, fmt.Errorf("hello-ack: %w: more than %d replicas", ErrTooLarge, MaxReplicas)
			}
			ep, err := decodeEndpoint(f.val)
			if err != nil {
				return nil, fmt.Errorf("hello-ack: %w", err)
			}
			a.Replicas = append(a.Replicas, ep)
		case 6:
			if a.RetryAfter, err = fromMS(mustUint(f.val)); err != nil {
				return nil, fmt.Errorf("hello-ack: %w", err)
			}
		case 7:
			a.Reason = string(f.val)
		case 8:
			a.Bulk = true
		}
	}
	if a.Reason == "" && (a.Version == 0 || a.KeepAliveInterval <= 0 || a.KeepAliveCount <= 0) {
		return nil, fmt.Errorf("hello-ack: %w: an acceptance needs a version and keep-alive values", ErrMalformed)
	}
	return a, nil
}

// Marshal encodes the heartbeat for version v.
func (h *Heartbeat) Marshal(v uint16) []byte {
	var e encoder
	e.uint(1, h.Seq)
	e.str(2, h.State)
	e.uint(3, h.ActiveStreams)
	return e.b
}

// UnmarshalHeartbeat decodes a heartbeat of version v.
func UnmarshalHeartbeat(v uint16, p []byte) (*Heartbeat, error) {
	fs, err := decodeFields(p, heartbeatSpecs, v, true)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	h := &Heartbeat{}
	for _, f := range fs {
		switch f.tag {
		case 1:
			h.Seq = mustUint(f.val)
		case 2:
			h.State = string(f.val)
		case 3:
			h.ActiveStreams = mustUint(f.val)
		}
	}
	return h, nil
}

// Marshal encodes the heartbeat reply for version v.
func (r *HeartbeatReply) Marshal(v uint16) []byte {
	var e encoder
	e.uint(1, r.Seq)
	e.uint(2, ms(r.ReconnectAfter))
	encodeEndpoints(&e, 3, r.Replicas)
	return e.b
}

// UnmarshalHeartbeatReply decodes a heartbeat reply of version v.
func UnmarshalHeartbeatReply(v uint16, p []byte) (*HeartbeatReply, error) {
	fs, err := decodeFields(p, heartbeatReplySpecs, v, true)
	if err != nil {
		return nil, fmt.Errorf("heartbeat-reply: %w", err)
	}
	r := &HeartbeatReply{}
	for _, f := range fs {
		switch f.tag {
		case 1:
			r.Seq = mustUint(f.val)
		case 2:
			if r.ReconnectAfter, err = fromMS(mustUint(f.val)); err != nil {
				return nil, fmt.Errorf("heartbeat-reply: %w", err)
			}
		case 3:
			if len(r.Replicas) >= MaxReplicas {
				return nil, fmt.Errorf("heartbeat-reply: %w: more than %d replicas", ErrTooLarge, MaxReplicas)
			}
			ep, err := decodeEndpoint(f.val)
			if err != nil {
				return nil, fmt.Errorf("heartbeat-reply: %w", err)
			}
			r.Replicas = append(r.Replicas, ep)
		}
	}
	return r, nil
}

// Marshal encodes the dial request for version v: fields v does not define are left out
// (a version 1 peer never sees a TraceID). A service other than ServiceSSH cannot be
// expressed before version 3: ErrServiceUnsupported, never a silent SSH dial.
func (d *DialRequest) Marshal(v uint16) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if d.Service != ServiceSSH && v < Version3 {
		return nil, fmt.Errorf("%w: %s needs protocol version %d, the tunnel speaks %d", ErrServiceUnsupported, d.Service, Version3, v)
	}
	var e encoder
	e.str(1, d.Node)
	if len(d.UserCert) > 0 {
		e.bytes(2, d.UserCert)
	}
	e.str(3, d.ClientAddr)
	if v >= Version2 {
		e.str(4, d.TraceID)
	}
	if v >= Version3 {
		e.uint(5, uint64(d.Service))
	}
	return e.b, nil
}

// Validate holds a request to its service's shape: an SSH dial names a node (never an
// address: ErrNotANodeName); a service request names none; no other service exists.
func (d *DialRequest) Validate() error {
	switch {
	case d.Service > maxService:
		return fmt.Errorf("%w: unknown service %d", ErrMalformed, uint8(d.Service))
	case d.Service == ServiceSSH:
		return ValidNodeName(d.Node)
	case d.Node != "":
		return fmt.Errorf("%w: a %s request names no node (got %q)", ErrMalformed, d.Service, d.Node)
	}
	return nil
}

// UnmarshalDialRequest decodes a dial request of version v. A target that is not a node
// name — an IP address, a host:port, anything with characters a name has not — is
// refused here, before any handler sees it, and so is an unknown service or a service
// request that names a node.
func UnmarshalDialRequest(v uint16, p []byte) (*DialRequest, error) {
	fs, err := decodeFields(p, dialRequestSpecs, v, true)
	if err != nil {
		return nil, fmt.Errorf("dial-request: %w", err)
	}
	d := &DialRequest{}
	for _, f := range fs {
		switch f.tag {
		case 1:
			d.Node = string(f.val)
		case 2:
			d.UserCert = append([]byte(nil), f.val...)
		case 3:
			d.ClientAddr = string(f.val)
		case 4:
			d.TraceID = string(f.val)
		case 5:
			s := mustUint(f.val)
			if s == 0 || s > uint64(maxService) {
				// 0 is never encoded (absent means SSH): one encoding per request.
				return nil, fmt.Errorf("dial-request: %w: unknown service %d", ErrMalformed, s)
			}
			d.Service = Service(s)
		}
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("dial-request: %w", err)
	}
	return d, nil
}

// ValidNodeName accepts a node name: 1 to 253 characters of letters, digits, '.', '-' and
// '_', starting with a letter or digit, and not an IP address. Anything else — an
// address, a host:port, a path — is ErrNotANodeName: a leaf dials registered nodes by
// name only (DESIGN.md §5.1); whether the name is registered is its handler's check.
func ValidNodeName(s string) error {
	if len(s) == 0 || len(s) > 253 {
		return fmt.Errorf("%w: %d characters", ErrNotANodeName, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '.' || c == '-' || c == '_'))
		if !ok {
			return fmt.Errorf("%w: %q", ErrNotANodeName, s)
		}
	}
	if net.ParseIP(s) != nil {
		return fmt.Errorf("%w: %q is an IP address", ErrNotANodeName, s)
	}
	return nil
}

// Marshal encodes the dial answer.
func (a *DialAnswer) Marshal(v uint16) []byte {
	var e encoder
	e.bool(1, a.Accepted)
	e.str(2, a.Reason)
	return e.b
}

// UnmarshalDialAnswer decodes a dial answer of version v. An answer that accepts and
// gives a reason is malformed.
func UnmarshalDialAnswer(v uint16, p []byte) (*DialAnswer, error) {
	fs, err := decodeFields(p, dialAnswerSpecs, v, true)
	if err != nil {
		return nil, fmt.Errorf("dial-answer: %w", err)
	}
	a := &DialAnswer{}
	for _, f := range fs {
		switch f.tag {
		case 1:
			a.Accepted = true
		case 2:
			a.Reason = string(f.val)
		}
	}
	if a.Accepted && a.Reason != "" {
		return nil, fmt.Errorf("dial-answer: %w: accepted with a denial reason", ErrMalformed)
	}
	return a, nil
}

// Marshal encodes the go-away.
func (g *GoAway) Marshal(v uint16) []byte {
	var e encoder
	e.uint(1, ms(g.ReconnectAfter))
	e.str(2, g.Reason)
	return e.b
}

// UnmarshalGoAway decodes a go-away of version v.
func UnmarshalGoAway(v uint16, p []byte) (*GoAway, error) {
	fs, err := decodeFields(p, goAwaySpecs, v, true)
	if err != nil {
		return nil, fmt.Errorf("go-away: %w", err)
	}
	g := &GoAway{}
	for _, f := range fs {
		switch f.tag {
		case 1:
			if g.ReconnectAfter, err = fromMS(mustUint(f.val)); err != nil {
				return nil, fmt.Errorf("go-away: %w", err)
			}
		case 2:
			g.Reason = string(f.val)
		}
	}
	return g, nil
}
