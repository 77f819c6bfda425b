package testproc

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// PingTunnelAddr is the reverse tunnel address a cluster's /webapi/ping advertises at web
// address addr: what a leaf's trusted_cluster tunnel_addr holds in the seed guide.
func PingTunnelAddr(t testing.TB, addr string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // reading the advertised address only
	resp, err := client.Get("https://" + addr + "/webapi/ping")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ping struct {
		Proxy struct {
			SSH struct {
				Tunnel string `json:"ssh_tunnel_public_addr"`
			} `json:"ssh"`
		} `json:"proxy"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ping); err != nil || ping.Proxy.SSH.Tunnel == "" {
		t.Fatalf("ping %s: %v %+v", addr, err, ping)
	}
	return ping.Proxy.SSH.Tunnel
}
