# The public entry point of Tether's policy: data.tether.authz.decision.
#
# Every access decision Tether makes is this query on the input document of
# docs/ARCHITECTURE.md. The engine may evaluate it in two stages (identity per
# certificate, access per request); a differential test keeps both answers equal.
# METADATA
# title: Tether authorization
# description: >-
#   The public entry point of Tether policy. data.tether.authz.decision is every access decision Tether makes.
package tether.authz

import data.tether.access
import data.tether.identity

# METADATA
# title: Decision
# description: >-
#   The decision for the request in input, {allow, roles, reasons, expires_at},
#   on the input document of docs/ARCHITECTURE.md.
# entrypoint: true
decision := access.request_decision(identity.of(input))

# allow is the decision's verdict alone, for policies and tools that only need a boolean.
default allow := false

allow := decision.allow
