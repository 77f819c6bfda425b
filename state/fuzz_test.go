package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"
)

func fuzzRecords() []record {
	return []record{
		{op: opPut, revision: 1, key: "roles/admin", value: []byte(`{"kind":"role"}`)},
		{op: opPut, revision: 2, expires: 1_900_000_000_000, key: "live/heartbeat/node/n1", value: []byte{}},
		{op: opDelete, revision: 3, key: "roles/admin"},
		{op: opPut, revision: 4, key: "ключ\x00*", value: bytes.Repeat([]byte{0xff}, 100)},
		{op: opRevision, revision: 9},
	}
}

// FuzzDecodeRecord: the decoder never panics, and whatever it accepts is
// exactly what the encoder writes for the record it returns, so no damaged
// byte can slip through.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range fuzzRecords() {
		enc := appendRecord(nil, r)
		f.Add(enc)
		f.Add(enc[:len(enc)-1])
		bad := slices.Clone(enc)
		bad[len(bad)/2] ^= 1
		f.Add(bad)
		f.Add(enc[recordHeaderSize:])
	}
	f.Add([]byte{})
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(b []byte) {
			r, n, err := decodeRecord(b)
			if err != nil {
				if n != 0 {
					t.Fatalf("error %v with length %d", err, n)
				}
				return
			}
			if n < recordHeaderSize+payloadFixedSize || n > len(b) {
				t.Fatalf("accepted length %d of %d bytes", n, len(b))
			}
			if enc := appendRecord(nil, r); !bytes.Equal(enc, b[:n]) {
				t.Fatalf("accepted bytes that do not re-encode:\n got %x\nwant %x", b[:n], enc)
			}
		}
		check(b)
		// The same bytes as a payload under valid checksums, so the
		// fuzzer reaches the payload's own validation.
		if len(b) <= maxPayloadSize {
			check(frame(b))
		}
	})
}

// FuzzLogDamage damages a valid log (one flipped byte, a cut, or both) and
// checks readLog's verdict: every record before the damage comes back
// unchanged, nothing after it does, and damage before the last record is an
// error, never a silent truncation.
func FuzzLogDamage(f *testing.F) {
	f.Add(uint16(20), byte(0x01), uint16(0xffff))
	f.Add(uint16(0), byte(0x80), uint16(0xffff))
	f.Add(uint16(0xffff), byte(0), uint16(50))
	f.Add(uint16(100), byte(0x10), uint16(120))
	f.Fuzz(func(t *testing.T, flipAt uint16, mask byte, cutAt uint16) {
		recs := fuzzRecords()
		log := []byte(logMagic)
		var ends []int
		for _, r := range recs {
			log = appendRecord(log, r)
			ends = append(ends, len(log))
		}
		damage := len(log) // first damaged byte
		flipped := false
		if mask != 0 && int(flipAt) < len(log) {
			log[flipAt] ^= mask
			damage, flipped = int(flipAt), true
		}
		if int(cutAt) < len(log) {
			log = log[:cutAt]
			if int(cutAt) <= damage {
				damage, flipped = int(cutAt), false
			}
		}
		var got []record
		good, torn, err := readLog(bytes.NewReader(log), "fuzz.log", int64(len(log)), func(r record, _ int64) error {
			got = append(got, r)
			return nil
		})
		intact := 0 // records wholly before the damage
		for intact < len(ends) && ends[intact] <= damage {
			intact++
		}
		if damage < len(logMagic) {
			if err == nil {
				t.Fatalf("damaged header accepted")
			}
			return
		}
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("unexpected error type: %v", err)
			}
			// Refusing is always safe for a flipped byte (even in the last
			// record: a crash cuts, it does not flip); a cut must recover.
			if !flipped {
				t.Fatalf("a cut log (damage at %d) was refused: %v", damage, err)
			}
			return
		}
		if len(got) != intact {
			t.Fatalf("damage at %d: read %d records, want the %d before it", damage, len(got), intact)
		}
		for i := range got {
			if !recordsEqual(got[i], recs[i]) {
				t.Fatalf("record %d read back as %+v, want %+v", i, got[i], recs[i])
			}
		}
		if flipped && ends[intact] < len(log) {
			t.Fatalf("flip at %d inside record %d, which records follow, was dropped as a torn tail", damage, intact)
		}
		if intact < len(recs) && damage < len(log) && torn == nil {
			t.Fatalf("damage at %d not reported", damage)
		}
		if torn != nil && int(good) != len(logMagic)+sum(ends, intact) {
			t.Fatalf("torn tail cut at %d", good)
		}
	})
}

// frame puts a header with correct checksums in front of payload.
func frame(payload []byte) []byte {
	h := make([]byte, recordHeaderSize, recordHeaderSize+len(payload))
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint32(h[8:12], crc32.Checksum(h[0:8], castagnoli))
	return append(h, payload...)
}

func sum(ends []int, n int) int {
	if n == 0 {
		return 0
	}
	return ends[n-1] - len(logMagic)
}

func recordsEqual(a, b record) bool {
	return a.op == b.op && a.revision == b.revision && a.expires == b.expires && a.key == b.key && bytes.Equal(a.value, b.value)
}
