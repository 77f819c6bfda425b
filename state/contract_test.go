package state_test

import (
	"testing"

	"github.com/tetherproject/tether/state"
	"github.com/tetherproject/tether/state/storetest"
)

func TestContract(t *testing.T) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) state.Store { return newEmbedded(t, t.TempDir()) })
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		addr := sharedRedis(t).Addr()
		storetest.Run(t, func(t *testing.T) state.Store { return newRedis(t, addr, state.RedisConfig{}) })
	})
	// The namespaced view must be indistinguishable from a store.
	t.Run("embedded_namespaced", func(t *testing.T) {
		t.Parallel()
		storetest.Run(t, func(t *testing.T) state.Store {
			return state.Namespaced(newEmbedded(t, t.TempDir()), "cluster-a")
		})
	})
	t.Run("redis_namespaced", func(t *testing.T) {
		t.Parallel()
		addr := sharedRedis(t).Addr()
		storetest.Run(t, func(t *testing.T) state.Store {
			return state.Namespaced(newRedis(t, addr, state.RedisConfig{}), "cluster-a")
		})
	})
}
