package bundles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader/filter"
)

// This file converts between Tether's Bundle and OPA's bundle.Bundle: what OPA's
// writer writes and what Tether keeps of what OPA's reader read.

// opa converts b into OPA's form, signature included.
func (b *Bundle) opa() bundle.Bundle {
	roots := slices.Clone(b.Roots)
	regoVersion := 1
	ob := bundle.Bundle{
		Manifest: bundle.Manifest{
			Revision:    b.Revision,
			Roots:       &roots,
			RegoVersion: &regoVersion,
			Metadata:    b.Metadata,
		},
		Data: b.Data,
	}
	for _, m := range b.Modules {
		p := "/" + m.Path
		ob.Modules = append(ob.Modules, bundle.ModuleFile{URL: p, Path: p, RelativePath: m.Path, Raw: m.Raw})
	}
	if b.sig != nil {
		ob.Signatures = b.sig.config
	}
	return ob
}

// readyToWrite checks b before any write and returns OPA's form of it.
func (b *Bundle) readyToWrite() (bundle.Bundle, error) {
	if err := b.checkLayout(); err != nil {
		return bundle.Bundle{}, err
	}
	if b.Data == nil {
		return bundle.Bundle{}, errors.New("data document is missing")
	}
	if b.sig != nil && !b.Signed() {
		return bundle.Bundle{}, errors.New("bundle changed after it was signed; sign it again")
	}
	return b.opa(), nil
}

// fromOPA keeps what Tether uses of ob and refuses what it would ignore.
func fromOPA(ob bundle.Bundle) (*Bundle, error) {
	switch {
	case len(ob.Patch.Data) > 0:
		return nil, errors.New("delta bundles (patch.json) are not supported; ship a full bundle")
	case len(ob.Wasm) > 0 || len(ob.WasmModules) > 0 || len(ob.Manifest.WasmResolvers) > 0:
		return nil, errors.New("bundle holds Wasm modules, which Tether does not evaluate")
	case len(ob.PlanModules) > 0:
		return nil, errors.New("bundle holds plan modules, which Tether does not evaluate")
	}
	if v := ob.Manifest.RegoVersion; v != nil && *v != 1 {
		return nil, fmt.Errorf("manifest declares rego_version %d; Tether evaluates Rego v1 only", *v)
	}
	for pattern, v := range ob.Manifest.FileRegoVersions {
		if v != 1 {
			return nil, fmt.Errorf("manifest declares rego_version %d for %q; Tether evaluates Rego v1 only", v, pattern)
		}
	}
	b := &Bundle{
		Revision: ob.Manifest.Revision,
		Roots:    []string{""}, // OPA's default for a bundle without a manifest
		Data:     ob.Data,
		Metadata: ob.Manifest.Metadata,
	}
	if ob.Manifest.Roots != nil {
		b.Roots = slices.Clone(*ob.Manifest.Roots)
	}
	if b.Data == nil {
		b.Data = map[string]any{}
	}
	if len(b.Metadata) == 0 {
		b.Metadata = nil
	}
	for _, mf := range ob.Modules {
		b.Modules = append(b.Modules, Module{Path: strings.TrimPrefix(mf.Path, "/"), Raw: mf.Raw})
	}
	sortModules(b.Modules)
	return b, nil
}

// memLoader hands files already read (and checked) to OPA's bundle reader.
type memLoader struct {
	files archiveFiles
	next  int
}

func (l *memLoader) NextFile() (*bundle.Descriptor, error) {
	if l.next >= len(l.files) {
		return nil, io.EOF
	}
	f := l.files[l.next]
	l.next++
	return bundle.NewDescriptor(f.name, f.name, bytes.NewBuffer(f.data)), nil
}

func (l *memLoader) WithFilter(filter.LoaderFilter) bundle.DirectoryLoader { return l }
func (l *memLoader) WithPathFormat(bundle.PathFormat) bundle.DirectoryLoader {
	return l
}
func (l *memLoader) WithSizeLimitBytes(int64) bundle.DirectoryLoader { return l }
func (l *memLoader) WithFollowSymlinks(bool) bundle.DirectoryLoader  { return l }
