package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// The embedded store's log file.
//
// A log starts with the 8-byte magic "TTHRLOG\x01" and continues with
// records. Each record is
//
//	length   uint32 LE  payload length N
//	crc      uint32 LE  CRC-32C (Castagnoli) of the payload
//	hcrc     uint32 LE  CRC-32C of the 8 bytes above
//	payload  N bytes:
//	  op       uint8     1 put, 2 delete, 3 revision mark
//	  revision uint64 LE
//	  expires  int64 LE  Unix milliseconds, 0 = never (put only)
//	  keylen   uint32 LE
//	  key      keylen bytes of UTF-8
//	  value    the rest (put only)
//
// The header checksum lets a reader tell a corrupt length (an error) from a
// record cut short by a crash (a torn tail it may drop). A revision mark
// carries the store's revision counter through compaction, so revisions
// never go back even when the newest write was a delete that compaction
// removed.

const (
	logMagic         = "TTHRLOG\x01"
	recordHeaderSize = 12
	payloadFixedSize = 1 + 8 + 8 + 4
	maxPayloadSize   = payloadFixedSize + maxStoredKey + MaxValueSize
)

type logOp uint8

const (
	opPut      logOp = 1
	opDelete   logOp = 2
	opRevision logOp = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// record is one decoded log record.
type record struct {
	op       logOp
	revision int64
	expires  int64 // Unix milliseconds, 0 = never
	key      string
	value    []byte
}

// encodedSize is the number of bytes appendRecord adds for r.
func (r record) encodedSize() int {
	return recordHeaderSize + payloadFixedSize + len(r.key) + len(r.value)
}

// appendRecord appends r's framed encoding to dst.
func appendRecord(dst []byte, r record) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, recordHeaderSize)...)
	dst = append(dst, byte(r.op))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.revision))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(r.expires))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(r.key)))
	dst = append(dst, r.key...)
	dst = append(dst, r.value...)
	payload := dst[start+recordHeaderSize:]
	h := dst[start : start+recordHeaderSize]
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(h[4:8], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint32(h[8:12], crc32.Checksum(h[0:8], castagnoli))
	return dst
}

// errShortRecord means the bytes end before the record does.
var errShortRecord = errors.New("record cut short")

// decodeHeader checks a record header and returns the payload length and
// checksum it announces.
func decodeHeader(h []byte) (n int, sum uint32, err error) {
	if len(h) < recordHeaderSize {
		return 0, 0, errShortRecord
	}
	if crc32.Checksum(h[0:8], castagnoli) != binary.LittleEndian.Uint32(h[8:12]) {
		return 0, 0, errors.New("record header checksum mismatch")
	}
	length := binary.LittleEndian.Uint32(h[0:4])
	if length < payloadFixedSize || length > maxPayloadSize {
		return 0, 0, fmt.Errorf("record length %d outside [%d, %d]", length, payloadFixedSize, maxPayloadSize)
	}
	return int(length), binary.LittleEndian.Uint32(h[4:8]), nil
}

// decodePayload checks a payload against its checksum and parses it. It
// accepts only what appendRecord produces, so every accepted payload
// re-encodes to the same bytes.
func decodePayload(p []byte, sum uint32) (record, error) {
	if crc32.Checksum(p, castagnoli) != sum {
		return record{}, errors.New("record checksum mismatch")
	}
	if len(p) < payloadFixedSize {
		return record{}, fmt.Errorf("record payload of %d bytes is too short", len(p))
	}
	r := record{op: logOp(p[0])}
	rev := binary.LittleEndian.Uint64(p[1:9])
	if rev == 0 || rev > math.MaxInt64 {
		return record{}, fmt.Errorf("record revision %d out of range", rev)
	}
	r.revision = int64(rev)
	r.expires = int64(binary.LittleEndian.Uint64(p[9:17]))
	keyLen := binary.LittleEndian.Uint32(p[17:21])
	rest := p[payloadFixedSize:]
	if keyLen > maxStoredKey || int(keyLen) > len(rest) {
		return record{}, fmt.Errorf("record key length %d out of range", keyLen)
	}
	r.key = string(rest[:keyLen])
	value := rest[keyLen:]
	switch r.op {
	case opPut:
		if err := checkKey(r.key); err != nil {
			return record{}, fmt.Errorf("put record: %w", err)
		}
		if r.expires < 0 {
			return record{}, fmt.Errorf("put record for %q: negative expiry %d", r.key, r.expires)
		}
		if len(value) > MaxValueSize {
			return record{}, fmt.Errorf("put record for %q: value of %d bytes", r.key, len(value))
		}
		r.value = bytes.Clone(value)
		if r.value == nil {
			r.value = []byte{}
		}
	case opDelete:
		if err := checkKey(r.key); err != nil {
			return record{}, fmt.Errorf("delete record: %w", err)
		}
		if r.expires != 0 || len(value) != 0 {
			return record{}, fmt.Errorf("delete record for %q carries an expiry or a value", r.key)
		}
	case opRevision:
		if keyLen != 0 || r.expires != 0 || len(value) != 0 {
			return record{}, errors.New("revision record carries a key, an expiry or a value")
		}
	default:
		return record{}, fmt.Errorf("unknown record op %d", r.op)
	}
	return r, nil
}

// decodeRecord decodes the record at the start of b and returns it with its
// encoded length. It returns errShortRecord when b ends inside the record.
func decodeRecord(b []byte) (record, int, error) {
	n, sum, err := decodeHeader(b)
	if err != nil {
		return record{}, 0, err
	}
	if len(b)-recordHeaderSize < n {
		return record{}, 0, errShortRecord
	}
	r, err := decodePayload(b[recordHeaderSize:recordHeaderSize+n], sum)
	if err != nil {
		return record{}, 0, err
	}
	return r, recordHeaderSize + n, nil
}

// CorruptError reports a damaged embedded log. The store refuses to open
// rather than drop the records after the damage; restore the file from a
// backup, or copy it aside and truncate it at Offset to keep what precedes.
type CorruptError struct {
	Path   string
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state: log %s is corrupt at byte offset %d: %s; refusing to open so no record is dropped silently (restore it from a backup, or truncate it at offset %d to keep the records before)", e.Path, e.Offset, e.Reason, e.Offset)
}

// tornTail describes an incomplete last record left by a crash mid-write.
type tornTail struct {
	Offset int64 // where the incomplete record starts; the log is cut here
	Bytes  int64 // how many bytes are dropped
	Reason string
}

// readLog reads a log of size bytes from r, calling fn for each record in
// order. It returns the length of the intact prefix and, when the log ends
// in an incomplete record, a description of that torn tail. Damage anywhere
// else is a *CorruptError.
func readLog(r io.Reader, path string, size int64, fn func(rec record, off int64) error) (int64, *tornTail, error) {
	corrupt := func(off int64, format string, args ...any) error {
		return &CorruptError{Path: path, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	magic := make([]byte, len(logMagic))
	if size < int64(len(magic)) {
		return 0, nil, corrupt(0, "file of %d bytes is too short for the log header", size)
	}
	if _, err := io.ReadFull(r, magic); err != nil {
		return 0, nil, fmt.Errorf("state: reading log %s: %w", path, err)
	}
	if string(magic) != logMagic {
		return 0, nil, corrupt(0, "not a tether state log (header %q)", magic)
	}
	off := int64(len(logMagic))
	header := make([]byte, recordHeaderSize)
	var payload []byte
	for off < size {
		rem := size - off
		if rem < recordHeaderSize {
			return off, &tornTail{Offset: off, Bytes: rem, Reason: "partial record header"}, nil
		}
		if _, err := io.ReadFull(r, header); err != nil {
			return 0, nil, fmt.Errorf("state: reading log %s at offset %d: %w", path, off, err)
		}
		n, sum, err := decodeHeader(header)
		if err != nil {
			if rem < recordHeaderSize+payloadFixedSize {
				// Too short to hold a whole record: an unfinished append.
				return off, &tornTail{Offset: off, Bytes: rem, Reason: "partial record at the end"}, nil
			}
			zero, zerr := allZero(r)
			if zerr != nil {
				return 0, nil, fmt.Errorf("state: reading log %s at offset %d: %w", path, off, zerr)
			}
			if zero {
				// A crash can leave the file longer than the data that
				// reached the disk; the gap reads back as zeros. A real
				// payload is never all zeros, so nothing written is here.
				return off, &tornTail{Offset: off, Bytes: rem, Reason: "unwritten (zero-filled) tail"}, nil
			}
			return 0, nil, corrupt(off, "%v", err)
		}
		end := off + recordHeaderSize + int64(n)
		if end > size {
			return off, &tornTail{Offset: off, Bytes: rem, Reason: fmt.Sprintf("record of %d bytes extends past the end of the file", recordHeaderSize+n)}, nil
		}
		if cap(payload) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return 0, nil, fmt.Errorf("state: reading log %s at offset %d: %w", path, off, err)
		}
		rec, err := decodePayload(payload, sum)
		if err != nil {
			if crc32.Checksum(payload, castagnoli) == sum {
				return 0, nil, corrupt(off, "%v", err) // intact but invalid
			}
			last := end == size
			if !last {
				zero, zerr := allZero(r)
				if zerr != nil {
					return 0, nil, fmt.Errorf("state: reading log %s at offset %d: %w", path, end, zerr)
				}
				last = zero
			}
			if last {
				// Nothing was written after this record, so it is the
				// append a crash interrupted; it was never acknowledged,
				// since every write is synced before it returns.
				return off, &tornTail{Offset: off, Bytes: rem, Reason: "last record checksum mismatch"}, nil
			}
			return 0, nil, corrupt(off, "%v", err)
		}
		if err := fn(rec, off); err != nil {
			return 0, nil, err
		}
		off = end
	}
	return off, nil, nil
}

// allZero reports whether everything left in r is zero bytes.
func allZero(r io.Reader) (bool, error) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, b := range buf[:n] {
			if b != 0 {
				return false, nil
			}
		}
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
}
