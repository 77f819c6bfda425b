package resource

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLength is the longest metadata.name accepted, in bytes (a DNS name's limit).
const MaxNameLength = 253

func validateMetadata(res string, md *Metadata) error {
	p := path{"metadata", "name"}
	if err := checkName(md.Name); err != nil {
		return wrapFieldErr(res, p, err)
	}
	for k := range md.Labels {
		if k == "" {
			return fieldErr(res, path{"metadata", "labels"}, "label keys must not be empty")
		}
	}
	return nil
}

// checkName applies the rules for metadata.name. It never echoes the name, which for a token
// is a secret.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("required")
	case len(name) > MaxNameLength:
		return errors.New("longer than 253 bytes")
	case !utf8.ValidString(name):
		return errors.New("not valid UTF-8")
	case name == "." || name == "..":
		// A URL path cleans them away: such a resource could be created but never
		// read or removed through the admin API.
		return errors.New(`must not be "." or ".."`)
	}
	for _, r := range name {
		switch {
		case unicode.IsSpace(r) || unicode.In(r, unicode.Z):
			return errors.New("must not contain whitespace")
		case unicode.IsControl(r) || unicode.In(r, unicode.Cf):
			// Cf holds invisible format characters (zero-width space, bidi overrides) that
			// would let two different names look the same.
			return errors.New("must not contain control or invisible format characters")
		}
	}
	return nil
}

// checkHostPort requires host:port with a non-empty host and a port in 1..65535.
func checkHostPort(addr string) error {
	if addr == "" {
		return errors.New("required (host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, for example root.example.com:443, got " + strconv.Quote(addr))
	}
	if host == "" || strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return errors.New("want host:port with a host name or IP address, got " + strconv.Quote(addr))
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return errors.New("port must be a number from 1 to 65535, got " + strconv.Quote(addr))
	}
	return nil
}

// checkURL requires an absolute URL with a host and one of the given schemes.
func checkURL(s string, schemes ...string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a valid URL: " + strconv.Quote(s))
	}
	ok := false
	for _, sc := range schemes {
		if u.Scheme == sc {
			ok = true
		}
	}
	if !ok {
		return errors.New("must be an " + strings.Join(schemes, " or ") + " URL, got " + strconv.Quote(s))
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("URL must name a host, got " + strconv.Quote(s))
	}
	return nil
}

// isBlank reports whether s is empty or only whitespace, which Teleport treats as missing.
func isBlank(s string) bool { return strings.TrimSpace(s) == "" }
