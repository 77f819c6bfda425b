package relaycopy

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// sizes records the buffer sizes Copy reads with, and hands out at most chunk bytes a read.
type sizes struct {
	r     io.Reader
	chunk int
	seen  []int
}

func (s *sizes) Read(p []byte) (int, error) {
	s.seen = append(s.seen, len(p))
	if len(p) > s.chunk {
		p = p[:s.chunk]
	}
	return s.r.Read(p)
}

func TestCopyGrowsOnlyForBulk(t *testing.T) {
	data := make([]byte, 3<<20)
	_, _ = rand.Read(data)

	// Interactive: reads never fill the buffer, so it stays small.
	small := &sizes{r: bytes.NewReader(data[:100<<10]), chunk: 1000}
	var out bytes.Buffer
	n, err := Copy(&out, small)
	if err != nil || n != 100<<10 || !bytes.Equal(out.Bytes(), data[:100<<10]) {
		t.Fatalf("interactive copy: %d %v", n, err)
	}
	for _, s := range small.seen {
		if s != Small {
			t.Fatalf("interactive copy read with %d bytes, want %d throughout", s, Small)
		}
	}

	// Bulk: the first full read moves to Large.
	bulk := &sizes{r: bytes.NewReader(data), chunk: 1 << 30}
	out.Reset()
	n, err = Copy(&out, bulk)
	if err != nil || n != int64(len(data)) || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("bulk copy: %d %v", n, err)
	}
	if bulk.seen[0] != Small || bulk.seen[1] != Large || bulk.seen[len(bulk.seen)-1] != Large {
		t.Fatalf("bulk copy read sizes %v, want %d then %d", bulk.seen, Small, Large)
	}

	// One byte at a time still copies everything.
	out.Reset()
	if n, err := Copy(&out, iotest.OneByteReader(bytes.NewReader(data[:5000]))); err != nil || n != 5000 || !bytes.Equal(out.Bytes(), data[:5000]) {
		t.Fatalf("one byte reads: %d %v", n, err)
	}
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("broken pipe")
	}
	f.after--
	return len(p), nil
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestCopyReportsErrors(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100<<10)
	if n, err := Copy(&failWriter{after: 1}, bytes.NewReader(data)); err == nil || err.Error() != "broken pipe" || n != Small {
		t.Errorf("write error: %d %v", n, err)
	}
	if _, err := Copy(shortWriter{}, bytes.NewReader(data)); !errors.Is(err, io.ErrShortWrite) {
		t.Errorf("short write: %v", err)
	}
	boom := errors.New("reset by peer")
	var out bytes.Buffer
	if n, err := Copy(&out, iotest.DataErrReader(io.MultiReader(bytes.NewReader(data[:10]), iotest.ErrReader(boom)))); !errors.Is(err, boom) || n != 10 {
		t.Errorf("read error: %d %v", n, err)
	}
}
