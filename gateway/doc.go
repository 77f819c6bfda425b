// Package gateway runs one Tether cluster: from a config.Config it opens the state
// store, loads or creates the cluster's CAs, starts the decision engine and the auth
// service, writes the admin identity, and serves the HTTPS web API. The parts live in
// sub-packages: config (the file), auth (resources, tokens, trust, bundles), trust (the
// handshake's wire format and client), web (the HTTPS API), identity (the admin identity)
// and adminclient (tetherctl's side of the admin API).
package gateway
