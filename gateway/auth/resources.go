package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tetherproject/tether/gateway/audit"
	"github.com/tetherproject/tether/resource"
	"github.com/tetherproject/tether/state"
)

// SecretMask stands in for a secret (a trusted_cluster's token, an OIDC client secret) in
// resources read without --with-secrets. Creating a resource with the mask where the
// stored one has a secret keeps the stored secret, so `get > file; edit; create -f file`
// works without ever printing it.
const SecretMask = "********"

func resourceKey(kind, name string) string { return resourcesPrefix + kind + "/" + name }

func caKey(cluster, typ string) string {
	return resourcesPrefix + resource.KindCertAuthority + "/" + cluster + "/" + typ
}

func decodeOne(it state.Item) (resource.Resource, error) {
	rs, err := resource.Parse(it.Value, it.Key)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("%s: want one resource, found %d", it.Key, len(rs))
	}
	return rs[0], nil
}

func (s *Service) put(ctx context.Context, key string, r resource.Resource) error {
	data, err := resource.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := s.cfg.Store.Put(ctx, state.Item{Key: key, Value: data}); err != nil {
		return fmt.Errorf("storing %s %q: %w", r.GetKind(), r.GetMetadata().Name, err)
	}
	return nil
}

// get reads one resource; a missing one is ErrNotFound.
func (s *Service) get(ctx context.Context, key string) (resource.Resource, error) {
	it, err := s.cfg.Store.Get(ctx, key)
	if errors.Is(err, state.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return decodeOne(it)
}

func (s *Service) list(ctx context.Context, prefix string) ([]resource.Resource, error) {
	items, err := s.cfg.Store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]resource.Resource, 0, len(items))
	for _, it := range items {
		r, err := decodeOne(it)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Service) exists(ctx context.Context, key string) (bool, error) {
	_, err := s.cfg.Store.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, state.ErrNotFound):
		return false, nil
	}
	return false, err
}

// Create stores resources, all of one file, in order. Without force, a resource that
// already exists is an error naming it and nothing is written. It returns one line per
// resource for the admin ("role 'visitor' has been created").
func (s *Service) Create(ctx context.Context, rs []resource.Resource, force bool) ([]string, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	exists := make([]bool, len(rs))
	for i, r := range rs {
		// Parse validated them already; validating again normalises names (cluster
		// names to lower case without a trailing dot) of resources built in Go.
		if err := r.Validate(); err != nil {
			return nil, errorf(ErrBadRequest, "%v", err)
		}
		name := r.GetMetadata().Name
		switch r.(type) {
		case *resource.RemoteCluster:
			return nil, errorf(ErrBadRequest, "remote_cluster %q: remote clusters are created by the trust handshake; set their labels with tetherctl update rc/%s --set-labels", name, name)
		case *resource.CertAuthority:
			return nil, errorf(ErrBadRequest, "cert_authority %q: certificate authorities are created at first start and exchanged by the trust handshake, not created by hand", name)
		case *resource.Token:
			continue
		}
		ok, err := s.exists(ctx, resourceKey(r.GetKind(), name))
		if err != nil {
			return nil, err
		}
		if ok && !force {
			return nil, errorf(ErrAlreadyExists, "%s %q already exists; use create --force to overwrite it", r.GetKind(), name)
		}
		exists[i] = ok
	}
	var msgs []string
	policyChanged := false
	for i, r := range rs {
		msg, err := s.createOne(ctx, r, rs, exists[i])
		if err != nil {
			if policyChanged {
				_ = s.rebuildAfter(ctx)
			}
			return msgs, err
		}
		msgs = append(msgs, msg)
		policyChanged = policyChanged || policyKind(r.GetKind())
	}
	if policyChanged {
		if err := s.rebuildAfter(ctx); err != nil {
			return msgs, err
		}
	}
	return msgs, nil
}

func created(kind, name string, existed bool) string {
	if existed {
		return fmt.Sprintf("%s %q has been updated", kind, name)
	}
	return fmt.Sprintf("%s %q has been created", kind, name)
}

func (s *Service) createOne(ctx context.Context, r resource.Resource, batch []resource.Resource, existed bool) (string, error) {
	name := r.GetMetadata().Name
	switch v := r.(type) {
	case *resource.Token:
		if err := s.storeTokenResource(ctx, v); err != nil {
			return "", err
		}
		s.auditResource(ctx, audit.ResourceCreate, resource.KindToken, "")
		return "token has been created", nil
	case *resource.TrustedCluster:
		if err := s.upsertTrustedCluster(ctx, v, existed); err != nil {
			return "", err
		}
		s.auditResource(ctx, map[bool]string{true: audit.ResourceUpdate, false: audit.ResourceCreate}[existed], resource.KindTrustedCluster, name)
		return fmt.Sprintf("trusted cluster %q has been %s", name, map[bool]string{true: "updated", false: "created"}[existed]), nil
	case *resource.Node:
		if err := checkNodeName(name); err != nil {
			return "", err
		}
		if err := checkNodeLabels(v); err != nil {
			return "", err
		}
	case *resource.Role:
		// Checked on write only: a role stored before keeps working.
		if strings.Contains(name, ",") {
			return "", errorf(ErrBadRequest, "role %q: ',' is not allowed in role names (tetherctl users add --roles and tether status list roles separated by commas)", name)
		}
	case *resource.User:
		if err := checkUserCanSignIn(v); err != nil {
			return "", err
		}
		if err := s.checkRolesExist(ctx, v.Spec.Roles, batch); err != nil {
			return "", fmt.Errorf("user %q: %w", name, err)
		}
	case *resource.Lock:
		if err := s.checkLockTargetsNoLeaf(ctx, v); err != nil {
			return "", err
		}
	case *resource.OIDCConnector:
		if v.Spec.ClientSecret == SecretMask {
			old, err := s.get(ctx, resourceKey(resource.KindOIDC, name))
			if err != nil {
				return "", errorf(ErrBadRequest, "oidc %q: client_secret is the mask %q and there is no stored secret to keep", name, SecretMask)
			}
			v.Spec.ClientSecret = old.(*resource.OIDCConnector).Spec.ClientSecret
		}
	}
	if err := s.put(ctx, resourceKey(r.GetKind(), name), r); err != nil {
		return "", err
	}
	s.log.Info("resource stored", "kind", r.GetKind(), "name", name)
	s.auditResource(ctx, map[bool]string{true: audit.ResourceUpdate, false: audit.ResourceCreate}[existed], r.GetKind(), name)
	msg := created(r.GetKind(), name, existed)
	if _, isNode := r.(*resource.Node); isNode && existed {
		// A node agent re-asserts its address and labels with every heartbeat: the
		// admin's edit lasts until the next one, so say where to change them.
		if _, err := s.nodeClaimOf(ctx, name); err == nil {
			msg += fmt.Sprintf("; note: %s is a Tether node agent, and its next heartbeat restores the address and labels of its tether.yaml (node.labels) and its join token: change them there", name)
		}
	}
	return msg, nil
}

// MaxNodeLabels and MaxNodeLabelBytes bound a node's labels: a root refuses a leaf's node
// list holding a node beyond them (tunnel.DecodeNodeList), so a node is not stored so.
const (
	MaxNodeLabels     = 64
	MaxNodeLabelBytes = 256
)

// ValidNodeLabel reports whether key: value can be a node label: a non-empty key, key and
// value at most MaxNodeLabelBytes, valid UTF-8 without control characters (C0, DEL, C1),
// which a terminal showing tether ls would act on.
func ValidNodeLabel(key, value string) bool {
	return key != "" && len(key) <= MaxNodeLabelBytes && len(value) <= MaxNodeLabelBytes && Printable(key) && Printable(value)
}

// TerminalSafe is s with every control character a terminal would act on (C0, DEL, C1),
// every bidirectional control (U+202E and the like, which make a bidi-aware terminal show
// "env=\u202edorp" as "env=prod"), and any byte that is not UTF-8, written as a Go escape
// (\x1b, \u009b, \u202e): text others wrote (a node, a leaf, a proxy, a lock's
// message), made safe to print on a user's terminal.
func TerminalSafe(s string) string {
	if Printable(s) && !strings.ContainsFunc(s, isBidiControl) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case IsControl(r) || isBidiControl(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isBidiControl reports whether r is a Unicode bidirectional formatting control.
func isBidiControl(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }

// Printable reports whether s is valid UTF-8 without control characters: text that may
// reach a user's terminal.
func Printable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, IsControl)
}

// IsControl reports whether r is a control character a terminal would act on (C0, DEL,
// C1).
func IsControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// CheckNodeLabels reports the first of labels that cannot be a node label (ValidNodeLabel),
// or more than MaxNodeLabels of them. Its error names the label, escaped.
func CheckNodeLabels(labels map[string]string) error {
	if len(labels) > MaxNodeLabels {
		return fmt.Errorf("%d labels, more than %d", len(labels), MaxNodeLabels)
	}
	ok := true
	for k, v := range labels {
		ok = ok && ValidNodeLabel(k, v)
	}
	if ok { // node lists check every node: no allocation on this path
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if v := labels[k]; !ValidNodeLabel(k, v) {
			return fmt.Errorf("label %s: %s is empty, longer than %d bytes or holds control characters",
				strconv.QuoteToASCII(k), strconv.QuoteToASCII(v), MaxNodeLabelBytes)
		}
	}
	return nil
}

// checkNodeLabels refuses, on write, a node whose labels a root could not list (read
// from the store, a node is not checked again).
func checkNodeLabels(n *resource.Node) error {
	if err := CheckNodeLabels(n.Metadata.Labels); err != nil {
		return errorf(ErrBadRequest, "node %q: %v (a root could not list this cluster's nodes)", n.Metadata.Name, err)
	}
	return nil
}

// checkLockTargetsNoLeaf refuses, on write, a lock whose remote_cluster target names one
// of this cluster's leaves (a remote_cluster): that target names the cluster whose users a
// lock holds (the certificate's signer; on a leaf, remote_cluster: ROOT locks the root's
// users), and a root accepts no certificate its leaf signed, so the lock would change
// nothing while the admin believes the leaf cut off.
func (s *Service) checkLockTargetsNoLeaf(ctx context.Context, l *resource.Lock) error {
	rc := l.Spec.Target.RemoteCluster
	if rc == "" || rc == s.cfg.ClusterName {
		return nil
	}
	ok, err := s.exists(ctx, resourceKey(resource.KindRemoteCluster, rc))
	if err != nil || !ok {
		return err
	}
	return errorf(ErrBadRequest, "lock %q: remote_cluster %s names the cluster whose users a lock holds, and %s is a leaf of this cluster, whose users never sign in here: the lock would change nothing. "+
		"To keep this cluster's users from %s, remove the trust (tetherctl rm rc/%s; the leaf needs a new token to join again), hide it with cluster_labels (tetherctl update rc/%s --set-labels), or lock the users; "+
		"on %s, lock --remote-cluster=%s locks this cluster's users there",
		l.Metadata.Name, rc, rc, rc, rc, rc, rc, s.cfg.ClusterName)
}

// checkUserCanSignIn refuses, on write, a user no certificate could be issued for: a
// login of its logins trait that is not a valid Unix login name (the rule roles follow;
// the login would become a certificate principal, and no role's {{internal.logins}} gives
// it), or a name tether login refuses. Stored users are not checked again when read.
func checkUserCanSignIn(u *resource.User) error {
	name := u.Metadata.Name
	if strings.ContainsAny(name, `/\`) {
		return errorf(ErrBadRequest, "user name %q: '/' and '\\' are not allowed in user names (tether login refuses them)", name)
	}
	for _, l := range u.Spec.Traits["logins"] {
		if !resource.IsValidLogin(l) {
			return errorf(ErrBadRequest, "user %q: login %q is not a valid Unix login name (1 to 32 characters: letters, digits, '_', '.', '-', not starting with a digit, '.' or '-'); no certificate could be issued for it", name, l)
		}
	}
	return nil
}

// checkRolesExist requires every name to be a stored role or a role created in the same
// batch.
func (s *Service) checkRolesExist(ctx context.Context, names []string, batch []resource.Resource) error {
	for _, n := range names {
		inBatch := false
		for _, r := range batch {
			if r.GetKind() == resource.KindRole && r.GetMetadata().Name == n {
				inBatch = true
			}
		}
		if inBatch {
			continue
		}
		ok, err := s.exists(ctx, resourceKey(resource.KindRole, n))
		if err != nil {
			return err
		}
		if !ok {
			return errorf(ErrBadRequest, "role %q does not exist on cluster %s; create it first", n, s.cfg.ClusterName)
		}
	}
	return nil
}

// clusterKind reports whether resources of kind are named by a cluster name.
func clusterKind(kind string) bool {
	return kind == resource.KindTrustedCluster || kind == resource.KindRemoteCluster || kind == resource.KindCertAuthority
}

// lookupName is the name a resource of kind is stored under: cluster names are compared
// case-insensitively and without a trailing dot.
func lookupName(kind, name string) string {
	if clusterKind(kind) {
		return resource.NormalizeClusterName(name)
	}
	return name
}

// Get returns the resources of kind, or the one named name, oldest key first. Secrets are
// replaced by SecretMask (or left out: CA private keys) unless withSecrets. Tokens are
// listed by the prefix ListTokens shows: their values are not stored.
func (s *Service) Get(ctx context.Context, kind, name string, withSecrets bool) ([]resource.Resource, error) {
	var out []resource.Resource
	name = lookupName(kind, name)
	switch kind {
	case resource.KindToken:
		toks, err := s.ListTokens(ctx)
		if err != nil {
			return nil, err
		}
		for _, t := range toks {
			if name != "" && !t.Matches(name) {
				continue
			}
			out = append(out, t.Resource())
		}
	case resource.KindCertAuthority:
		if name == "" || name == s.cfg.ClusterName {
			own, err := s.cfg.CA.Resources(withSecrets)
			if err != nil {
				return nil, err
			}
			for _, c := range own {
				out = append(out, c)
			}
		}
		prefix := resourcesPrefix + resource.KindCertAuthority + "/"
		if name != "" {
			prefix += name + "/"
		}
		others, err := s.list(ctx, prefix)
		if err != nil {
			return nil, err
		}
		for _, r := range others {
			if r.(*resource.CertAuthority).Spec.ClusterName != s.cfg.ClusterName {
				out = append(out, r)
			}
		}
	default:
		if _, ok := kindNames[kind]; !ok {
			return nil, errorf(ErrBadRequest, "unknown kind %q", kind)
		}
		if name != "" {
			r, err := s.get(ctx, resourceKey(kind, name))
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		} else {
			rs, err := s.list(ctx, resourcesPrefix+kind+"/")
			if err != nil {
				return nil, err
			}
			out = rs
		}
	}
	if name != "" && len(out) == 0 {
		return nil, ErrNotFound
	}
	if kind == resource.KindNode {
		if err := s.fillNodeStatus(ctx, out); err != nil {
			return nil, err
		}
	}
	if kind == resource.KindRemoteCluster {
		if err := s.fillRemoteClusterStatus(ctx, out); err != nil {
			return nil, err
		}
	}
	if !withSecrets {
		for _, r := range out {
			switch v := r.(type) {
			case *resource.TrustedCluster:
				if v.Spec.Token != "" {
					v.Spec.Token = SecretMask
				}
			case *resource.OIDCConnector:
				if v.Spec.ClientSecret != "" {
					v.Spec.ClientSecret = SecretMask
				}
			}
		}
	}
	return out, nil
}

// kindNames are the kinds stored under resources/<kind>/<name>.
var kindNames = map[string]struct{}{
	resource.KindRole: {}, resource.KindUser: {}, resource.KindTrustedCluster: {},
	resource.KindRemoteCluster: {}, resource.KindNode: {}, resource.KindLock: {}, resource.KindOIDC: {},
}

// Delete removes one resource. Removing a trusted_cluster (on a leaf) also removes the
// root's CAs; removing a remote_cluster (on a root) also removes the leaf's CAs.
func (s *Service) Delete(ctx context.Context, kind, name string) (string, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	switch kind {
	case resource.KindToken:
		if err := s.DeleteToken(ctx, name); err != nil {
			return "", err
		}
		s.auditResource(ctx, audit.ResourceDelete, resource.KindToken, "")
		return "token has been deleted", nil
	case resource.KindCertAuthority:
		return "", errorf(ErrBadRequest, "certificate authorities are removed with the trust: tetherctl rm trusted_cluster/NAME on a leaf, rm rc/NAME on a root")
	}
	if _, ok := kindNames[kind]; !ok {
		return "", errorf(ErrBadRequest, "unknown kind %q", kind)
	}
	name = lookupName(kind, name)
	if kind == resource.KindRole {
		if err := s.checkRoleUnused(ctx, name); err != nil {
			return "", err
		}
	}
	if kind == resource.KindRemoteCluster {
		s.trustMu.Lock()
		defer s.trustMu.Unlock()
	}
	err := s.cfg.Store.Delete(ctx, resourceKey(kind, name))
	if errors.Is(err, state.ErrNotFound) {
		return "", errorf(ErrNotFound, "%s %q not found", kind, name)
	}
	if err != nil {
		return "", err
	}
	if kind == resource.KindTrustedCluster || kind == resource.KindRemoteCluster {
		if err := s.deleteCAs(ctx, name); err != nil {
			_ = s.rebuildAfter(ctx)
			return "", err
		}
	}
	if kind == resource.KindUser {
		if err := s.clearCredentials(ctx, name); err != nil {
			return "", err
		}
	}
	if kind == resource.KindNode {
		if err := s.forgetNode(ctx, name); err != nil {
			return "", err
		}
	}
	if kind == resource.KindTrustedCluster {
		if err := s.cfg.Store.Delete(ctx, usedTokenKey(name)); err != nil && !errors.Is(err, state.ErrNotFound) {
			return "", fmt.Errorf("deleting the trust's record of %s: %w", name, err)
		}
		if _, err := s.replaceRemoteLocks(ctx, name, nil); err != nil {
			return "", fmt.Errorf("deleting the locks replicated from %s: %w", name, err)
		}
	}
	s.log.Info("resource deleted", "kind", kind, "name", name)
	s.auditResource(ctx, audit.ResourceDelete, kind, name)
	switch kind {
	case resource.KindTrustedCluster:
		s.Audit(ctx, AuditEvent{Type: audit.TrustRemove, Fields: map[string]any{"root": name, "side": "leaf"}})
	case resource.KindRemoteCluster:
		s.Audit(ctx, AuditEvent{Type: audit.TrustRemove, Fields: map[string]any{"leaf": name, "side": "root"}})
	}
	if policyKind(kind) {
		if err := s.rebuildAfter(ctx); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s %q has been deleted", kind, name), nil
}

func (s *Service) deleteCAs(ctx context.Context, cluster string) error {
	if cluster == s.cfg.ClusterName {
		return nil
	}
	items, err := s.cfg.Store.List(ctx, resourcesPrefix+resource.KindCertAuthority+"/"+cluster+"/")
	if err != nil {
		return err
	}
	for _, it := range items {
		if err := s.cfg.Store.Delete(ctx, it.Key); err != nil && !errors.Is(err, state.ErrNotFound) {
			return fmt.Errorf("deleting the CAs of %s: %w", cluster, err)
		}
	}
	return nil
}

// SetRemoteClusterLabels replaces a remote cluster's labels. Only root admins call it;
// nothing a leaf sends reaches it.
func (s *Service) SetRemoteClusterLabels(ctx context.Context, name string, labels map[string]string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	name = lookupName(resource.KindRemoteCluster, name)
	r, err := s.get(ctx, resourceKey(resource.KindRemoteCluster, name))
	if err != nil {
		return fmt.Errorf("remote cluster %q: %w", name, err)
	}
	rc := r.(*resource.RemoteCluster)
	rc.Metadata.Labels = labels
	if len(labels) == 0 {
		rc.Metadata.Labels = nil
	}
	if err := rc.Validate(); err != nil {
		return errorf(ErrBadRequest, "%v", err)
	}
	if err := s.put(ctx, resourceKey(resource.KindRemoteCluster, name), rc); err != nil {
		return err
	}
	s.log.Info("remote cluster labels set", "name", name, "labels", labels)
	s.auditResource(ctx, audit.ResourceUpdate, resource.KindRemoteCluster, name)
	return s.rebuildAfter(ctx)
}

func secretEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func isLiteralLocal(local string) bool { return !strings.Contains(local, "$") }

// checkRoleUnused refuses to remove a role that a user, an OIDC connector's
// claims_to_roles or a trusted_cluster's role_map (a literal local role) still names, and
// says which. (Tokens name what they join as, trusted_cluster or node, never a role.)
func (s *Service) checkRoleUnused(ctx context.Context, role string) error {
	var users []string
	var refs []string
	for _, kind := range []string{resource.KindUser, resource.KindOIDC, resource.KindTrustedCluster} {
		rs, err := s.list(ctx, resourcesPrefix+kind+"/")
		if err != nil {
			return err
		}
		for _, r := range rs {
			switch v := r.(type) {
			case *resource.User:
				if slices.Contains(v.Spec.Roles, role) {
					users = append(users, v.Metadata.Name)
				}
			case *resource.OIDCConnector:
				for _, m := range v.Spec.ClaimsToRoles {
					if slices.Contains(m.Roles, role) {
						refs = append(refs, fmt.Sprintf("oidc/%s claims_to_roles", v.Metadata.Name))
						break
					}
				}
			case *resource.TrustedCluster:
				for i, m := range v.Spec.RoleMap {
					if slices.Contains(m.Local, role) {
						refs = append(refs, fmt.Sprintf("trusted_cluster/%s role_map[%d]", v.Metadata.Name, i))
					}
				}
			}
		}
	}
	if len(users) > 0 {
		refs = append([]string{"user " + strings.Join(users, ", ")}, refs...)
	}
	if len(refs) > 0 {
		return errorf(ErrBadRequest, "role %q is still in use by %s; remove it from them first", role, strings.Join(refs, "; "))
	}
	return nil
}

// auditResource records an admin's change to a resource. A token is named by kind only:
// its name may be the secret itself.
func (s *Service) auditResource(ctx context.Context, typ, kind, name string) {
	f := map[string]any{"kind": kind}
	if name != "" {
		f["name"] = name
	}
	s.Audit(ctx, AuditEvent{Type: typ, Fields: f})
}
