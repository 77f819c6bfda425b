// Package audit owns Tether's security events: the event type every source emits (a
// sign-in, a certificate issued, an SSH session start and end, a trust or resource
// change), the Auditor interface sources call, and the auditors that deliver events:
// Pipeline writes them into the decision-log pipeline (policy/decisionlog: same sinks,
// order and drop counter as decisions), Log writes them to slog, Multi fans out (the
// metrics observer listens beside the pipeline). docs/AUDIT.md is the schema.
//
// Sources never block on an Auditor and never put secrets in Fields; the pipeline also
// erases any field whose name says it holds one.
package audit
