package decisionlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
)

// fileSink appends JSON lines to a file. Only the sink's delivery goroutine
// uses it.
type fileSink struct {
	path string
	f    *os.File
	buf  []byte
}

func openFileSink(path string) (*fileSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening decision log file: %w", err)
	}
	return &fileSink{path: path, f: f}, nil
}

// deliver writes events in one write. When the write fails part way, the
// file is truncated back to the end of the last complete line, so a retry
// does not leave half a line behind.
func (s *fileSink) deliver(_ context.Context, events [][]byte) (int, error) {
	s.buf = appendLines(s.buf[:0], events)
	start, err := s.f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("writing decision log file %s: %w", s.path, err)
	}
	n, err := s.f.Write(s.buf)
	if err != nil {
		lines, good := completeLines(s.buf[:n])
		if good < n {
			_ = s.f.Truncate(start + int64(good))
		}
		return lines, fmt.Errorf("writing decision log file %s: %w", s.path, err)
	}
	return len(events), nil
}

func (s *fileSink) sync() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("syncing decision log file %s: %w", s.path, err)
	}
	return nil
}

func (s *fileSink) close() error {
	err := s.sync()
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing decision log file %s: %w", s.path, cerr)
	}
	return err
}

func appendLines(buf []byte, events [][]byte) []byte {
	for _, e := range events {
		buf = append(buf, e...)
		buf = append(buf, '\n')
	}
	return buf
}

// completeLines counts the complete lines in b and the bytes they span.
func completeLines(b []byte) (lines, n int) {
	for {
		i := bytes.IndexByte(b[n:], '\n')
		if i < 0 {
			return lines, n
		}
		lines++
		n += i + 1
	}
}
