package testenv

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// TCPSocketUID is the owner (the uid column of /proc/net/tcp) of the IPv4 socket bound
// to 127.0.0.1:local, connected to 127.0.0.1:remote, or listening when remote is 0: who
// made it, as iptables' owner match and per-user cgroup rules see it. It may be called
// from any goroutine.
func TCPSocketUID(local, remote int) (int, error) {
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
	return -1, fmt.Errorf("no socket 127.0.0.1:%d → 127.0.0.1:%d (state %s) in /proc/net/tcp", local, remote, wantState)
}
