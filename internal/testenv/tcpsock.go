package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// TCPSocketUID is the owner (the uid column of /proc/net/tcp) of the IPv4 socket bound
// to 127.0.0.1:local, connected to 127.0.0.1:remote, or listening when remote is 0: who
// made it, as iptables' owner match and per-user cgroup rules see it. It may be called
// from any goroutine. The kernel writes /proc/net/tcp a page at a time from its socket
// tables as they are at each read, so a socket can be missed when others come and go
// meanwhile: a socket not found is looked for again, for up to half a second.
func TCPSocketUID(local, remote int) (int, error) {
	var err error
	for range 10 {
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
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return -1, err
	}
	defer f.Close()
	wantLocal := fmt.Sprintf("0100007F:%04X", local)
	wantRemote, wantState := fmt.Sprintf("0100007F:%04X", remote), "01" // ESTABLISHED
	if remote == 0 {
		wantRemote, wantState = "00000000:0000", "0A" // LISTEN
	}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[1] != wantLocal || fields[2] != wantRemote || fields[3] != wantState {
			continue
		}
		n, err := strconv.Atoi(fields[7])
		if err != nil {
			return -1, fmt.Errorf("/proc/net/tcp: unreadable uid in %q", sc.Text())
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return -1, err
	}
	return -1, fmt.Errorf("%w: 127.0.0.1:%d → 127.0.0.1:%d (state %s) is not in /proc/net/tcp", errNoSocket, local, remote, wantState)
}
