package decisionlog

import (
	"context"
	"fmt"
	"io"
)

// consoleSink writes JSON lines to an io.Writer it does not own.
type consoleSink struct {
	w   io.Writer
	buf []byte
	// partial is how much of the first undelivered line a failed write
	// already wrote. A writer cannot take bytes back, so the retry, which
	// starts with the same event, writes only the rest of that line.
	partial int
}

func (s *consoleSink) deliver(_ context.Context, events [][]byte) (int, error) {
	s.buf = appendLines(s.buf[:0], events)
	skip := s.partial
	if len(events) == 0 || skip > len(events[0]) {
		skip = 0
	}
	n, err := s.w.Write(s.buf[skip:])
	if err == nil && n < len(s.buf)-skip {
		err = io.ErrShortWrite
	}
	if err != nil {
		lines, good := completeLines(s.buf[:skip+n])
		s.partial = skip + n - good
		return lines, fmt.Errorf("writing decision log to console: %w", err)
	}
	s.partial = 0
	return len(events), nil
}

func (*consoleSink) sync() error  { return nil }
func (*consoleSink) close() error { return nil }
