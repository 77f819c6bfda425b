package resource

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxClusterLabelLength is the longest label (dot-separated part) of a cluster name.
const MaxClusterLabelLength = 63

// CheckClusterName reports whether name can be a cluster's name: a DNS name of at most
// 253 bytes whose labels are 1..63 letters, digits, hyphens or underscores, not starting
// or ending with a hyphen. A trailing dot (the DNS root) and upper case are accepted;
// NormalizeClusterName removes them. It refuses ".", "..", empty labels, "/", whitespace,
// control and invisible characters: a cluster name becomes a store key, a URL path
// segment and a certificate name, where any of them could make two names one.
func CheckClusterName(name string) error {
	n := strings.TrimSuffix(name, ".")
	switch {
	case n == "":
		return errors.New("a cluster name must not be empty (nor only a dot)")
	case len(n) > MaxNameLength:
		return fmt.Errorf("a cluster name is at most %d bytes", MaxNameLength)
	}
	for i, label := range strings.Split(n, ".") {
		if label == "" {
			return fmt.Errorf("cluster name %s has an empty label (two dots in a row, or a leading dot)", strconv.QuoteToASCII(name))
		}
		if len(label) > MaxClusterLabelLength {
			return fmt.Errorf("cluster name %s: label %d is longer than %d bytes", strconv.QuoteToASCII(name), i+1, MaxClusterLabelLength)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("cluster name %s: %s is not allowed; a cluster name is a DNS name (letters, digits, '-', '_' and dots between labels)",
					strconv.QuoteToASCII(name), strconv.QuoteRuneToASCII(r))
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("cluster name %s: a label must not start or end with '-'", strconv.QuoteToASCII(name))
		}
	}
	return nil
}

// NormalizeClusterName is the form a cluster name is stored and compared in: lower case
// without a trailing dot, so that "ROOT.example.com" and "root.example.com." are
// "root.example.com". It does not check the name (see CheckClusterName).
func NormalizeClusterName(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// SameCluster reports whether a and b name the same cluster.
func SameCluster(a, b string) bool { return NormalizeClusterName(a) == NormalizeClusterName(b) }

// checkClusterMetadataName checks metadata.name as a cluster name and normalises it in
// place. Callers have already checked it with checkHeader.
func checkClusterMetadataName(res string, md *Metadata) error {
	if err := CheckClusterName(md.Name); err != nil {
		return wrapFieldErr(res, path{"metadata", "name"}, err)
	}
	md.Name = NormalizeClusterName(md.Name)
	return nil
}
