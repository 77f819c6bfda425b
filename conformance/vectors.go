package conformance

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/policy"
	"github.com/tetherproject/tether/resource"
)

//go:embed vectors/*.yaml
var vectorFS embed.FS

// File is one vector file: a cluster's resources and operator modules, and the decisions
// Tether must make on them.
type File struct {
	// Name is the file's base name without ".yaml", for example "rolemap". It names the
	// Go subtests and the emitted Rego package tether.conformance.<Name>.
	Name string `yaml:"-"`
	// Cluster is the name of the cluster whose decisions the vectors ask for.
	Cluster string `yaml:"cluster"`
	// MaxClockSkew is the cluster's explicit max_clock_skew (a Go duration such as "1m");
	// empty means the default, none.
	MaxClockSkew string `yaml:"max_clock_skew"`
	// Resources is a multi-document YAML string of resources, as resource.Parse reads it.
	Resources string `yaml:"resources"`
	// ForeignKeys are SSH public keys (authorized_keys format) of CAs the cluster does not
	// know, whose fingerprints vectors about unknown signers may use.
	ForeignKeys []string `yaml:"foreign_keys"`
	// Modules are operators' Rego modules (package tether.custom or below).
	Modules []Module `yaml:"modules"`
	// Rejected are resources the cluster must refuse to load (rules checked when a
	// resource is created, before any decision); Go checks them, Rego never sees them.
	Rejected []Rejected `yaml:"rejected"`
	// Anchors is never read; it is a place to define YAML anchors the vectors share.
	Anchors yaml.Node `yaml:"anchors"`
	// Vectors are the decisions, in the order they run.
	Vectors []Vector `yaml:"vectors"`
}

// Rejected is a resource document that resource.Parse must refuse.
type Rejected struct {
	// Name is a lower-case snake_case identifier, unique among the file's rejected
	// resources, named like the rule it proves.
	Name string `yaml:"name"`
	// Resources is the YAML that must not load.
	Resources string `yaml:"resources"`
	// Error is a substring of the error resource.Parse must return.
	Error string `yaml:"error"`
}

// Module is one operator Rego module of a vector file.
type Module struct {
	// Name is the module's file name in the bundle, for example "deny_root.rego".
	Name string `yaml:"name"`
	// Rego is the module's source (Rego v1).
	Rego string `yaml:"rego"`
}

// Vector is one decision: an input document and what data.tether.authz.decision must say.
type Vector struct {
	// Name is a lower-case snake_case identifier, unique in its file, named like the rule
	// the vector proves.
	Name string `yaml:"name"`
	// Input is the decision input document, in the JSON shape policy.ParseInputJSON reads.
	Input yaml.Node `yaml:"input"`
	// Want is the expected decision.
	Want Want `yaml:"want"`
	// KnownBug, when set, says how Tether's current behaviour departs from the rule the
	// vector states; the vector is skipped (and emitted as an opa todo_test_) until fixed.
	KnownBug string `yaml:"known_bug"`

	// input is Input parsed by policy.ParseInputJSON.
	input *policy.Input
}

// Want is what a decision must say. Allow is required; the other fields are checked only
// when present.
type Want struct {
	Allow *bool `yaml:"allow"`
	// Roles, when present, must equal the decision's roles, order included; [] means none.
	Roles *[]string `yaml:"roles"`
	// ReasonsContain are substrings each of which some reason must contain.
	ReasonsContain []string `yaml:"reasons_contain"`
	// ReasonsPrefix are prefixes each of which some reason must start with.
	ReasonsPrefix []string `yaml:"reasons_prefix"`
	// ExpiresAt, when set, is the decision's expires_at as an RFC 3339 time, or "none" for
	// a decision no time-based rule can change (expires_at null).
	ExpiresAt string `yaml:"expires_at"`
}

// ExpiresNone is the Want.ExpiresAt value for a decision without expiry.
const ExpiresNone = "none"

// ParsedInput returns the vector's input document as the engine reads it.
func (v *Vector) ParsedInput() *policy.Input { return v.input }

var (
	vectorName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	fileName   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// Files reads and checks every vector file embedded in the package, sorted by name.
func Files() ([]*File, error) {
	names, err := fs.Glob(vectorFS, "vectors/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	files := make([]*File, 0, len(names))
	for _, n := range names {
		data, err := vectorFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		f, err := ParseFile(strings.TrimSuffix(path.Base(n), ".yaml"), data)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, errors.New("conformance: no vector files")
	}
	return files, nil
}

// ParseFile decodes a vector file strictly: unknown fields, a missing allow, a malformed
// input document, a bad name or expiry, or resources that do not parse are errors.
func ParseFile(name string, data []byte) (*File, error) {
	src := "vectors/" + name + ".yaml"
	if !fileName.MatchString(name) {
		return nil, fmt.Errorf("%s: file name must be a lower-case identifier ([a-z][a-z0-9_]*)", src)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	f := &File{Name: name}
	if err := dec.Decode(f); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, fmt.Errorf("%s: want exactly one YAML document", src)
	}
	if f.Cluster == "" {
		return nil, fmt.Errorf("%s: cluster is required", src)
	}
	if _, err := f.clockSkew(); err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if _, err := f.ParseResources(); err != nil {
		return nil, err
	}
	for i, m := range f.Modules {
		if m.Name == "" || !strings.HasSuffix(m.Name, ".rego") || strings.Contains(m.Name, "/") {
			return nil, fmt.Errorf("%s: modules[%d]: name must be a file name ending in .rego, got %q", src, i, m.Name)
		}
		if strings.TrimSpace(m.Rego) == "" {
			return nil, fmt.Errorf("%s: modules[%d] (%s): rego is required", src, i, m.Name)
		}
	}
	rejected := map[string]bool{}
	for i, r := range f.Rejected {
		switch {
		case !vectorName.MatchString(r.Name):
			return nil, fmt.Errorf("%s: rejected[%d]: name must be a lower-case snake_case identifier", src, i)
		case rejected[r.Name]:
			return nil, fmt.Errorf("%s: rejected[%d]: name %q is used twice", src, i, r.Name)
		case strings.TrimSpace(r.Resources) == "" || r.Error == "":
			return nil, fmt.Errorf("%s: rejected[%d] %q: resources and error are required", src, i, r.Name)
		}
		rejected[r.Name] = true
	}
	if len(f.Vectors) == 0 {
		return nil, fmt.Errorf("%s: no vectors", src)
	}
	seen := map[string]bool{}
	for i := range f.Vectors {
		v := &f.Vectors[i]
		if err := v.check(); err != nil {
			return nil, fmt.Errorf("%s: vectors[%d] %q: %w", src, i, v.Name, err)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("%s: vectors[%d]: name %q is used twice", src, i, v.Name)
		}
		seen[v.Name] = true
	}
	return f, nil
}

func (v *Vector) check() error {
	if !vectorName.MatchString(v.Name) {
		return errors.New("name must be a lower-case snake_case identifier ([a-z][a-z0-9_]*)")
	}
	if v.Want.Allow == nil {
		return errors.New("want.allow is required")
	}
	switch e := v.Want.ExpiresAt; e {
	case "", ExpiresNone:
	default:
		if _, err := time.Parse(time.RFC3339Nano, e); err != nil {
			return fmt.Errorf("want.expires_at %q is neither an RFC 3339 time nor %q", e, ExpiresNone)
		}
	}
	for _, s := range append(append([]string{}, v.Want.ReasonsContain...), v.Want.ReasonsPrefix...) {
		if s == "" {
			return errors.New("want.reasons_contain and want.reasons_prefix entries must not be empty")
		}
	}
	if v.Input.Kind != yaml.MappingNode {
		return errors.New("input must be a mapping (the decision input document)")
	}
	doc, err := inputDocument(&v.Input)
	if err != nil {
		return err
	}
	if v.input, err = policy.ParseInputJSON(doc); err != nil {
		return err
	}
	return nil
}

// inputDocument converts a YAML input document to the JSON policy.ParseInputJSON reads.
// Timestamps stay strings (yaml.v3 keeps them as written when decoding into any).
func inputDocument(n *yaml.Node) ([]byte, error) {
	var doc any
	if err := n.Decode(&doc); err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	return out, nil
}

// ParseResources parses the file's resources.
func (f *File) ParseResources() ([]resource.Resource, error) {
	rs, err := resource.Parse([]byte(f.Resources), "vectors/"+f.Name+".yaml#resources")
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// Bundle builds the cluster's policy bundle: its resources, Tether's library and the
// file's operator modules, exactly as a running cluster would.
func (f *File) Bundle() (*bundles.Bundle, error) {
	rs, err := f.ParseResources()
	if err != nil {
		return nil, err
	}
	skew, err := f.clockSkew()
	if err != nil {
		return nil, err
	}
	mods := make([]bundles.Module, len(f.Modules))
	for i, m := range f.Modules {
		mods[i] = bundles.Module{Path: m.Name, Raw: []byte(m.Rego)}
	}
	b, err := bundles.ForCluster(bundles.ClusterOptions{
		ShapeOptions:    bundles.ShapeOptions{ClusterName: f.Cluster, MaxClockSkew: skew, Resources: rs},
		OperatorModules: mods,
	})
	if err != nil {
		return nil, fmt.Errorf("vectors/%s.yaml: building the bundle: %w", f.Name, err)
	}
	return b, nil
}

// clockSkew parses MaxClockSkew; empty is zero.
func (f *File) clockSkew() (time.Duration, error) {
	if f.MaxClockSkew == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(f.MaxClockSkew)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("max_clock_skew %q: want a non-negative Go duration such as 1m", f.MaxClockSkew)
	}
	return d, nil
}
