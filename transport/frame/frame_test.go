package frame

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDecodeRejectsBadFrames is the attacker's table: every frame a hostile or broken
// peer can send is refused with the error a caller branches on, never a panic.
func TestDecodeRejectsBadFrames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty_input_is_truncated", nil, ErrTruncated},
		{"short_header_is_truncated", []byte{1, 0}, ErrTruncated},
		{"unknown_type_is_refused_before_its_length", []byte{0x7f, 0xff, 0xff}, ErrUnknownType},
		{"type_zero_is_unknown", []byte{0, 0, 0}, ErrUnknownType},
		{"hello_over_its_limit_is_refused_from_the_header", []byte{byte(TypeHello), 0x04, 0x01}, ErrTooLarge},
		{"dial_request_over_the_global_limit_is_refused", []byte{byte(TypeDialRequest), 0x80, 0x01}, ErrTooLarge},
		{"payload_shorter_than_the_header_says_is_truncated", []byte{byte(TypeHeartbeat), 0, 5, 1, 2}, ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%x) = %v, want %v", tc.in, err, tc.want)
			}
			_, _, err = Read(bytes.NewReader(tc.in))
			if len(tc.in) == 0 {
				if err != io.EOF {
					t.Fatalf("Read of nothing = %v, want io.EOF", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read(%x) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestAppendRefusesOversizeAndUnknown(t *testing.T) {
	t.Parallel()
	if _, err := Append(nil, TypeDialAnswer, make([]byte, 2000)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize dial answer: %v, want ErrTooLarge", err)
	}
	if _, err := Append(nil, Type(99), nil); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: %v, want ErrUnknownType", err)
	}
}

func TestPayloadRejectsBadFields(t *testing.T) {
	t.Parallel()
	name := func(s string) []byte { return append([]byte{1, byte(len(s))}, s...) }
	for _, tc := range []struct {
		name    string
		version uint16
		payload []byte
		want    error
	}{
		{"field_length_past_the_end_is_truncated", 1, []byte{1, 9, 'a'}, ErrTruncated},
		{"bad_uvarint_length_is_malformed", 1, []byte{1, 0xff}, ErrMalformed},
		{"out_of_order_fields_are_malformed", 1, append([]byte{3, 1, 'x'}, name("web")...), ErrMalformed},
		{"repeated_single_field_is_malformed", 1, append(name("web"), name("db")...), ErrMalformed},
		{"unknown_field_is_malformed", 1, append(name("web"), 9, 0), ErrMalformed},
		{"v2_trace_id_on_a_v1_session_is_malformed", 1, append(name("web"), 4, 1, 'x'), ErrMalformed},
		{"raw_ip_instead_of_a_name_is_refused", 2, name("10.0.0.1"), ErrNotANodeName},
		{"host_port_instead_of_a_name_is_refused", 2, name("web:22"), ErrNotANodeName},
		{"ipv6_instead_of_a_name_is_refused", 2, name("::1"), ErrNotANodeName},
		{"missing_name_is_refused", 2, nil, ErrNotANodeName},
		{"non_utf8_client_addr_is_malformed", 2, append(name("web"), 3, 1, 0xff), ErrMalformed},
		{"oversize_user_cert_is_refused", 2, append(name("web"), append([]byte{2, 0x81, 0xc0, 0x01}, make([]byte, 0x6001)...)...), ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := UnmarshalDialRequest(tc.version, tc.payload); !errors.Is(err, tc.want) {
				t.Fatalf("UnmarshalDialRequest = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	t.Parallel()
	eps := []Endpoint{{QUIC: "127.0.0.1:1", TCP: "127.0.0.1:2"}, {TCP: "[::1]:3"}}
	hello := &Hello{MinVersion: 1, MaxVersion: 2, KeepAliveInterval: 15 * time.Second, KeepAliveCount: 3, Cluster: "leaf.example.com", Agent: "tether/test"}
	if got, err := UnmarshalHello(hello.Marshal()); err != nil || !reflect.DeepEqual(got, hello) {
		t.Errorf("hello: %+v, %v", got, err)
	}
	ack := &HelloAck{Version: 2, KeepAliveInterval: 20 * time.Second, KeepAliveCount: 4, Replica: "r1", Replicas: eps}
	if got, err := UnmarshalHelloAck(ack.Marshal()); err != nil || !reflect.DeepEqual(got, ack) {
		t.Errorf("hello-ack: %+v, %v", got, err)
	}
	refusal := &HelloAck{RetryAfter: 1500 * time.Millisecond, Reason: "busy"}
	if got, err := UnmarshalHelloAck(refusal.Marshal()); err != nil || !reflect.DeepEqual(got, refusal) {
		t.Errorf("refusal: %+v, %v", got, err)
	}
	for _, v := range []uint16{Version1, Version2} {
		hb := &Heartbeat{Seq: 7, State: "ok", ActiveStreams: 3}
		if got, err := UnmarshalHeartbeat(v, hb.Marshal(v)); err != nil || !reflect.DeepEqual(got, hb) {
			t.Errorf("v%d heartbeat: %+v, %v", v, got, err)
		}
		hr := &HeartbeatReply{Seq: 7, ReconnectAfter: 3 * time.Second, Replicas: eps}
		if got, err := UnmarshalHeartbeatReply(v, hr.Marshal(v)); err != nil || !reflect.DeepEqual(got, hr) {
			t.Errorf("v%d heartbeat reply: %+v, %v", v, got, err)
		}
		da := &DialAnswer{Reason: "node not registered"}
		if got, err := UnmarshalDialAnswer(v, da.Marshal(v)); err != nil || !reflect.DeepEqual(got, da) {
			t.Errorf("v%d dial answer: %+v, %v", v, got, err)
		}
		ga := &GoAway{ReconnectAfter: time.Second, Reason: "restarting"}
		if got, err := UnmarshalGoAway(v, ga.Marshal(v)); err != nil || !reflect.DeepEqual(got, ga) {
			t.Errorf("v%d go-away: %+v, %v", v, got, err)
		}
	}
}

// TestVersionSkew proves that the agreed version decides what goes on the wire: a
// version 2 root talking to a version 1 leaf leaves the TraceID out, and a version 1
// decoder refuses it if it is sent anyway.
func TestVersionSkew(t *testing.T) {
	t.Parallel()
	req := &DialRequest{Node: "web-1", UserCert: []byte("cert"), ClientAddr: "192.0.2.1:5000", TraceID: "t-1"}
	v1, err := req.Marshal(Version1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalDialRequest(Version1, v1)
	if err != nil {
		t.Fatalf("v1 leaf reading a v1 request: %v", err)
	}
	if got.TraceID != "" || got.Node != "web-1" || string(got.UserCert) != "cert" || got.ClientAddr != req.ClientAddr {
		t.Errorf("v1 request decoded as %+v", got)
	}
	v2, _ := req.Marshal(Version2)
	if _, err := UnmarshalDialRequest(Version1, v2); !errors.Is(err, ErrMalformed) {
		t.Errorf("v1 leaf reading a v2 request: %v, want ErrMalformed", err)
	}
	if got, err := UnmarshalDialRequest(Version2, v2); err != nil || got.TraceID != "t-1" {
		t.Errorf("v2 request: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name                   string
		lmin, lmax, rmin, rmax uint16
		want                   uint16
		wantErr                bool
	}{
		{"same_range_picks_the_highest", 1, 2, 1, 2, 2, false},
		{"older_leaf_gets_its_version", 1, 1, 1, 2, 1, false},
		{"older_root_gets_its_version", 1, 2, 1, 1, 1, false},
		{"newer_leaf_meets_root_in_the_middle", 2, 3, 1, 2, 2, false},
		{"disjoint_ranges_fail", 3, 4, 1, 2, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Negotiate(tc.lmin, tc.lmax, tc.rmin, tc.rmax)
			if (err != nil) != tc.wantErr || v != tc.want {
				t.Fatalf("Negotiate = %d, %v; want %d (error %v)", v, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestServiceRequests: version 3 carries a typed service; a service request names no
// node, an unknown service is malformed on both sides, and an older session cannot carry
// a service at all (the root learns it, a v2 leaf never misreads one as an SSH dial).
func TestServiceRequests(t *testing.T) {
	t.Parallel()
	for _, svc := range []Service{ServiceNodeList, ServiceUserRoles} {
		req := &DialRequest{Service: svc, UserCert: []byte("cert"), ClientAddr: "192.0.2.1:5000", TraceID: "t"}
		p, err := req.Marshal(Version3)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalDialRequest(Version3, p)
		if err != nil || got.Service != svc || got.Node != "" || string(got.UserCert) != "cert" {
			t.Fatalf("%s: %+v %v", svc, got, err)
		}
		if _, err := UnmarshalDialRequest(Version2, p); !errors.Is(err, ErrMalformed) {
			t.Errorf("v2 leaf reading a v3 %s request: %v, want ErrMalformed", svc, err)
		}
		for _, v := range []uint16{Version1, Version2} {
			if _, err := req.Marshal(v); !errors.Is(err, ErrServiceUnsupported) {
				t.Errorf("%s on v%d: %v, want ErrServiceUnsupported", svc, v, err)
			}
		}
		withNode := *req
		withNode.Node = "web-1"
		if _, err := withNode.Marshal(Version3); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s naming a node: %v", svc, err)
		}
	}
	// An SSH dial on v3 is what it was: the service field is left out.
	ssh := &DialRequest{Node: "web-1"}
	p3, _ := ssh.Marshal(Version3)
	p2, _ := ssh.Marshal(Version2)
	if string(p3) != string(p2) {
		t.Errorf("an SSH dial changed its encoding in v3: %x vs %x", p3, p2)
	}
	for name, p := range map[string][]byte{
		"unknown_service":           {5, 1, 9},
		"explicit_zero_service":     {1, 3, 'w', 'e', 'b', 5, 1, 0},
		"service_request_with_node": {1, 3, 'w', 'e', 'b', 5, 1, 1},
		"ssh_dial_without_a_node":   {3, 1, 'x'},
		"service_of_two_bytes":      {5, 2, 0x81, 0},
	} {
		if d, err := UnmarshalDialRequest(Version3, p); err == nil {
			t.Errorf("%s decoded: %+v", name, d)
		}
	}
	if _, err := (&DialRequest{Service: 7}).Marshal(Version3); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown service marshalled: %v", err)
	}
	// An oversized certificate in a service request is refused by the decoder's field
	// limit, and a whole frame past the type's limit by the frame reader.
	big, err := (&DialRequest{Service: ServiceNodeList, UserCert: bytes.Repeat([]byte{1}, 24<<10+1)}).Marshal(Version3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnmarshalDialRequest(Version3, big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized certificate: %v, want ErrTooLarge", err)
	}
	if _, err := Append(nil, TypeDialRequest, bytes.Repeat([]byte{1}, MaxPayload+1)); err == nil {
		t.Error("a dial request frame past its limit was built")
	}
}

// TestHelloFromANewerLeafSkipsUnknownFields: the hello is read before a version is agreed,
// so fields a future version adds must not break an older root.
func TestHelloFromANewerLeafSkipsUnknownFields(t *testing.T) {
	t.Parallel()
	h := (&Hello{MinVersion: 2, MaxVersion: 3, Cluster: "leaf"}).Marshal()
	h = append(h, 40, 2, 'h', 'i', 40, 0) // an unknown, repeated future field
	got, err := UnmarshalHello(h)
	if err != nil || got.Cluster != "leaf" || got.MaxVersion != 3 {
		t.Fatalf("hello with a future field: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{
		(&Hello{MinVersion: 2, MaxVersion: 1, Cluster: "leaf"}).Marshal(),
		(&Hello{MinVersion: 1, MaxVersion: 1}).Marshal(),
		{1, 3, 0xff, 0xff, 0x7f},
	} {
		if _, err := UnmarshalHello(bad); err == nil {
			t.Errorf("UnmarshalHello(%x) accepted a bad hello", bad)
		}
	}
}

// TestBulkMarkIsOptional: the bulk-carrier mark rides in the frozen hello and its answer
// as tags an older peer skips (a v3 root reads a newer leaf's hello; a newer root's answer
// reads in an older leaf), round-trips, and is refused when it is not a boolean.
func TestBulkMarkIsOptional(t *testing.T) {
	t.Parallel()
	h := &Hello{MinVersion: 1, MaxVersion: 3, KeepAliveInterval: time.Second, KeepAliveCount: 3, Cluster: "leaf", Bulk: true}
	if got, err := UnmarshalHello(h.Marshal()); err != nil || !reflect.DeepEqual(got, h) {
		t.Errorf("hello with Bulk: %+v, %v", got, err)
	}
	a := &HelloAck{Version: 3, KeepAliveInterval: time.Second, KeepAliveCount: 3, Bulk: true}
	if got, err := UnmarshalHelloAck(a.Marshal()); err != nil || !reflect.DeepEqual(got, a) {
		t.Errorf("hello-ack with Bulk: %+v, %v", got, err)
	}
	// An older decoder knows none of these tags: what it sees is the message without them.
	old := (&Hello{MinVersion: 1, MaxVersion: 3, Cluster: "leaf"}).Marshal()
	if got, err := UnmarshalHello(old); err != nil || got.Bulk {
		t.Errorf("hello without the mark: %+v, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"hello_bulk_zero":     append((&Hello{MinVersion: 1, MaxVersion: 1, Cluster: "leaf"}).Marshal(), 7, 1, 0),
		"hello_bulk_two_byte": append((&Hello{MinVersion: 1, MaxVersion: 1, Cluster: "leaf"}).Marshal(), 7, 2, 1, 1),
	} {
		if _, err := UnmarshalHello(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := UnmarshalHelloAck(append(a.Marshal()[:len(a.Marshal())-3], 8, 1, 2)); err == nil {
		t.Error("hello-ack with a non-boolean Bulk accepted")
	}
}

func TestAcceptedDialAnswerWithReasonIsMalformed(t *testing.T) {
	t.Parallel()
	if _, err := UnmarshalDialAnswer(1, []byte{1, 1, 1, 2, 1, 'x'}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v", err)
	}
}

// TestReadWithinCutsAStalledPeer: a peer that sends half a frame and stalls is cut at the
// deadline, over a real socket and over a reader without deadlines.
func TestReadWithinCutsAStalledPeer(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte{byte(TypeHeartbeat), 0, 10, 1}) // 1 of 10 payload bytes, then silence
		io.Copy(io.Discard, c)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, _, err = ReadWithin(c, 200*time.Millisecond, nil)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("stalled socket: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cut after %v", d)
	}

	pr, pw := io.Pipe()
	go pw.Write([]byte{byte(TypeHeartbeat), 0, 10})
	_, _, err = ReadWithin(struct{ io.Reader }{pr}, 100*time.Millisecond, func() { pr.CloseWithError(errors.New("cut")) })
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("stalled pipe: %v, want ErrTimeout", err)
	}
	if _, _, err := ReadWithin(struct{ io.Reader }{strings.NewReader("")}, time.Second, nil); err == nil {
		t.Fatal("a reader that cannot be cut was read without a bound")
	}
}
