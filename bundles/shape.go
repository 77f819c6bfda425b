package bundles

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/resource"
)

// ShapeOptions are the inputs of Shape: one cluster's identity and its resources.
type ShapeOptions struct {
	// ClusterName is the name of the cluster whose decisions the bundle serves.
	ClusterName string
	// MaxClockSkew is how far in the future a certificate's valid_after may be and the
	// certificate still be accepted. Zero, the default, accepts none: a certificate is not
	// valid before its valid_after, as in Teleport and OpenSSH (Tether's issuers backdate
	// valid_after by a minute instead). Only the cluster's max_clock_skew sets it.
	MaxClockSkew time.Duration
	// Resources are the cluster's roles, trusted clusters, remote clusters, certificate
	// authorities and locks. Other kinds are ignored.
	Resources []resource.Resource
}

// ErrDuplicateCAKey is returned (wrapped, naming both owners) by Shape when one public key
// appears in two certificate authorities, or twice in one. A key belongs to exactly one
// (cluster, CA type): were the later entry to win, a leaf could register a root's user CA
// key as its own host CA and turn every certificate of the root's users into a host
// certificate of the leaf's (and so deny them), or a root could claim a leaf's own user
// CA key and cut off the leaf's local users.
var ErrDuplicateCAKey = errors.New("a certificate authority key is claimed twice")

// DefaultMaxClockSkew is the clock skew a cluster allows unless its configuration says
// otherwise: none.
const DefaultMaxClockSkew time.Duration = 0

// Shape turns a cluster's resources into the bundle's data document, {"tether": {...}},
// in the shape docs/ARCHITECTURE.md describes: names as object keys, role_map remotes
// compiled to full-match regexes, templates parsed, so that Rego does lookups.
//
// The result contains only JSON types (map[string]any, []any, string, bool, int64).
func Shape(opts ShapeOptions) (map[string]any, error) {
	if opts.ClusterName == "" {
		return nil, fmt.Errorf("shaping policy data: cluster name is required")
	}
	skew := opts.MaxClockSkew
	if skew < 0 {
		return nil, fmt.Errorf("shaping policy data: max clock skew %v is negative", skew)
	}
	s := shaper{
		cluster:   opts.ClusterName,
		roles:     map[string]any{},
		trusted:   map[string]any{},
		remotes:   map[string]any{},
		cas:       map[string]any{},
		locks:     []any{},
		enabled:   map[string]bool{},
		seenNames: map[string]string{},
	}
	// Trust state decides which CAs are active, so read trusted clusters first.
	for _, r := range opts.Resources {
		if tc, ok := r.(*resource.TrustedCluster); ok && tc.Spec.Enabled {
			s.enabled[tc.Metadata.Name] = true
		}
	}
	for _, r := range opts.Resources {
		if err := s.add(r); err != nil {
			return nil, fmt.Errorf("shaping policy data: %w", err)
		}
	}
	doc := map[string]any{"tether": map[string]any{
		"cluster": map[string]any{
			"name":              opts.ClusterName,
			"max_clock_skew_ns": int64(skew),
		},
		"cas":              s.cas,
		"roles":            s.roles,
		"trusted_clusters": s.trusted,
		"remote_clusters":  s.remotes,
		"locks":            s.locks,
	}}
	if err := deriveCAs(doc); err != nil {
		return nil, fmt.Errorf("shaping policy data: %w", err)
	}
	return doc, nil
}

type shaper struct {
	cluster   string
	roles     map[string]any
	trusted   map[string]any
	remotes   map[string]any
	cas       map[string]any
	locks     []any
	enabled   map[string]bool   // trusted clusters with enabled: true
	seenNames map[string]string // "kind/name" -> first seen, to refuse duplicates
}

func (s *shaper) add(r resource.Resource) error {
	md := r.GetMetadata()
	key := r.GetKind() + "/" + md.Name
	if r.GetKind() == "cert_authority" {
		// One cluster has several CAs (user, host, tls) under the same name.
		key = fmt.Sprintf("%s/%s/%s", r.GetKind(), md.Name, r.(*resource.CertAuthority).Spec.Type)
	}
	if _, dup := s.seenNames[key]; dup {
		return fmt.Errorf("%s %q is defined twice", r.GetKind(), md.Name)
	}
	s.seenNames[key] = key
	switch v := r.(type) {
	case *resource.Role:
		role, err := shapeRole(v)
		if err != nil {
			return fmt.Errorf("role %q: %w", md.Name, err)
		}
		s.roles[md.Name] = role
	case *resource.TrustedCluster:
		if md.Name == s.cluster {
			return fmt.Errorf("trusted_cluster %q has this cluster's own name", md.Name)
		}
		tc, err := shapeTrustedCluster(v)
		if err != nil {
			return fmt.Errorf("trusted_cluster %q: %w", md.Name, err)
		}
		s.trusted[md.Name] = tc
	case *resource.RemoteCluster:
		s.remotes[md.Name] = map[string]any{"labels": stringMap(md.Labels)}
	case *resource.CertAuthority:
		return s.addCA(v)
	case *resource.Lock:
		s.locks = append(s.locks, shapeLock(v, s.cluster))
	}
	return nil
}

func (s *shaper) addCA(ca *resource.CertAuthority) error {
	cluster := ca.Spec.ClusterName
	if cluster == "" {
		cluster = ca.Metadata.Name
	}
	// A CA of another cluster is active only while this cluster trusts it; a CA of a
	// cluster that is neither this one nor a trusted cluster is shipped inactive.
	active := cluster == s.cluster || s.enabled[cluster]
	add := func(keys []resource.SSHKeyPair) error {
		for i, k := range keys {
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
			if err != nil {
				return fmt.Errorf("cert_authority %s/%s: ssh key %d: %w", cluster, ca.Spec.Type, i, err)
			}
			fp := ssh.FingerprintSHA256(pub)
			if prev, dup := s.cas[fp].(map[string]any); dup {
				return fmt.Errorf("%w: key %s is in the %s CA of %s and in the %s CA of %s; a key belongs to one cluster and CA type: remove the cluster that reused it (tetherctl rm rc/NAME on a root, rm trusted_cluster/NAME on a leaf)",
					ErrDuplicateCAKey, fp, prev["type"], prev["cluster"], ca.Spec.Type, cluster)
			}
			s.cas[fp] = map[string]any{
				"cluster": cluster,
				"type":    ca.Spec.Type,
				"active":  active,
			}
		}
		return nil
	}
	if err := add(ca.Spec.ActiveKeys.SSH); err != nil {
		return err
	}
	// Keys kept trusted during a rotation verify certificates but never sign.
	return add(ca.Spec.AdditionalTrustedKeys.SSH)
}

// shapeLock is a lock as the bundle ships it, on cluster (this one).
func shapeLock(l *resource.Lock, cluster string) map[string]any {
	target := map[string]any{}
	for k, v := range map[string]string{
		"user":           l.Spec.Target.User,
		"role":           l.Spec.Target.Role,
		"login":          l.Spec.Target.Login,
		"node":           l.Spec.Target.Node,
		"remote_cluster": l.Spec.Target.RemoteCluster,
	} {
		if v != "" {
			target[k] = v
		}
	}
	// A root's replicated lock names a role of the root, which its users carry in their
	// certificates; as role it would also match a leaf role of that name that other root
	// roles map to.
	if root := l.Metadata.Labels[resource.LabelReplicatedFrom]; root != "" && root == l.Spec.Target.RemoteCluster {
		if r, ok := target["role"]; ok {
			delete(target, "role")
			target["root_role"] = r
		}
		// Its node target names a node of the root, unless written NODE.CLUSTER with this
		// cluster's name (as users type ssh login@node.leaf): a root node that shares a
		// leaf node's name must not lock the root's users out of the leaf's. A root's node
		// ships as root_node, which no request here matches.
		if n, ok := target["node"].(string); ok {
			suffix := "." + cluster
			if len(n) > len(suffix) && strings.EqualFold(n[len(n)-len(suffix):], suffix) {
				target["node"] = n[:len(n)-len(suffix)]
			} else {
				delete(target, "node")
				target["root_node"] = n
			}
		}
	}
	var expires int64
	switch {
	case l.Spec.Expires != nil:
		expires = l.Spec.Expires.UnixNano()
	case l.Metadata.Expires != nil:
		expires = l.Metadata.Expires.UnixNano()
	}
	return map[string]any{
		"name":       l.Metadata.Name,
		"target":     target,
		"message":    l.Spec.Message,
		"expires_ns": expires,
	}
}

func shapeTrustedCluster(tc *resource.TrustedCluster) (map[string]any, error) {
	rules := make([]any, 0, len(tc.Spec.RoleMap))
	exact := map[string]any{}
	patterns := []any{}
	for i, m := range tc.Spec.RoleMap {
		locals := make([]any, len(m.Local))
		for j, l := range m.Local {
			locals[j] = l
		}
		rules = append(rules, map[string]any{"remote": m.Remote, "local": locals})
		re, literal, err := resource.CompileRoleMapRemote(m.Remote)
		if err != nil {
			return nil, fmt.Errorf("role_map[%d]: %w", i, err)
		}
		if literal {
			expanded := make([]any, 0, len(m.Local))
			for _, l := range m.Local {
				expanded = append(expanded, resource.ExpandLiteralLocal(m.Remote, l))
			}
			if _, dup := exact[m.Remote]; dup {
				return nil, fmt.Errorf("role_map[%d]: remote %q is mapped twice", i, m.Remote)
			}
			exact[m.Remote] = map[string]any{"rule": int64(i), "local": expanded}
			continue
		}
		patterns = append(patterns, map[string]any{"rule": int64(i), "regex": re, "local": locals})
	}
	errs, err := roleMapErrors(rules)
	if err != nil {
		return nil, err
	}
	anyRe, err := anyPattern(patterns)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"enabled":         tc.Spec.Enabled,
		"role_map_rules":  rules,
		"role_map_errors": errs,
		"role_map":        map[string]any{"exact": exact, "patterns": patterns, "any_pattern": anyRe},
	}, nil
}

func shapeRole(r *resource.Role) (map[string]any, error) {
	allow, err := shapeConditions(r.Spec.Allow)
	if err != nil {
		return nil, fmt.Errorf("allow: %w", err)
	}
	deny, err := shapeConditions(r.Spec.Deny)
	if err != nil {
		return nil, fmt.Errorf("deny: %w", err)
	}
	connectors := make([]any, len(r.Spec.Options.RequireConnectors))
	for i, c := range r.Spec.Options.RequireConnectors {
		connectors[i] = c
	}
	options := map[string]any{
		"max_session_ttl_ns":  int64(r.Spec.Options.MaxSessionTTL),
		"require_session_mfa": r.Spec.Options.RequireSessionMFA,
		"max_cert_age_ns":     int64(r.Spec.Options.MaxCertAge),
		"max_connections":     r.Spec.Options.MaxConnections,
		"require_connectors":  connectors,
	}
	// Forwarding options ship only when the role sets them: unset has Teleport's own
	// default, which rego/forwarding.rego applies.
	if o := r.Spec.Options.PortForwarding; o.IsSet() {
		options["port_forwarding"] = o.Value(true)
	}
	if o := r.Spec.Options.ForwardAgent; o.IsSet() {
		options["forward_agent"] = o.Value(false)
	}
	role := map[string]any{"allow": allow, "deny": deny, "options": options}
	derived, err := roleDerived(role)
	if err != nil {
		return nil, err
	}
	role["derived"] = derived
	return role, nil
}

func shapeConditions(c resource.RoleConditions) (map[string]any, error) {
	logins, err := shapeTemplates(c.Logins)
	if err != nil {
		return nil, fmt.Errorf("logins: %w", err)
	}
	nodes, err := shapeSelector(c.NodeLabels)
	if err != nil {
		return nil, fmt.Errorf("node_labels: %w", err)
	}
	clusters, err := shapeSelector(c.ClusterLabels)
	if err != nil {
		return nil, fmt.Errorf("cluster_labels: %w", err)
	}
	return map[string]any{"logins": logins, "node_labels": nodes, "cluster_labels": clusters}, nil
}

// shapeSelector turns role labels into {"wildcard": bool, "keys": {k: {"values": [T]}}}.
func shapeSelector(l resource.Labels) (map[string]any, error) {
	keys := map[string]any{}
	wildcard := false
	for k, vs := range l {
		if k == "*" {
			// Validation allows '*' only with the value '*': it selects everything.
			wildcard = true
			continue
		}
		values, err := shapeTemplates(vs)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		literal, err := literalMatcher(values)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		keys[k] = map[string]any{"values": values, "literal": literal}
	}
	if wildcard {
		return map[string]any{"wildcard": true, "keys": map[string]any{}}, nil
	}
	return map[string]any{"wildcard": false, "keys": keys}, nil
}

func shapeTemplates(values []string) ([]any, error) {
	out := make([]any, 0, len(values))
	for _, v := range values {
		t, err := resource.ParseTemplate(v)
		if err != nil {
			return nil, err
		}
		if t.IsLiteral {
			out = append(out, map[string]any{"lit": t.Literal})
			continue
		}
		if t.IsConst {
			// A template of a string literal does not depend on the user: it ships as
			// the literals it gives (none when regexp.replace does not match or
			// email.local does not parse), which are the role author's own values.
			for _, v := range t.Expand(nil) {
				out = append(out, map[string]any{"lit": v})
			}
			continue
		}
		out = append(out, map[string]any{
			"prefix": t.Prefix,
			"suffix": t.Suffix,
			"ns":     t.Namespace,
			"trait":  t.Trait,
			"fn":     t.Func,
			"re":     t.Regex,
			"repl":   t.Replacement,
		})
	}
	return out, nil
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
