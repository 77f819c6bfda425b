package adminclient

import (
	"context"
	"net/http"
	"net/url"

	"github.com/tetherproject/tether/gateway/web"
)

// IssueSignup asks for a new sign-up token for user name (tetherctl users add and users
// reset); the user's password and TOTP are cleared.
func (c *Client) IssueSignup(ctx context.Context, name, ttl string) (web.SignupTokenResponse, error) {
	var out web.SignupTokenResponse
	err := c.doJSON(ctx, http.MethodPost, web.AdminSignupPath(url.PathEscape(name)), web.SignupTokenRequest{TTL: ttl}, &out)
	return out, err
}
