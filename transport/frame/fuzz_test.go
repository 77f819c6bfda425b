package frame

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to the frame decoder and to every message decoder of
// both versions: none may panic, a decoded frame never exceeds its type's limit, and what
// decodes re-encodes to a message that decodes again.
func FuzzDecode(f *testing.F) {
	for _, seed := range seedFrames() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, payload, _, err := Decode(b)
		if err != nil {
			return
		}
		if max, _ := Limit(typ); len(payload) > max {
			t.Fatalf("%s payload of %d bytes passed a limit of %d", typ, len(payload), max)
		}
		if rt, rp, err := Read(bytes.NewReader(b)); err != nil || rt != typ || !bytes.Equal(rp, payload) {
			t.Fatalf("Read disagrees with Decode: %v %v", rt, err)
		}
		for _, v := range []uint16{Version1, Version2, Version3} {
			switch typ {
			case TypeHeartbeat:
				if h, err := UnmarshalHeartbeat(v, payload); err == nil {
					if _, err := UnmarshalHeartbeat(v, h.Marshal(v)); err != nil {
						t.Fatalf("re-encoded heartbeat: %v", err)
					}
				}
			case TypeHeartbeatReply:
				if r, err := UnmarshalHeartbeatReply(v, payload); err == nil {
					if _, err := UnmarshalHeartbeatReply(v, r.Marshal(v)); err != nil {
						t.Fatalf("re-encoded heartbeat reply: %v", err)
					}
				}
			case TypeDialRequest:
				if d, err := UnmarshalDialRequest(v, payload); err == nil {
					switch {
					case d.Service == ServiceSSH && ValidNodeName(d.Node) != nil:
						t.Fatalf("dial request for %q decoded", d.Node)
					case d.Service != ServiceSSH && (d.Node != "" || v < Version3 || d.Service > maxService):
						t.Fatalf("v%d %s request for %q decoded", v, d.Service, d.Node)
					}
					p, err := d.Marshal(v)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := UnmarshalDialRequest(v, p); err != nil {
						t.Fatalf("re-encoded dial request: %v", err)
					}
				}
			case TypeDialAnswer:
				if a, err := UnmarshalDialAnswer(v, payload); err == nil {
					if _, err := UnmarshalDialAnswer(v, a.Marshal(v)); err != nil {
						t.Fatalf("re-encoded dial answer: %v", err)
					}
				}
			case TypeGoAway:
				_, _ = UnmarshalGoAway(v, payload)
			}
		}
	})
}

// FuzzHello feeds arbitrary payloads to the hello and hello-ack decoders and the version
// negotiation that follows them.
func FuzzHello(f *testing.F) {
	f.Add((&Hello{MinVersion: 1, MaxVersion: 2, KeepAliveInterval: 15e9, KeepAliveCount: 3, Cluster: "leaf", Agent: "a"}).Marshal())
	f.Add((&Hello{MinVersion: 1, MaxVersion: 3, Cluster: "leaf", Bulk: true}).Marshal())
	f.Add((&HelloAck{Version: 3, KeepAliveInterval: 15e9, KeepAliveCount: 3, Bulk: true}).Marshal())
	f.Add((&HelloAck{Version: 1, KeepAliveInterval: 15e9, KeepAliveCount: 3, Replicas: []Endpoint{{QUIC: "h:1", TCP: "h:2"}}}).Marshal())
	f.Add((&HelloAck{Reason: "busy", RetryAfter: 1e9}).Marshal())
	f.Fuzz(func(t *testing.T, p []byte) {
		if h, err := UnmarshalHello(p); err == nil {
			if h.MinVersion == 0 || h.MaxVersion < h.MinVersion || h.Cluster == "" {
				t.Fatalf("invalid hello accepted: %+v", h)
			}
			if v, err := Negotiate(h.MinVersion, h.MaxVersion, MinVersion, MaxVersion); err == nil && (v < MinVersion || v > MaxVersion || v < h.MinVersion || v > h.MaxVersion) {
				t.Fatalf("negotiated %d outside both ranges for %+v", v, h)
			}
			if _, err := UnmarshalHello(h.Marshal()); err != nil {
				t.Fatalf("re-encoded hello: %v", err)
			}
		}
		if a, err := UnmarshalHelloAck(p); err == nil {
			if len(a.Replicas) > MaxReplicas {
				t.Fatalf("%d replicas accepted", len(a.Replicas))
			}
			if _, err := UnmarshalHelloAck(a.Marshal()); err != nil {
				t.Fatalf("re-encoded hello-ack: %v", err)
			}
		}
	})
}

func seedFrames() [][]byte {
	var out [][]byte
	add := func(t Type, p []byte) {
		b, err := Append(nil, t, p)
		if err != nil {
			panic(err)
		}
		out = append(out, b)
	}
	add(TypeHello, (&Hello{MinVersion: 1, MaxVersion: 2, Cluster: "leaf"}).Marshal())
	add(TypeHeartbeat, (&Heartbeat{Seq: 1, State: "ok", ActiveStreams: 2}).Marshal(2))
	add(TypeHeartbeatReply, (&HeartbeatReply{Seq: 1, ReconnectAfter: 5e9, Replicas: []Endpoint{{QUIC: "a:1"}}}).Marshal(2))
	dr, _ := (&DialRequest{Node: "web", UserCert: []byte("c"), ClientAddr: "x", TraceID: "t"}).Marshal(2)
	add(TypeDialRequest, dr)
	for _, svc := range []Service{ServiceNodeList, ServiceUserRoles, ServiceRootLocks, ServiceTrustCAs} {
		sr, _ := (&DialRequest{Service: svc, UserCert: []byte("c"), ClientAddr: "x", TraceID: "t"}).Marshal(3)
		add(TypeDialRequest, sr)
	}
	// A v3 service request that also names a node, and one for an unknown service.
	add(TypeDialRequest, []byte{1, 3, 'w', 'e', 'b', 5, 1, 1})
	add(TypeDialRequest, []byte{5, 1, 9})
	add(TypeDialAnswer, (&DialAnswer{Reason: "no"}).Marshal(1))
	add(TypeGoAway, (&GoAway{ReconnectAfter: 1e9, Reason: "bye"}).Marshal(1))
	out = append(out, []byte{byte(TypeHello), 0xff, 0xff}, []byte{0x7f, 0, 0})
	return out
}
