package decisionlog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A spool segment holds one batch of encoded events:
//
//	segment = magic record*
//	magic   = "tdlspool1\n"
//	record  = length:uint32be crc:uint32be event:[length]byte
//
// where crc is the CRC-32C (Castagnoli) of the event's JSON. A segment is
// written to a temporary file, synced and renamed, so a complete name always
// has complete contents; the checksums catch what the disk or an operator
// did to it afterwards.
const segmentMagic = "tdlspool1\n"

const (
	segmentExt     = ".seg"
	corruptExt     = ".corrupt"
	recordHeader   = 8
	maxRecordBytes = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorruptSegment is wrapped by decodeSegment's errors.
var errCorruptSegment = errors.New("corrupt spool segment")

// errSpoolFull is returned when a segment would push the spool past its bound.
var errSpoolFull = errors.New("spool is full")

// encodeSegment returns the segment holding events, each one JSON document.
func encodeSegment(events [][]byte) []byte {
	n := len(segmentMagic)
	for _, e := range events {
		n += recordHeader + len(e)
	}
	b := make([]byte, 0, n)
	b = append(b, segmentMagic...)
	for _, e := range events {
		b = binary.BigEndian.AppendUint32(b, uint32(len(e)))
		b = binary.BigEndian.AppendUint32(b, crc32.Checksum(e, castagnoli))
		b = append(b, e...)
	}
	return b
}

// decodeSegment returns the events of a segment. When the segment is
// truncated or corrupt, it returns the events before the first bad record
// together with an error wrapping errCorruptSegment that says where. The
// events alias data.
func decodeSegment(data []byte) ([][]byte, error) {
	if len(data) < len(segmentMagic) || string(data[:len(segmentMagic)]) != segmentMagic {
		return nil, fmt.Errorf("%w: no %q header", errCorruptSegment, strings.TrimSpace(segmentMagic))
	}
	var events [][]byte
	off := len(segmentMagic)
	for off < len(data) {
		rest := data[off:]
		if len(rest) < recordHeader {
			return events, fmt.Errorf("%w: record %d at byte %d: truncated header", errCorruptSegment, len(events), off)
		}
		n := binary.BigEndian.Uint32(rest)
		sum := binary.BigEndian.Uint32(rest[4:])
		if n == 0 || n > maxRecordBytes || uint64(n) > uint64(len(rest)-recordHeader) {
			return events, fmt.Errorf("%w: record %d at byte %d: length %d does not fit the %d bytes left", errCorruptSegment, len(events), off, n, len(rest)-recordHeader)
		}
		ev := rest[recordHeader : recordHeader+int(n) : recordHeader+int(n)]
		if crc32.Checksum(ev, castagnoli) != sum {
			return events, fmt.Errorf("%w: record %d at byte %d: checksum mismatch", errCorruptSegment, len(events), off)
		}
		if !json.Valid(ev) {
			// A valid checksum over invalid JSON was written by something
			// else than this package; uploading it would wedge the sink.
			return events, fmt.Errorf("%w: record %d at byte %d: not JSON", errCorruptSegment, len(events), off)
		}
		events = append(events, ev)
		off += recordHeader + int(n)
	}
	return events, nil
}

// spool is one sink's directory of segments, named by the sequence number of
// their batch so that the directory lists them in delivery order. Only the
// sink's drainer goroutine uses it.
type spool struct {
	dir   string
	max   int64
	bytes int64
	segs  []segment // sorted by seq
}

type segment struct {
	seq  uint64
	size int64
}

// openSpool creates dir if needed and indexes the segments a previous run
// left there, removing the temporary files of interrupted writes.
func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating spool directory: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading spool directory: %w", err)
	}
	s := &spool{dir: dir, max: maxBytes}
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(dir, name))
			continue
		}
		base, ok := strings.CutSuffix(name, segmentExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		seq, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("reading spool directory: %w", err)
		}
		s.segs = append(s.segs, segment{seq: seq, size: info.Size()})
		s.bytes += info.Size()
	}
	slices.SortFunc(s.segs, func(a, b segment) int { return cmpUint(a.seq, b.seq) })
	return s, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (s *spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, segmentExt))
}

// head returns the lowest sequence number in the spool.
func (s *spool) head() (uint64, bool) {
	if len(s.segs) == 0 {
		return 0, false
	}
	return s.segs[0].seq, true
}

// lastSeq returns the highest sequence number in the spool, 0 if empty.
func (s *spool) lastSeq() uint64 {
	if len(s.segs) == 0 {
		return 0
	}
	return s.segs[len(s.segs)-1].seq
}

func (s *spool) find(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(s.segs, seq, func(g segment, seq uint64) int { return cmpUint(g.seq, seq) })
}

// write stores events as the segment seq, replacing one of the same number,
// durably: the data is synced before the rename and the directory after it.
func (s *spool) write(seq uint64, events [][]byte) error {
	data := encodeSegment(events)
	i, exists := s.find(seq)
	var old int64
	if exists {
		old = s.segs[i].size
	}
	if s.bytes-old+int64(len(data)) > s.max {
		return errSpoolFull
	}
	tmp, err := os.CreateTemp(s.dir, "segment-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("writing spool segment: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path(seq))
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("writing spool segment: %w", err)
	}
	s.syncDir()
	if exists {
		s.segs[i].size = int64(len(data))
	} else {
		s.segs = slices.Insert(s.segs, i, segment{seq: seq, size: int64(len(data))})
	}
	s.bytes += int64(len(data)) - old
	return nil
}

func (s *spool) syncDir() {
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync() // best effort: some file systems cannot sync directories
		_ = d.Close()
	}
}

// read returns the events of segment seq. A corrupt segment yields its valid
// leading events and an error wrapping errCorruptSegment.
func (s *spool) read(seq uint64) ([][]byte, error) {
	data, err := os.ReadFile(s.path(seq))
	if err != nil {
		return nil, fmt.Errorf("reading spool segment: %w", err)
	}
	return decodeSegment(data)
}

// remove deletes segment seq, once its events are delivered.
func (s *spool) remove(seq uint64) error {
	i, ok := s.find(seq)
	if !ok {
		return nil
	}
	s.bytes -= s.segs[i].size
	s.segs = slices.Delete(s.segs, i, i+1)
	if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing delivered spool segment: %w", err)
	}
	return nil
}

// quarantine renames segment seq to *.corrupt, out of the spool's index and
// bound, and keeps it for an operator to look at. It returns the new name.
func (s *spool) quarantine(seq uint64) (string, error) {
	i, ok := s.find(seq)
	if ok {
		s.bytes -= s.segs[i].size
		s.segs = slices.Delete(s.segs, i, i+1)
	}
	to := strings.TrimSuffix(s.path(seq), segmentExt) + corruptExt
	if err := os.Rename(s.path(seq), to); err != nil {
		_ = os.Remove(s.path(seq))
		return "", fmt.Errorf("moving corrupt spool segment aside: %w", err)
	}
	return to, nil
}
