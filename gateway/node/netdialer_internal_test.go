package node

import (
	"encoding/binary"
	"testing"
)

func FuzzParseDialAnswer(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0})
	f.Add(append([]byte{0, 0, 0, 2, 1}, "connection refused"...))
	f.Add([]byte{0, 0, 0, 1, 0, 'x'})
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, msg []byte) {
		id, status, reason, err := parseDialAnswer(msg)
		if err != nil {
			return
		}
		if len(msg) < 5 || id != binary.BigEndian.Uint32(msg) || status > 1 || len(reason) > maxDialReason || (status == 0 && len(reason) != 0) {
			t.Fatalf("%x: took id %d status %d reason %q", msg, id, status, reason)
		}
	})
}

func FuzzParseDialRequest(f *testing.F) {
	f.Add(append([]byte{0, 0, 0, 1}, "127.0.0.1:22"...))
	f.Add(append([]byte{0, 0, 0, 1}, "db.internal:5432"...))
	f.Add(append([]byte{0, 0, 0, 1}, "[fe80::1%eth0]:22"...))
	f.Add(append([]byte{0, 0, 0, 1}, "-x:22"...))
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, addr, err := parseDialRequest(msg)
		if err != nil {
			return
		}
		if len(msg) > maxDialRequest || checkDialAddr(addr) != nil {
			t.Fatalf("%x: took %q", msg, addr)
		}
	})
}

func TestDialAnswersAndRequests(t *testing.T) {
	msg := func(id uint32, rest ...byte) []byte { return append(binary.BigEndian.AppendUint32(nil, id), rest...) }
	for _, tc := range []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{"a socket", msg(7, 0), true},
		{"a refusal", msg(7, append([]byte{1}, "connection refused"...)...), true},
		{"a socket with a reason", msg(7, 0, 'x'), false},
		{"an unknown status", msg(7, 2), false},
		{"too short", []byte{0, 0, 7}, false},
		{"a reason too long", msg(7, append([]byte{1}, make([]byte, maxDialReason+1)...)...), false},
	} {
		if _, _, _, err := parseDialAnswer(tc.msg); (err == nil) != tc.ok {
			t.Errorf("answer %s: error %v", tc.name, err)
		}
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{"an address", msg(1, []byte("127.0.0.1:22")...), true},
		{"a host name", msg(1, []byte("db.internal:5432")...), true},
		{"no port", msg(1, []byte("127.0.0.1")...), false},
		{"a name starting with a dash", msg(1, []byte("-oProxyCommand:22")...), false},
		{"empty", msg(1), false},
		{"too long", msg(1, make([]byte, maxDialRequest)...), false},
	} {
		if _, _, err := parseDialRequest(tc.msg); (err == nil) != tc.ok {
			t.Errorf("request %s: error %v", tc.name, err)
		}
	}
}
