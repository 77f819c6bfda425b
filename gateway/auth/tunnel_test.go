package auth

import (
	"context"
	"testing"
	"time"

	"github.com/tetherproject/tether/resource"
)

// remote_cluster status comes from the root replicas' tunnel records: online only while
// an open tunnel was heard from within its keep-alive window, offline once heartbeats stop
// or the tunnel closed; QUIC shown when replicas differ; a removed leaf gets no record.
func TestRemoteClusterStatusFollowsTunnelRecords(t *testing.T) {
	ctx := context.Background()
	root := newService(t, "root.example.com")
	if _, err := root.ValidateTrustedCluster(ctx, trustToken(t, root, TokenOptions{}), hostCAOf(t, "leaf.example.com"), "leaf"); err != nil {
		t.Fatal(err)
	}
	status := func() resource.RemoteClusterStatus {
		t.Helper()
		rs, err := root.Get(ctx, resource.KindRemoteCluster, "leaf.example.com", false)
		if err != nil {
			t.Fatal(err)
		}
		return rs[0].(*resource.RemoteCluster).Status
	}
	now := time.Now().UTC()
	put := func(rec TunnelRecord) {
		t.Helper()
		if err := root.RecordTunnel(ctx, "leaf.example.com", rec); err != nil {
			t.Fatal(err)
		}
	}
	if st := status(); st.Connection != resource.ConnectionOffline || st.Transport != "" {
		t.Fatalf("before any tunnel: %+v", st)
	}
	put(TunnelRecord{Replica: "a:3081", Transport: "ssh", LastHeartbeat: now, OnlineUntil: now.Add(45 * time.Second)})
	if st := status(); st.Connection != resource.ConnectionOnline || st.Transport != "ssh" || !st.LastHeartbeat.Equal(now) {
		t.Fatalf("one ssh tunnel: %+v", st)
	}
	put(TunnelRecord{Replica: "b:3081", Transport: "quic", LastHeartbeat: now, OnlineUntil: now.Add(45 * time.Second)})
	if st := status(); st.Transport != "quic" {
		t.Fatalf("quic on one replica, ssh on the other: %+v", st)
	}
	put(TunnelRecord{Replica: "b:3081", Transport: "quic", LastHeartbeat: now, OnlineUntil: now.Add(45 * time.Second), Closed: true})
	put(TunnelRecord{Replica: "a:3081", Transport: "ssh", LastHeartbeat: now.Add(-time.Minute), OnlineUntil: now.Add(-time.Second)})
	if st := status(); st.Connection != resource.ConnectionOffline || !st.LastHeartbeat.Equal(now) {
		t.Fatalf("heartbeats stopped on one replica, tunnel closed on the other: %+v", st)
	}
	if s, err := root.Status(ctx); err != nil || s.RemoteClusters.Offline != 1 || s.RemoteClusters.Online != 0 {
		t.Fatalf("status counts: %+v %v", s.RemoteClusters, err)
	}
	if err := root.RecordTunnel(ctx, "gone.example.com", TunnelRecord{Replica: "a:3081", LastHeartbeat: now, OnlineUntil: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if recs, _ := root.tunnelRecords(ctx); len(recs["gone.example.com"]) != 0 {
		t.Fatal("a record was written for a leaf with no remote_cluster")
	}
}
