package node

import "testing"

// TestCheckDialAddr is the rule for direct-tcpip destinations, the agent's and the
// helper's: host names and IP addresses (IPv6 with a zone too), never an option, a path
// or anything a shell or a resolver might read otherwise.
func TestCheckDialAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:22":            true,
		"[::1]:22":                true,
		"[fe80::1%eth0]:22":       true,
		"db.internal:5432":        true,
		"db.internal.:5432":       true,
		"_srv.example.com:443":    true,
		"127.0.0.1:0":             false,
		"127.0.0.1:65536":         false,
		"127.0.0.1":               false,
		":22":                     false,
		"-oProxyCommand=id:22":    false,
		"a b:22":                  false,
		"/run/x.sock:22":          false,
		"[127.0.0.1%eth0]:22":     false,
		"[fe80::1%-x]:22":         false,
		"[fe80::1%eth0 x]:22":     false,
		"host\x00name:22":         false,
		"ünïcode.example.com:443": false,
	} {
		if err := checkDialAddr(addr); (err == nil) != ok {
			t.Errorf("checkDialAddr(%q) = %v, want allowed %v", addr, err, ok)
		}
	}
}
