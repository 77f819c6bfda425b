# The public entry point of Tether's policy: data.tether.authz.decision.
#
# Every access decision Tether makes is this query on the input document of
# docs/ARCHITECTURE.md. The engine may evaluate it in two stages (identity per
# certificate, access per request); a differential test keeps both answers equal.
package tether.authz

import data.tether.access
import data.tether.identity

decision := access.request_decision(identity.of(input))

# allow is the decision's verdict alone, for policies and tools that only need a boolean.
default allow := false

allow := decision.allow
