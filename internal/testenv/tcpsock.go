package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// TCPSocketUID is the owner (the uid column of /proc/net/tcp) of the socket bound to
// 127.0.0.1:local, connected to 127.0.0.1:remote (established, or closing with an owner
// still: a half-closed connection is in FIN_WAIT or CLOSE_WAIT), or listening when
// remote is 0: who
// made it, as iptables' owner match and per-user cgroup rules see it. It may be called
// from any goroutine. The socket is looked for in /proc/net/tcp and, as an IPv4-mapped
// address, in /proc/net/tcp6 (a dual-stack socket). Each table is read in one read call
// where it fits, since the kernel writes it from its socket tables as they are at each
// read and a socket can be missed between two reads while others come and go; a socket
// not found is looked for again, for up to two seconds.
func TCPSocketUID(local, remote int) (int, error) {
	var err error
	for range 40 {
		var uid int
		if uid, err = tcpSocketUID(local, remote); err == nil || !errors.Is(err, errNoSocket) {
			return uid, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1, err
}

var errNoSocket = errors.New("no such socket")

func tcpSocketUID(local, remote int) (int, error) {
	// A connected socket in any state that still has its owner: established, or closing
	// after either side shut its writing half (a client that sent all it had, as ssh -W
	// on a short stdin, is in FIN_WAIT2 while it reads the answer). TIME_WAIT (06) and
	// CLOSE (07) sockets no longer carry one.
	wantState := func(st string) bool { return st != "0A" && st != "06" && st != "07" }
	stateName := "connected"
	if remote == 0 {
		wantState = func(st string) bool { return st == "0A" } // LISTEN
		stateName = "listening"
	}
	tables := []struct{ path, loopback, any string }{
		{"/proc/net/tcp", "0100007F", "00000000"},
		{"/proc/net/tcp6", "0000000000000000FFFF00000100007F", "00000000000000000000000000000000"},
	}
	lines := 0
	var near []string // lines naming either port, for the error
	for _, tb := range tables {
		data, err := readWhole(tb.path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return -1, err
		}
		wantLocal := fmt.Sprintf("%s:%04X", tb.loopback, local)
		wantRemote := fmt.Sprintf("%s:%04X", tb.loopback, remote)
		if remote == 0 {
			wantRemote = tb.any + ":0000"
		}
		for i, line := range strings.Split(string(data), "\n") {
			if i == 0 {
				continue // header
			}
			lines++
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
			fields := strings.Fields(line)
			if len(fields) >= 4 && len(near) < 8 && (strings.HasSuffix(fields[1], fmt.Sprintf(":%04X", local)) || strings.HasSuffix(fields[2], fmt.Sprintf(":%04X", local))) {
				near = append(near, strings.Join(fields[1:4], " ")+" uid "+fields[min(7, len(fields)-1)])
			}
			if len(fields) < 8 || fields[1] != wantLocal || fields[2] != wantRemote || !wantState(fields[3]) {
				continue
			}
			n, err := strconv.Atoi(fields[7])
			if err != nil {
				return -1, fmt.Errorf("%s: unreadable uid in %q", tb.path, line)
			}
			return n, nil
		}
	}
	return -1, fmt.Errorf("%w: 127.0.0.1:%d → 127.0.0.1:%d (%s) is not in /proc/net/tcp or tcp6 (%d sockets listed; naming port %d: %q)", errNoSocket, local, remote, stateName, lines, local, near)
}

// readWhole reads a /proc file with as few read calls as it takes: one, when the buffer
// holds the whole table.
func readWhole(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out bytes.Buffer
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF || (err == nil && n == 0) {
			return out.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}
