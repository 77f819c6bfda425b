package ca

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Limits on what a certificate may carry. They keep every certificate ReadUserCert accepts
// inside what the policy input accepts, with room to spare for the rest of the input.
const (
	// MaxExtensionBytes bounds the JSON of ExtRoles and ExtTraits.
	MaxExtensionBytes = 64 << 10
	// MaxCertStrings bounds principals + roles + trait names + trait values.
	MaxCertStrings = 2048
	// MaxCertStringBytes bounds each string: a login, role, trait, key id, user name.
	MaxCertStringBytes = 4096
)

// maxPolicyTime is the latest instant a policy input can hold (int64 nanoseconds since
// 1970, in April 2262); OpenSSH's "forever" valid_before becomes it.
var maxPolicyTime = time.Unix(0, math.MaxInt64).UTC()

// limits checks strings against the limits above, keeping the first error.
type limits struct {
	n   int
	err error
}

func (l *limits) text(field, s string) {
	l.n++
	switch {
	case l.err != nil:
	case !utf8.ValidString(s):
		l.err = fmt.Errorf("%s is not valid UTF-8", field)
	case len(s) > MaxCertStringBytes:
		l.err = fmt.Errorf("%s is %d bytes, more than %d", field, len(s), MaxCertStringBytes)
	case l.n > MaxCertStrings:
		l.err = fmt.Errorf("more than %d logins, roles and traits", MaxCertStrings)
	}
}

// name is text that must not be empty (a login, role or trait name).
func (l *limits) name(field, s string) {
	l.text(field, s)
	if l.err == nil && s == "" {
		l.err = fmt.Errorf("a %s is empty", field)
	}
}

// UserClaims is what a verified user certificate says, in Tether's terms: the fields of
// its Tether extensions, parsed. policy.CertFromSSH turns it into the decision input's
// certificate.
type UserClaims struct {
	Signer         TrustedKey // the key that signed it, as VerifyUser returned it
	Username       string
	KeyID          string
	Principals     []string
	Roles          []string
	Traits         map[string][]string
	ValidAfter     time.Time
	ValidBefore    time.Time
	RouteToCluster string
	IssuedVia      string
	MFAVerified    bool
}

// ReadUserCert reads a user certificate VerifyUser accepted, and the key it returned.
// Tether's extensions are parsed strictly: malformed or oversize JSON, non-UTF-8 text, an
// empty role or login, duplicate trait names and a valued ExtMFAVerified are errors, never
// silently dropped. Extensions Tether does not define are ignored, as OpenSSH ignores
// them. The user is ExtUser, or the key id when the certificate has no ExtUser (Teleport's
// convention). valid_before "forever" and any time past 2262 become the latest time a
// policy input holds.
func ReadUserCert(cert *ssh.Certificate, signer TrustedKey) (UserClaims, error) {
	c, err := readUserCert(cert, signer)
	if err != nil {
		id := ""
		if cert != nil {
			id = cert.KeyId
		}
		return UserClaims{}, fmt.Errorf("reading certificate %q: %w", id, err)
	}
	return c, nil
}

func readUserCert(cert *ssh.Certificate, signer TrustedKey) (UserClaims, error) {
	if cert == nil {
		return UserClaims{}, fmt.Errorf("no certificate")
	}
	if cert.CertType != ssh.UserCert {
		return UserClaims{}, fmt.Errorf("%w: a %s certificate, not a user certificate", ErrWrongCertType, certTypeName(cert.CertType))
	}
	if signer.Key == nil || cert.SignatureKey == nil || !bytes.Equal(signer.Key.Marshal(), cert.SignatureKey.Marshal()) {
		return UserClaims{}, fmt.Errorf("it is not signed by the key given as its signer; pass the key VerifyUser returned")
	}
	if err := checkCriticalOptions(cert); err != nil {
		return UserClaims{}, err
	}
	if err := checkClusterName(signer.Cluster); err != nil {
		return UserClaims{}, fmt.Errorf("signer: %w", err)
	}
	out := UserClaims{
		Signer:      signer,
		KeyID:       cert.KeyId,
		ValidAfter:  policyTime(cert.ValidAfter),
		ValidBefore: policyTime(cert.ValidBefore),
	}
	if len(cert.ValidPrincipals) == 0 {
		// Tether never issues one; OpenSSH would take it as valid for every login.
		return UserClaims{}, fmt.Errorf("certificate %q has no principals (logins); one without is valid for every login, so it is refused", cert.KeyId)
	}
	lim := &limits{}
	lim.text("key id", cert.KeyId)
	for _, p := range cert.ValidPrincipals {
		lim.name("principal", p)
	}
	if lim.err != nil {
		return UserClaims{}, lim.err
	}
	out.Principals = append([]string{}, cert.ValidPrincipals...)
	ext := cert.Extensions
	var err error
	user, hasUser := ext[ExtUser]
	if !hasUser {
		user = cert.KeyId
	}
	lim.name("user name", user)
	out.Username = user
	if v, ok := ext[ExtRoles]; ok {
		if out.Roles, err = parseRoles(v, lim); err != nil {
			return UserClaims{}, fmt.Errorf("extension %s: %w", ExtRoles, err)
		}
	}
	if v, ok := ext[ExtTraits]; ok {
		if out.Traits, err = parseTraits(v, lim); err != nil {
			return UserClaims{}, fmt.Errorf("extension %s: %w", ExtTraits, err)
		}
	}
	out.RouteToCluster = ext[ExtRouteToCluster]
	lim.text(ExtRouteToCluster, out.RouteToCluster)
	out.IssuedVia = ext[ExtIssuedVia]
	lim.text(ExtIssuedVia, out.IssuedVia)
	if lim.err != nil {
		return UserClaims{}, lim.err
	}
	if v, ok := ext[ExtMFAVerified]; ok {
		if v != "" {
			return UserClaims{}, fmt.Errorf("extension %s is a flag and must have no value, it has %d bytes", ExtMFAVerified, len(v))
		}
		out.MFAVerified = true
	}
	return out, nil
}

// policyTime converts a certificate time (seconds since 1970) to a time the policy input
// can hold.
func policyTime(sec uint64) time.Time {
	if sec > uint64(maxPolicyTime.Unix()) {
		return maxPolicyTime
	}
	return time.Unix(int64(sec), 0).UTC()
}

// jsonTokens reads a JSON extension value token by token, so that duplicate keys, null,
// nesting and trailing data are errors rather than silently accepted.
type jsonTokens struct{ dec *json.Decoder }

func newJSONTokens(v string) (*jsonTokens, error) {
	if len(v) > MaxExtensionBytes {
		return nil, fmt.Errorf("%d bytes, more than %d", len(v), MaxExtensionBytes)
	}
	if !utf8.ValidString(v) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	return &jsonTokens{dec: json.NewDecoder(strings.NewReader(v))}, nil
}

func (j *jsonTokens) delim(want json.Delim, what string) error {
	t, err := j.dec.Token()
	if err != nil {
		return fmt.Errorf("malformed JSON: %w", noEOF(err))
	}
	if d, ok := t.(json.Delim); !ok || d != want {
		return fmt.Errorf("want %s, got %s", what, describeToken(t))
	}
	return nil
}

func (j *jsonTokens) str(what string) (string, error) {
	t, err := j.dec.Token()
	if err != nil {
		return "", fmt.Errorf("malformed JSON: %w", noEOF(err))
	}
	s, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("want %s, got %s", what, describeToken(t))
	}
	return s, nil
}

// strings reads "[" string, ... "]".
func (j *jsonTokens) strings(what string) ([]string, error) {
	if err := j.delim('[', "an array of "+what+"s"); err != nil {
		return nil, err
	}
	out := []string{}
	for j.dec.More() {
		s, err := j.str("a " + what + " (string)")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := j.delim(']', "the end of the array"); err != nil {
		return nil, err
	}
	return out, nil
}

func (j *jsonTokens) end() error {
	t, err := j.dec.Token()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return fmt.Errorf("unexpected %s after the JSON value", describeToken(t))
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func describeToken(t json.Token) string {
	switch v := t.(type) {
	case nil:
		return "null"
	case json.Delim:
		return fmt.Sprintf("%q", string(v))
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

// parseRoles reads ExtRoles: a JSON array of non-empty strings.
func parseRoles(v string, lim *limits) ([]string, error) {
	j, err := newJSONTokens(v)
	if err != nil {
		return nil, err
	}
	roles, err := j.strings("role")
	if err != nil {
		return nil, err
	}
	if err := j.end(); err != nil {
		return nil, err
	}
	for _, r := range roles {
		lim.name("role", r)
	}
	return roles, lim.err
}

// parseTraits reads ExtTraits: a JSON object whose keys are unique non-empty trait names
// and whose values are arrays of strings.
func parseTraits(v string, lim *limits) (map[string][]string, error) {
	j, err := newJSONTokens(v)
	if err != nil {
		return nil, err
	}
	if err := j.delim('{', "an object of traits"); err != nil {
		return nil, err
	}
	traits := map[string][]string{}
	for j.dec.More() {
		name, err := j.str("a trait name")
		if err != nil {
			return nil, err
		}
		if _, dup := traits[name]; dup {
			return nil, fmt.Errorf("trait %q appears twice", name)
		}
		vals, err := j.strings("trait value")
		if err != nil {
			return nil, fmt.Errorf("trait %q: %w", name, err)
		}
		lim.name("trait name", name)
		for _, s := range vals {
			lim.text("trait "+name, s)
		}
		if lim.err != nil {
			return nil, lim.err
		}
		traits[name] = vals
	}
	if err := j.delim('}', "the end of the object"); err != nil {
		return nil, err
	}
	if err := j.end(); err != nil {
		return nil, err
	}
	return traits, nil
}
