package resource

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// Role grants or denies logins and access to nodes and clusters. Versions v5, v6 and v7 are
// accepted and mean the same thing.
type Role struct {
	Kind     string   `yaml:"kind"`
	Version  string   `yaml:"version"`
	Metadata Metadata `yaml:"metadata"`
	Spec     RoleSpec `yaml:"spec"`
}

// RoleSpec is a role's allow and deny conditions and its options.
type RoleSpec struct {
	Allow   RoleConditions `yaml:"allow,omitempty"`
	Deny    RoleConditions `yaml:"deny,omitempty"`
	Options RoleOptions    `yaml:"options,omitempty"`
}

// RoleConditions is one side (allow or deny) of a role.
type RoleConditions struct {
	// Logins are Unix login names or templates such as "{{internal.logins}}".
	Logins []string `yaml:"logins,omitempty"`
	// NodeLabels select the nodes this side applies to.
	NodeLabels Labels `yaml:"node_labels,omitempty"`
	// ClusterLabels select the remote clusters this side applies to (root side).
	ClusterLabels Labels `yaml:"cluster_labels,omitempty"`
}

// RoleOptions are a role's session options.
type RoleOptions struct {
	MaxSessionTTL     Duration `yaml:"max_session_ttl,omitempty"`
	RequireSessionMFA bool     `yaml:"require_session_mfa,omitempty"`
	// MaxCertAge (Tether) limits how long ago the user's certificate may have been issued.
	MaxCertAge Duration `yaml:"max_cert_age,omitempty"`
	// RequireConnectors (Tether) lists the connectors, such as "oidc/okta", through one of
	// which the certificate must have been issued.
	RequireConnectors []string `yaml:"require_connectors,omitempty"`
	// PortForwarding is Teleport's port_forwarding: false forbids port forwarding (-L,
	// -R, -D) for holders of the role; unset means allowed (Teleport's default for roles
	// v5 to v7).
	PortForwarding BoolOption `yaml:"port_forwarding,omitempty"`
	// ForwardAgent is Teleport's forward_agent: some role must set it true for agent
	// forwarding (-A); unset means false; a role that sets it false forbids it.
	ForwardAgent BoolOption `yaml:"forward_agent,omitempty"`
	// MaxConnections is Teleport's max_connections: how many SSH connections to nodes a
	// holder of the role may have open at once at an enforcement point (the smallest of the
	// user's roles that set one); 0 or unset means no limit.
	MaxConnections int64 `yaml:"max_connections,omitempty"`
}

// BoolOption is a role option that may be unset, true or false, since Teleport gives
// an unset option its own default. The zero value is unset.
type BoolOption uint8

// Values of a BoolOption.
const (
	OptionUnset BoolOption = iota
	OptionFalse
	OptionTrue
)

// NewBoolOption returns the option set to b.
func NewBoolOption(b bool) BoolOption {
	if b {
		return OptionTrue
	}
	return OptionFalse
}

// IsSet reports whether the role sets the option.
func (o BoolOption) IsSet() bool { return o != OptionUnset }

// Value is the option's value, def when unset.
func (o BoolOption) Value(def bool) bool {
	switch o {
	case OptionTrue:
		return true
	case OptionFalse:
		return false
	}
	return def
}

// GetKind returns "role".
func (r *Role) GetKind() string { return KindRole }

// GetVersion returns the document's version.
func (r *Role) GetVersion() string { return r.Version }

// GetMetadata returns the role's metadata.
func (r *Role) GetMetadata() *Metadata { return &r.Metadata }

// Validate checks the role: logins are valid Unix login names or templates, label selectors
// are well formed, regular expressions and templates parse, durations are not negative.
func (r *Role) Validate() error {
	if err := checkHeader(KindRole, r.Kind, r.Version, &r.Metadata); err != nil {
		return err
	}
	res := describe(KindRole, r.Metadata.Name)
	for _, side := range []struct {
		name string
		c    *RoleConditions
	}{{"allow", &r.Spec.Allow}, {"deny", &r.Spec.Deny}} {
		p := path{"spec", side.name}
		for i, l := range side.c.Logins {
			if err := checkLogin(l); err != nil {
				return wrapFieldErr(res, p.with("logins", i), err)
			}
		}
		if err := side.c.NodeLabels.check(res, p.with("node_labels")); err != nil {
			return err
		}
		if err := side.c.ClusterLabels.check(res, p.with("cluster_labels")); err != nil {
			return err
		}
	}
	o := &r.Spec.Options
	if o.MaxSessionTTL < 0 {
		return fieldErr(res, path{"spec", "options", "max_session_ttl"}, "must not be negative, got %s", o.MaxSessionTTL)
	}
	if o.MaxConnections < 0 {
		return fieldErr(res, path{"spec", "options", "max_connections"}, "must not be negative (0 or unset: no limit), got %d", o.MaxConnections)
	}
	if o.MaxCertAge < 0 {
		return fieldErr(res, path{"spec", "options", "max_cert_age"}, "must not be negative, got %s", o.MaxCertAge)
	}
	for i, c := range o.RequireConnectors {
		if isBlank(c) {
			return fieldErr(res, path{"spec", "options", "require_connectors", i}, "must not be empty (write kind/name, for example oidc/okta)")
		}
	}
	return nil
}

func checkLogin(l string) error {
	if hasTemplateBraces(l) {
		t, err := ParseTemplate(l)
		if err != nil {
			return err
		}
		if t.IsConst {
			// A template of a string literal gives fixed logins: each must be one.
			for _, v := range t.Expand(nil) {
				if !IsValidLogin(v) {
					return fmt.Errorf("template %q gives %q, which is not a valid Unix login name", l, v)
				}
			}
			return nil
		}
		// The prefix and suffix are copied into every login the template gives, so they
		// must be made of login characters or no expansion could ever be used.
		if !isLoginText(t.Prefix, false) || !isLoginText(t.Suffix, true) {
			return fmt.Errorf("template %q: the text around {{...}} may only contain letters, digits, '_', '.' and '-', "+
				"so that it can expand to a valid Unix login name", l)
		}
		return nil
	}
	if !IsValidLogin(l) {
		return fmt.Errorf("%q is not a valid Unix login name (1 to 32 characters: letters, digits, '_', '.', '-', "+
			"not starting with a digit, '.' or '-', optionally ending in '$') and not a template like {{internal.logins}}", l)
	}
	return nil
}

// IsValidLogin reports whether s is a valid Unix login name: 1 to 32 bytes matching
// ^[a-z_][a-z0-9_.-]*[$]?$ ignoring case, the portable POSIX/shadow-utils rule (the trailing '$'
// is for Samba machine accounts). Teleport's own check is looser (it only forbids a leading
// '-' and ':', ',' and whitespace); Tether uses the portable rule so a name that loads here
// can be created on every node.
func IsValidLogin(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case c >= '0' && c <= '9', c == '.', c == '-':
			if i == 0 {
				return false
			}
		case c == '$':
			if i == 0 || i != len(s)-1 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// isLoginText reports whether s may appear inside a login name; a suffix may end in '$'.
func isLoginText(s string, suffix bool) bool {
	if suffix {
		s = strings.TrimSuffix(s, "$")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Labels is a label selector: each key maps to the values it accepts. In YAML a key's values
// are one string or a list of strings. A value is '*' (any), a glob with '*', a regular
// expression written ^...$ (matched against the whole value), or a template such as
// "{{external.env}}". The key '*' is only allowed with the single value '*', which matches
// everything; an empty selector matches nothing.
type Labels map[string][]string

// MarshalYAML writes a key with one value as a plain string and otherwise as a list, as
// Teleport does.
func (l Labels) MarshalYAML() (any, error) {
	out := make(map[string]any, len(l))
	for k, vs := range l {
		if len(vs) == 1 {
			out[k] = vs[0]
		} else {
			out[k] = append([]string{}, vs...)
		}
	}
	return out, nil
}

// IsWildcard reports whether the selector is exactly {'*': '*'}.
func (l Labels) IsWildcard() bool {
	vs, ok := l[Wildcard]
	return len(l) == 1 && ok && len(vs) == 1 && vs[0] == Wildcard
}

// Wildcard is the label key and value that match anything.
const Wildcard = "*"

func (l Labels) check(res string, p path) error {
	for k, vs := range l {
		kp := p.with(k)
		switch {
		case isBlank(k):
			return fieldErr(res, p, "label keys must not be empty")
		case hasTemplateBraces(k):
			// A deny selector whose key silently never matched would grant access.
			return fieldErr(res, kp, "templates are only supported in label values, not in keys")
		case k == Wildcard && (len(vs) != 1 || vs[0] != Wildcard):
			return fieldErr(res, kp, "the key '*' may only have the value '*' ({'*': '*'} matches every resource)")
		}
		for i, v := range vs {
			if err := checkLabelValue(v); err != nil {
				return wrapFieldErr(res, kp.with(i), err)
			}
		}
	}
	return nil
}

func checkLabelValue(v string) error {
	if hasTemplateBraces(v) {
		t, err := ParseTemplate(v)
		if err != nil {
			return err
		}
		if t.IsConst {
			// A template of a string literal gives fixed values, which are the role
			// author's own: patterns like any literal value.
			for _, c := range t.Expand(nil) {
				if err := checkLabelValue(c); err != nil {
					return fmt.Errorf("template %q gives %q: %w", v, c, err)
				}
			}
			return nil
		}
		// Tether: what a template gives is matched as literal text, the text around the
		// expression included. A '*' or ^...$ there would silently be text too (and a deny
		// selector would deny less than it reads), so it is refused.
		if strings.Contains(t.Prefix, "*") || strings.Contains(t.Suffix, "*") ||
			strings.HasPrefix(t.Prefix, "^") && strings.HasSuffix(t.Suffix, "$") {
			return fmt.Errorf("template %q: a value that comes from a trait is matched as literal text, so '*' or ^...$ "+
				"around {{...}} would not be a pattern; list the pattern as a separate value", v)
		}
		return nil
	}
	if IsLabelRegex(v) {
		if _, err := regexp.Compile(v); err != nil {
			return fmt.Errorf("%q is not a valid regular expression: %s", v, regexpProblem(err, v))
		}
	}
	return nil
}

// IsLabelRegex reports whether a label value is a regular expression: it starts with '^' and
// ends with '$'.
func IsLabelRegex(v string) bool {
	return strings.HasPrefix(v, "^") && strings.HasSuffix(v, "$")
}

// regexpProblem returns what is wrong with pattern, naming the offending part only when it is
// not the whole pattern.
func regexpProblem(err error, pattern string) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		if se.Expr != "" && se.Expr != pattern {
			return fmt.Sprintf("%s in %q", se.Code, se.Expr)
		}
		return string(se.Code)
	}
	return err.Error()
}
