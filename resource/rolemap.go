package resource

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// RoleMapping maps roles of the trusted (root) cluster to roles of this cluster.
type RoleMapping struct {
	// Remote is a root role name: literal text in which each '*' is a wildcard and capture
	// group, or, when it starts with '^' and ends with '$', an RE2 regular expression that
	// must match the whole role name.
	Remote string `yaml:"remote"`
	// Local are the local roles granted; each may use $1, ${1}, ${name} and $$ as in Go's
	// Regexp.Expand.
	Local []string `yaml:"local"`
}

// RoleMapError is the first rule of a role_map that breaks a validation rule.
type RoleMapError struct {
	// Index is the rule's position in the role_map, from 0.
	Index int
	// Rule is the rule as written, for example `{remote: "access", local: ["*"]}`.
	Rule string
	// Code names the broken check: one of the RoleMap* codes.
	Code string
	// Msg says what is wrong with the rule.
	Msg string
}

// Role map validation codes, in the order the checks run for each rule.
const (
	RoleMapEmptyRemote     = "empty_remote"
	RoleMapEmptyLocal      = "empty_local"
	RoleMapWildcardLocal   = "wildcard_local"
	RoleMapDuplicateRemote = "duplicate_remote"
	RoleMapInvalidRemote   = "invalid_remote"
)

// Error formats the error as role_map[i]: problem (rule {...}).
func (e *RoleMapError) Error() string {
	return fmt.Sprintf("role_map[%d]: %s (rule %s)", e.Index, e.Msg, e.Rule)
}

// String formats the rule for messages: {remote: "a", local: ["b"]}.
func (r RoleMapping) String() string {
	locals := make([]string, len(r.Local))
	for i, l := range r.Local {
		locals[i] = strconv.Quote(l)
	}
	return fmt.Sprintf("{remote: %q, local: [%s]}", r.Remote, strings.Join(locals, ", "))
}

// ValidateRoleMap checks a role_map and returns a *RoleMapError for the first failing rule,
// or nil. Rules are checked in order; for each rule the checks run in this order and the
// first failure rejects the whole map:
//
//  1. RoleMapEmptyRemote: remote is empty or only whitespace.
//  2. RoleMapEmptyLocal: local has no entries, or an entry is empty or only whitespace
//     (entries are checked in order).
//  3. RoleMapWildcardLocal: an entry of local is exactly "*".
//  4. RoleMapDuplicateRemote: the same remote string (byte for byte) appears in an earlier rule.
//  5. RoleMapInvalidRemote: CompileRoleMapRemote fails: a remote that starts with '^' and ends
//     with '$' is not valid RE2, either as written or wrapped as ^(?:remote)$ (so "^a)|(b$",
//     which only compiles wrapped and would then match more than whole names, is refused),
//     or the remote is not valid UTF-8.
//
// Whitespace is what Go's strings.TrimSpace (and Rego's trim_space) removes, as in Teleport.
func ValidateRoleMap(rules []RoleMapping) error {
	seen := make(map[string]int, len(rules))
	for i, r := range rules {
		fail := func(code, format string, args ...any) error {
			return &RoleMapError{Index: i, Rule: r.String(), Code: code, Msg: fmt.Sprintf(format, args...)}
		}
		if isBlank(r.Remote) {
			return fail(RoleMapEmptyRemote, "remote must not be empty")
		}
		if len(r.Local) == 0 {
			return fail(RoleMapEmptyLocal, "local must list at least one role")
		}
		for j, l := range r.Local {
			if isBlank(l) {
				return fail(RoleMapEmptyLocal, "local[%d] must not be empty", j)
			}
		}
		for j, l := range r.Local {
			if l == Wildcard {
				return fail(RoleMapWildcardLocal, "local[%d] must not be \"*\": name the local roles to grant", j)
			}
		}
		if first, dup := seen[r.Remote]; dup {
			return fail(RoleMapDuplicateRemote, "remote %q is already mapped by role_map[%d]: merge the two rules", r.Remote, first)
		}
		seen[r.Remote] = i
		if _, _, err := CompileRoleMapRemote(r.Remote); err != nil {
			return fail(RoleMapInvalidRemote, "%v", err)
		}
	}
	return nil
}

// IsRoleMapRegex reports whether a role_map remote is a regular expression: it starts with
// '^' and ends with '$'.
func IsRoleMapRegex(remote string) bool {
	return strings.HasPrefix(remote, "^") && strings.HasSuffix(remote, "$")
}

// CompileRoleMapRemote turns a role_map remote into the regular expression Tether evaluates.
//
//   - A regex remote (^...$) becomes ^(?:remote)$, so it must match the whole remote role
//     (Tether; Teleport matches anywhere, so ^dev|ops$ would rewrite part of devops-team).
//   - A remote without '*' is literal: ^QuoteMeta(remote)$ and literal is true.
//   - Otherwise it is a glob: each '*' becomes a capture group (.*) and everything else is
//     literal (so '?', '.' and '[' match themselves), wrapped as ^(?:...)$. As in Teleport,
//     '*' does not match a newline.
//
// Matching is case-sensitive. The returned expression is known to compile; err is set when a
// regex remote is not valid RE2 as written or wrapped, or the remote is not valid UTF-8.
func CompileRoleMapRemote(remote string) (regex string, literal bool, err error) {
	if !utf8.ValidString(remote) {
		return "", false, errors.New("remote is not valid UTF-8")
	}
	switch {
	case IsRoleMapRegex(remote):
		// The remote must compile on its own too: wrapping "^a)|(b$" gives ^(?:^a)|(b$)$,
		// which compiles but no longer matches only whole role names.
		if _, err := regexp.Compile(remote); err != nil {
			return "", false, fmt.Errorf("remote %q is not a valid regular expression: %s", remote, regexpProblem(err, remote))
		}
		regex = "^(?:" + remote + ")$"
	case !strings.Contains(remote, "*"):
		regex, literal = "^"+regexp.QuoteMeta(remote)+"$", true
	default:
		parts := strings.Split(remote, "*")
		for i, p := range parts {
			parts[i] = regexp.QuoteMeta(p)
		}
		regex = "^(?:" + strings.Join(parts, "(.*)") + ")$"
	}
	if _, err := regexp.Compile(regex); err != nil {
		if IsRoleMapRegex(remote) {
			return "", false, fmt.Errorf("remote %q is not a valid regular expression: %s", remote, regexpProblem(err, regex))
		}
		return "", false, fmt.Errorf("remote %q does not compile: %s", remote, regexpProblem(err, regex))
	}
	return regex, literal, nil
}

// ExpandLiteralLocal returns what a local template gives for a literal remote, the same as
//
//	regexp.MustCompile("^" + regexp.QuoteMeta(remote) + "$").ReplaceAllString(remote, local)
//
// that is Go's Regexp.Expand with only group 0: $0 and ${0} are the remote, $$ is '$', any
// other $name or ${name} (including $1, $1x and $00) is empty, and a '$' not followed by a
// name is kept. It never panics and does not need remote to compile.
func ExpandLiteralLocal(remote, local string) string {
	var b strings.Builder
	for {
		before, after, ok := strings.Cut(local, "$")
		if !ok {
			break
		}
		b.WriteString(before)
		local = after
		if local != "" && local[0] == '$' {
			b.WriteByte('$')
			local = local[1:]
			continue
		}
		name, rest, ok := expandName(local)
		if !ok {
			b.WriteByte('$')
			continue
		}
		local = rest
		if name == "0" {
			b.WriteString(remote)
		}
	}
	b.WriteString(local)
	return b.String()
}

// expandName reads the name after a '$' as regexp.Regexp.Expand does: letters, digits and
// '_', optionally in braces.
func expandName(s string) (name, rest string, ok bool) {
	brace := false
	if s != "" && s[0] == '{' {
		brace = true
		s = s[1:]
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' {
			break
		}
		i += size
	}
	if i == 0 {
		return "", "", false
	}
	name = s[:i]
	if brace {
		if i >= len(s) || s[i] != '}' {
			return "", "", false
		}
		i++
	}
	return name, s[i:], true
}
