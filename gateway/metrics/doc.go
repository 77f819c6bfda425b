// Package metrics owns tetherd's Prometheus metrics and its diagnostic HTTP server
// (`diag_addr`: /metrics, /healthz, /readyz), as Teleport's --diag-addr.
//
// Nothing on a request path touches a Prometheus type: the decision engine, the decision
// log and the tunnel keep plain atomic counters, and audit events bump the counters of
// an Events observer; a Collector reads them all at scrape time and turns them into
// constant metrics. Label values come from fixed sets (actions, results, reason classes,
// transports, components), never from user names or free text.
package metrics
