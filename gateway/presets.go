package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/tetherproject/tether/gateway/auth"
	"github.com/tetherproject/tether/resource"
)

// presetRoles are the roles a new cluster starts with, as Teleport's do: `access` lets a
// user log in with the logins their own traits name, on every node. The trusted-clusters
// guide maps a root's `access` to a leaf's `visitor`, and expects `access` to exist.
const presetRoles = `kind: role
version: v5
metadata:
  name: access
  description: Preset role. Log in as the user's own logins (traits) on every node.
spec:
  allow:
    logins: ["{{internal.logins}}"]
    node_labels:
      '*': '*'
`

// createPresets creates the preset roles that do not exist; an operator's own role of
// the same name is left as it is. It runs at every start, so a preset role that was
// removed comes back, as Teleport's do.
func createPresets(ctx context.Context, a *auth.Service, log *slog.Logger) error {
	rs, err := resource.Parse([]byte(presetRoles), "presets")
	if err != nil {
		return fmt.Errorf("preset roles: %w", err)
	}
	for _, r := range rs {
		_, err := a.Create(ctx, []resource.Resource{r}, false)
		switch {
		case err == nil:
			log.Info("created preset role", "role", r.GetMetadata().Name)
		case errors.Is(err, auth.ErrAlreadyExists):
		default:
			return fmt.Errorf("creating preset role %q: %w", r.GetMetadata().Name, err)
		}
	}
	return nil
}
