// Package frame owns the tunnel's dial protocol on the wire: length-prefixed frames with
// hard size limits per message type, the messages they carry (hello and its answer,
// heartbeats and their replies, dial requests and answers, go-away), and the version
// negotiation that lets a root and a leaf one protocol version apart talk.
//
// A frame is a 3-byte header — the message type and the payload length (big-endian
// uint16) — followed by the payload. The length is checked against the type's limit
// before a byte of payload is read, so a peer cannot make the reader allocate more than
// the limit. A payload is a sequence of fields: a tag byte, a uvarint length and the
// value. Tags appear in ascending order (a repeated field repeats its tag), a non-repeated
// tag at most once.
//
// The hello and its answer are frozen across versions: they are read before a version is
// agreed, so their decoders skip tags they do not know (a newer leaf may add hello
// fields). Every later message is strict: a field the agreed version does not define is
// an error, so a peer that sends a newer field on an older session is caught, not
// silently misread. Version 2 is version 1 plus the dial request's TraceID; version 3 adds
// the dial request's Service (a typed leaf service instead of an SSH connection).
package frame

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// Protocol versions. A leaf offers [min, max]; the root picks the highest version both
// support.
const (
	Version1 uint16 = 1
	// Version2 adds DialRequest.TraceID.
	Version2 uint16 = 2
	// Version3 adds DialRequest.Service: a dial stream may ask the leaf for one of its
	// typed services (ServiceNodeList, ServiceUserRoles) instead of an SSH connection.
	Version3 uint16 = 3

	MinVersion = Version1
	MaxVersion = Version3
)

// Type is a frame's message type.
type Type uint8

// Message types.
const (
	TypeHello          Type = 1
	TypeHelloAck       Type = 2
	TypeHeartbeat      Type = 3
	TypeHeartbeatReply Type = 4
	TypeDialRequest    Type = 5
	TypeDialAnswer     Type = 6
	TypeGoAway         Type = 7
)

func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeHelloAck:
		return "hello-ack"
	case TypeHeartbeat:
		return "heartbeat"
	case TypeHeartbeatReply:
		return "heartbeat-reply"
	case TypeDialRequest:
		return "dial-request"
	case TypeDialAnswer:
		return "dial-answer"
	case TypeGoAway:
		return "go-away"
	}
	return fmt.Sprintf("type-%d", uint8(t))
}

// HeaderSize is the size of a frame header.
const HeaderSize = 3

// MaxPayload is the largest payload of any message type.
const MaxPayload = 32 << 10

// Limit returns the largest payload a message of type t may carry, and false for an
// unknown type.
func Limit(t Type) (int, bool) {
	switch t {
	case TypeHello, TypeDialAnswer, TypeGoAway:
		return 1 << 10, true
	case TypeHeartbeat:
		return 4 << 10, true
	case TypeHelloAck, TypeHeartbeatReply:
		return 16 << 10, true
	case TypeDialRequest:
		return MaxPayload, true
	}
	return 0, false
}

// Errors a decoder returns; callers branch on them with errors.Is.
var (
	ErrUnknownType  = errors.New("unknown frame type")
	ErrTooLarge     = errors.New("frame exceeds its size limit")
	ErrTruncated    = errors.New("truncated frame")
	ErrMalformed    = errors.New("malformed frame payload")
	ErrUnexpected   = errors.New("unexpected frame type")
	ErrNoVersion    = errors.New("no common protocol version")
	ErrNotANodeName = errors.New("dial target is not a node name")
	// ErrServiceUnsupported: the agreed version cannot carry the requested service (the
	// peer runs an older Tether).
	ErrServiceUnsupported = errors.New("service not supported by the tunnel's protocol version")
)

// Append appends the frame (header and payload) of type t to dst. It fails when t is
// unknown or the payload exceeds t's limit.
func Append(dst []byte, t Type, payload []byte) ([]byte, error) {
	max, ok := Limit(t)
	if !ok {
		return dst, fmt.Errorf("%w: %d", ErrUnknownType, t)
	}
	if len(payload) > max {
		return dst, fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrTooLarge, t, len(payload), max)
	}
	dst = append(dst, byte(t), byte(len(payload)>>8), byte(len(payload)))
	return append(dst, payload...), nil
}

// Write writes one frame in a single Write call.
func Write(w io.Writer, t Type, payload []byte) error {
	b, err := Append(make([]byte, 0, HeaderSize+len(payload)), t, payload)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Decode splits the first frame off b: its type, its payload (aliasing b) and the rest.
// A header whose type is unknown or whose length exceeds the type's limit is rejected
// before the payload is looked at.
func Decode(b []byte) (t Type, payload, rest []byte, err error) {
	if len(b) < HeaderSize {
		return 0, nil, b, ErrTruncated
	}
	t, n, err := parseHeader(b[:HeaderSize])
	if err != nil {
		return 0, nil, b, err
	}
	if len(b)-HeaderSize < n {
		return 0, nil, b, fmt.Errorf("%w: %s wants %d payload bytes, %d present", ErrTruncated, t, n, len(b)-HeaderSize)
	}
	return t, b[HeaderSize : HeaderSize+n], b[HeaderSize+n:], nil
}

func parseHeader(h []byte) (Type, int, error) {
	t := Type(h[0])
	max, ok := Limit(t)
	if !ok {
		return 0, 0, fmt.Errorf("%w: %d", ErrUnknownType, h[0])
	}
	n := int(binary.BigEndian.Uint16(h[1:3]))
	if n > max {
		return 0, 0, fmt.Errorf("%w: %s of %d bytes (limit %d)", ErrTooLarge, t, n, max)
	}
	return t, n, nil
}

// Read reads one frame from r. The caller bounds the time it may take (see ReadWithin).
func Read(r io.Reader) (Type, []byte, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: header: %v", ErrTruncated, err)
		}
		return 0, nil, err
	}
	t, n, err := parseHeader(h[:])
	if err != nil {
		return 0, nil, err
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: %s payload: %v", ErrTruncated, t, err)
		}
		return 0, nil, err
	}
	return t, payload, nil
}

// deadliner is what net.Conn and QUIC streams offer to bound a read.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// ReadWithin reads one frame, cutting the read when the whole frame has not arrived
// within timeout: a peer that stalls mid-frame does not hold the reader. A reader with
// SetReadDeadline gets a deadline (cleared afterwards); any other reader is closed by
// onTimeout when the time runs out (onTimeout must unblock the read, for example by
// closing the channel), and the read's error is then reported as a timeout.
func ReadWithin(r io.Reader, timeout time.Duration, onTimeout func()) (Type, []byte, error) {
	if d, ok := r.(deadliner); ok {
		if err := d.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return 0, nil, err
		}
		t, p, err := Read(r)
		_ = d.SetReadDeadline(time.Time{})
		return t, p, err
	}
	if onTimeout == nil {
		return 0, nil, errors.New("frame: reader has no read deadline and no way to cut it")
	}
	fired := make(chan struct{})
	timer := time.AfterFunc(timeout, func() { close(fired); onTimeout() })
	t, p, err := Read(r)
	if !timer.Stop() {
		<-fired
		return 0, nil, fmt.Errorf("frame: no complete frame within %v: %w", timeout, ErrTimeout)
	}
	return t, p, err
}

// ErrTimeout reports that a frame did not arrive whole in time.
var ErrTimeout = errors.New("read timed out")
