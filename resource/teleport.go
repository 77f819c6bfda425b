package resource

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Teleport imports. `tctl get role/X` (and user, trusted_cluster, token) prints fields that
// Tether has no use for. Parse accepts a field of Teleport's when ignoring it can only
// narrow access, and reports it in one warning (ParseWithWarnings); it refuses one whose
// absence would widen access, saying why; any other unknown field stays an error naming
// field and line.
//
// The rule of thumb, as a security reviewer would apply it:
//   - an allow field that grants something Tether does not serve (databases, Kubernetes,
//     desktops, API rules, access requests) is ignored: Tether grants less;
//   - an allow field that narrows something Tether does grant (node_labels_expression next
//     to node_labels) is refused: ignored, the grant would be wider;
//   - a deny field Tether does not model is refused unless empty: ignored, nothing would deny;
//   - a `where` clause is refused where it would restrict something Tether honours; inside
//     an ignored allow field (allow.rules, allow.impersonate, ...) it narrows a grant Tether
//     never makes, and is ignored with it (Teleport's preset access role imports as is);
//   - an option is ignored when every value means "no more than Tether does"; an option
//     whose value restricts what Tether allows (record_session strict, pin_source_ip,
//     client_idle_timeout, device trust required, ...) is refused when set so.
//
// Tether's gateway offers no X11 forwarding, desktops, Kubernetes, databases or host user
// creation; the options for those are ignored whatever their value. A feature that adds
// one of them must move its option to the refused side. Port and agent forwarding are
// served: port_forwarding and forward_agent are role options Tether decides by.

// IgnoredField is one Teleport field Parse accepted and Tether does not use.
type IgnoredField struct {
	Line int
	// Resource names the resource, as in errors: `role "access"`.
	Resource string
	// Field is the field's path, for example "spec.allow.rules".
	Field string
}

// Warning lists every ignored Teleport field of one input.
type Warning struct {
	Source string
	Fields []IgnoredField
}

// String formats the warning as one message, a line per field.
func (w *Warning) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: Tether ignores %d Teleport field(s) it has no use for (they cannot widen access):", w.Source, len(w.Fields))
	for _, f := range w.Fields {
		fmt.Fprintf(&b, "\n  line %d: %s: %s", f.Line, f.Resource, f.Field)
	}
	return b.String()
}

// teleportRule says what to do with a Teleport field Tether's types do not have. refuse
// returns why the field cannot be ignored given its value, or "" to ignore it.
type teleportRule struct {
	refuse func(n *yaml.Node) string
}

func ignoreAlways(*yaml.Node) string { return "" }

// refuseUnlessEmpty refuses a value that is set (not null, "", [], {}, false or 0).
func refuseUnlessEmpty(why string) func(*yaml.Node) string {
	return func(n *yaml.Node) string {
		if isEmptyValue(n) {
			return ""
		}
		return why
	}
}

// refuseIf refuses when the scalar value (lowercased) is one of bad.
func refuseIf(why string, bad ...string) func(*yaml.Node) string {
	return func(n *yaml.Node) string {
		n = followAlias(n)
		if n != nil && n.Kind == yaml.ScalarNode {
			v := strings.ToLower(strings.TrimSpace(n.Value))
			for _, b := range bad {
				if v == b {
					return why
				}
			}
		}
		return ""
	}
}

// refuseNonZeroDuration refuses a duration other than 0 / "0s" / "".
func refuseNonZeroDuration(why string) func(*yaml.Node) string {
	return func(n *yaml.Node) string {
		n = followAlias(n)
		if n == nil || n.Kind != yaml.ScalarNode || isNull(n) {
			return ""
		}
		v := strings.TrimSpace(n.Value)
		if v == "" || v == "0" {
			return ""
		}
		if d, err := time.ParseDuration(v); err == nil && d == 0 {
			return ""
		}
		return why
	}
}

func isEmptyValue(n *yaml.Node) bool {
	n = followAlias(n)
	switch {
	case n == nil || isNull(n):
		return true
	case n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode:
		return len(n.Content) == 0
	case n.Kind == yaml.ScalarNode:
		v := strings.ToLower(strings.TrimSpace(n.Value))
		return v == "" || v == "false" || v == "0" || v == "0s"
	}
	return false
}

// Teleport's role conditions (allow and deny) that Tether does not model. In allow they
// grant access to things Tether does not serve; in deny they would deny something.
var teleportConditionFields = []string{
	"app_labels", "app_labels_expression", "aws_role_arns", "azure_identities", "gcp_service_accounts",
	"db_labels", "db_labels_expression", "db_service_labels", "db_service_labels_expression",
	"db_names", "db_users", "db_roles", "db_permissions",
	"kubernetes_groups", "kubernetes_users", "kubernetes_labels", "kubernetes_labels_expression", "kubernetes_resources",
	"windows_desktop_labels", "windows_desktop_labels_expression", "windows_desktop_logins", "desktop_groups",
	"host_groups", "host_sudoers", "group_labels", "group_labels_expression",
	"rules", "impersonate", "request", "review_requests", "join_sessions", "require_session_join",
	"spiffe", "account_assignments", "github_permissions",
	"workload_identity_labels", "workload_identity_labels_expression",
	"node_labels_expression", "cluster_labels_expression",
}

// Allow conditions that narrow a grant Tether makes: ignoring them would widen it.
var teleportNarrowingAllow = map[string]string{
	"node_labels_expression": "it narrows node_labels, and Tether does not evaluate label expressions: " +
		"ignored, the role would reach every node node_labels matches; rewrite it as node_labels",
	"cluster_labels_expression": "it narrows cluster_labels, and Tether does not evaluate label expressions: " +
		"ignored, the role would reach every cluster cluster_labels matches; rewrite it as cluster_labels",
	"require_session_join": "it makes sessions wait for moderators, which Tether does not support: " +
		"ignored, sessions would start unmoderated",
}

var teleportRules = map[string]map[string]teleportRule{}

// commonTeleportFields are bookkeeping fields of every Teleport resource.
var commonTeleportFields = []string{"sub_kind", "metadata.revision", "metadata.id", "metadata.namespace"}

func init() {
	role := map[string]teleportRule{}
	for _, f := range teleportConditionFields {
		if why, narrows := teleportNarrowingAllow[f]; narrows {
			role["spec.allow."+f] = teleportRule{refuseUnlessEmpty(why)}
		} else {
			role["spec.allow."+f] = teleportRule{ignoreAlways}
		}
		role["spec.deny."+f] = teleportRule{refuseUnlessEmpty(fmt.Sprintf(
			"Tether does not model deny.%s: ignored, nothing would deny what it denies; "+
				"remove it only if it concerns resources Tether does not serve", f))}
	}
	for _, f := range []string{
		"permit_x11_forwarding",
		"cert_format", "cert_extensions", "desktop_clipboard", "desktop_directory_sharing",
		"create_host_user", "create_host_user_mode", "create_host_user_default_shell",
		"create_db_user", "create_db_user_mode", "create_desktop_user",
		"enhanced_recording", "idp", "max_kubernetes_connections", "request_access", "request_prompt",
		"mfa_verification_interval", "bpf",
	} {
		role["spec.options."+f] = teleportRule{ignoreAlways}
	}
	// ssh_port_forwarding (Teleport 15+) splits port_forwarding into local and remote;
	// Tether models port_forwarding only, so a value that disables either is refused.
	role["spec.options.ssh_port_forwarding"] = teleportRule{func(n *yaml.Node) string {
		for _, k := range []string{"local", "remote"} {
			if v := lookupKey(lookupKey(n, k), "enabled"); v != nil && v.Kind == yaml.ScalarNode && strings.EqualFold(strings.TrimSpace(v.Value), "false") {
				return "ssh_port_forwarding " + k + ".enabled: false forbids some port forwarding, and Tether models only port_forwarding: " +
					"ignored, it would be allowed; write port_forwarding: false instead"
			}
		}
		return ""
	}}
	role["spec.options.record_session"] = teleportRule{func(n *yaml.Node) string {
		for _, k := range []string{"default", "ssh"} {
			if v := lookupKey(n, k); v != nil && v.Kind == yaml.ScalarNode && strings.EqualFold(v.Value, "strict") {
				return "record_session " + k + ": strict forbids sessions that cannot be recorded, and Tether does not record sessions: " +
					"ignored, such sessions would be allowed"
			}
		}
		return ""
	}}
	role["spec.options.ssh_file_copy"] = teleportRule{refuseIf(
		"ssh_file_copy: false forbids scp and sftp, which Tether does not restrict per role: ignored, file copy would be allowed", "false")}
	role["spec.options.pin_source_ip"] = teleportRule{refuseIf(
		"pin_source_ip: true binds certificates to the client's address, which Tether does not check: ignored, a certificate would work from anywhere", "true")}
	role["spec.options.disconnect_expired_cert"] = teleportRule{refuseIf(
		"disconnect_expired_cert: true ends sessions when the certificate expires, which Tether does not do: ignored, sessions would outlive it", "true")}
	role["spec.options.client_idle_timeout"] = teleportRule{refuseNonZeroDuration(
		"client_idle_timeout ends idle sessions, which Tether does not do: ignored, idle sessions would stay open")}
	role["spec.options.max_sessions"] = teleportRule{refuseUnlessEmpty(
		"max_sessions limits sessions per connection, which Tether does not count: ignored, there would be no limit")}
	role["spec.options.lock"] = teleportRule{refuseIf(
		"lock: strict denies access while the lock view may be stale, a mode Tether does not have: remove it or use best_effort", "strict")}
	role["spec.options.device_trust_mode"] = teleportRule{refuseIf(
		"device_trust_mode: required admits only trusted devices, which Tether does not check: ignored, any device would do", "required", "required-for-humans")}
	teleportRules[KindRole] = role

	teleportRules[KindUser] = map[string]teleportRule{
		"status":                 {ignoreAlways},
		"spec.created_by":        {ignoreAlways},
		"spec.oidc_identities":   {ignoreAlways},
		"spec.saml_identities":   {ignoreAlways},
		"spec.github_identities": {ignoreAlways},
		"spec.local_auth":        {ignoreAlways},
		"spec.trusted_device_ids": {refuseUnlessEmpty(
			"trusted_device_ids bind the user to enrolled devices, which Tether does not check: ignored, any device would do")},
		"spec.status": {func(n *yaml.Node) string {
			if v := lookupKey(n, "is_locked"); v != nil && v.Kind == yaml.ScalarNode && strings.EqualFold(v.Value, "true") {
				return "the user is locked in Teleport (status.is_locked: true): ignored, the user could log in; " +
					"unlock the user first, or create a Tether lock for them"
			}
			return ""
		}},
		"spec.expires": {func(n *yaml.Node) string {
			n = followAlias(n)
			if n == nil || isNull(n) || n.Kind != yaml.ScalarNode {
				return ""
			}
			t, err := time.Parse(time.RFC3339Nano, n.Value)
			if err == nil && t.IsZero() {
				return ""
			}
			return fmt.Sprintf("the user expires at %s in Teleport, and Tether users do not expire: ignored, the user would stay; "+
				"remove the user when it should expire, or lock it with an expiring lock", n.Value)
		}},
	}

	teleportRules[KindToken] = map[string]teleportRule{
		"spec.allow": {refuseUnlessEmpty(
			"allow restricts which joiners may use the token, which Tether does not check: ignored, anyone holding it could join")},
		"spec.suggested_labels":               {ignoreAlways},
		"spec.suggested_agent_matcher_labels": {ignoreAlways},
		"spec.bot_name":                       {ignoreAlways},
		"spec.aws_iid_ttl":                    {ignoreAlways},
		"status":                              {ignoreAlways},
	}

	teleportRules[KindTrustedCluster] = map[string]teleportRule{
		// The pre-role_map way to map every remote role to these local roles: a grant.
		"spec.roles": {ignoreAlways},
	}

	for _, rules := range teleportRules {
		for _, f := range commonTeleportFields {
			rules[f] = teleportRule{ignoreAlways}
		}
	}
}

// teleportField decides a field the Go type does not have: ok is false for a field
// Teleport does not have either; otherwise why is the reason to refuse it, or "" to
// ignore it. A `where` clause in the value is refused unless the field is an ignored allow.
func (d *decoder) teleportField(p path, vn *yaml.Node) (why string, at *yaml.Node, atPath path, ok bool, err error) {
	rules := teleportRules[d.kind]
	if rules == nil {
		return "", nil, nil, false, nil
	}
	var parts []string
	for _, e := range p {
		if s, isKey := e.(string); isKey {
			parts = append(parts, s)
		}
	}
	rule, ok := rules[strings.Join(parts, ".")]
	if !ok {
		return "", nil, nil, false, nil
	}
	joined := strings.Join(parts, ".")
	// A where clause narrows the rule that holds it. Under spec.allow that rule grants
	// something Tether does not serve (API rules, impersonation, ...) and is ignored whole,
	// so its condition is moot; anywhere else it would restrict, and is refused.
	var wn *yaml.Node
	var wp path
	if !strings.HasPrefix(joined, "spec.allow.") || rule.refuse(vn) != "" {
		wn, wp, err = d.findWhere(vn, p)
		if err != nil {
			return "", nil, nil, true, err
		}
	}
	if wn != nil {
		return "a where clause is a condition Tether cannot evaluate: ignored, what it restricts would be unrestricted; " +
			"remove the rule that holds it (Tether grants nothing through rules)", wn, wp, true, nil
	}
	return rule.refuse(vn), vn, p, true, nil
}

// findWhere returns the first non-empty `where` value in n, and its path. It charges the
// decoder's budget for every node, as decoding would.
func (d *decoder) findWhere(n *yaml.Node, p path) (*yaml.Node, path, error) {
	n, err := d.resolve(n, p)
	if err != nil {
		return nil, nil, err
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := followAlias(n.Content[i])
			if k == nil {
				continue
			}
			if k.Value == "where" && !isEmptyValue(n.Content[i+1]) {
				return n.Content[i+1], p.with("where"), nil
			}
			if wn, wp, err := d.findWhere(n.Content[i+1], p.with(k.Value)); wn != nil || err != nil {
				return wn, wp, err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if wn, wp, err := d.findWhere(c, p.with(i)); wn != nil || err != nil {
				return wn, wp, err
			}
		}
	}
	return nil, nil, nil
}

// sortIgnored orders ignored fields by line, then path.
func sortIgnored(fs []IgnoredField) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Line != fs[j].Line {
			return fs[i].Line < fs[j].Line
		}
		return fs[i].Field < fs[j].Field
	})
}
