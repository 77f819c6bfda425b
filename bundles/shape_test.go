package bundles

import (
	"strings"
	"testing"
	"time"
)

// TestShapeClockSkew: a certificate is not valid before its valid_after unless the cluster
// sets an explicit max_clock_skew; the bundle carries exactly what was configured.
func TestShapeClockSkew(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		skew time.Duration
		want int64
	}{
		{"default_is_no_skew", 0, 0},
		{"explicit_skew_is_shipped", 90 * time.Second, int64(90 * time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data, err := Shape(ShapeOptions{ClusterName: "leaf.example.com", MaxClockSkew: tc.skew})
			if err != nil {
				t.Fatal(err)
			}
			cluster := data["tether"].(map[string]any)["cluster"].(map[string]any)
			if got := cluster["max_clock_skew_ns"]; got != tc.want {
				t.Fatalf("max_clock_skew_ns = %v, want %d", got, tc.want)
			}
		})
	}
	if _, err := Shape(ShapeOptions{ClusterName: "leaf.example.com", MaxClockSkew: -time.Second}); err == nil || !strings.Contains(err.Error(), "negative") {
		t.Fatalf("negative skew: got %v", err)
	}
}
