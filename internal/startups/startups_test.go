package startups

import (
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	l := New(2)
	r1, ok1 := l.Take()
	_, ok2 := l.Take()
	if !ok1 || !ok2 {
		t.Fatal("places within the bound refused")
	}
	if _, ok := l.Take(); ok {
		t.Fatal("a place over the bound given")
	}
	r1()
	r1() // a second release gives back nothing more
	if _, ok := l.Take(); !ok {
		t.Fatal("a released place not given again")
	}
	if _, ok := l.Take(); ok {
		t.Fatal("a release counted twice")
	}
	if New(0).Max() != 1 {
		t.Fatal("New(0) must still bound")
	}
}

func TestRefusedReportsOnceAMinute(t *testing.T) {
	l := New(1)
	t0 := time.Unix(1_800_000_000, 0)
	for i, tc := range []struct {
		at     time.Duration
		n      int
		report bool
	}{
		{0, 1, true},
		{time.Second, 0, false},
		{30 * time.Second, 0, false},
		{61 * time.Second, 3, true},
		{62 * time.Second, 0, false},
	} {
		n, report := l.Refused(t0.Add(tc.at))
		if n != tc.n || report != tc.report {
			t.Fatalf("refusal %d at +%v: n=%d report=%v, want n=%d report=%v", i, tc.at, n, report, tc.n, tc.report)
		}
	}
}
