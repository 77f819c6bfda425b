package adminclient

import (
	"context"
	"net/http"

	"github.com/tetherproject/tether/gateway/web"
)

// Status reads the cluster's status (tetherctl status).
func (c *Client) Status(ctx context.Context) (web.StatusResponse, error) {
	var out web.StatusResponse
	err := c.doJSON(ctx, http.MethodGet, web.StatusPath, nil, &out)
	return out, err
}
