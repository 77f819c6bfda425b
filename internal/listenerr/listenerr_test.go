package listenerr

import (
	"net"
	"strings"
	"testing"
)

// A listen that fails says which setting, which address and what to do, without Go's
// "listen tcp ...: bind: ..." chain.
func TestListenErrorsAreSaidPlainly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = net.Listen("tcp", busy.Addr().String())
	if err == nil {
		t.Fatal("a second listener on the same port")
	}
	msg := Wrap("proxy.web_listen_addr", busy.Addr().String(), err).Error()
	for _, want := range []string{"proxy.web_listen_addr", busy.Addr().String(), "already in use", "choose a free port"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "listen tcp") || strings.Contains(msg, "bind:") {
		t.Errorf("%q carries Go's error chain", msg)
	}
}
