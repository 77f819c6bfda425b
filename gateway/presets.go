package gateway

import (
	"context"
	"errors"
	"fmt"

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

// createPresets creates the preset roles that do not exist yet; an operator's own role of
// the same name is left as it is.
func createPresets(ctx context.Context, a *auth.Service) error {
	rs, err := resource.Parse([]byte(presetRoles), "presets")
	if err != nil {
		return fmt.Errorf("preset roles: %w", err)
	}
	for _, r := range rs {
		if _, err := a.Create(ctx, []resource.Resource{r}, false); err != nil && !errors.Is(err, auth.ErrAlreadyExists) {
			return fmt.Errorf("creating preset role %q: %w", r.GetMetadata().Name, err)
		}
	}
	return nil
}
