package decisionlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func decodeJSON(t testing.TB, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", s, err)
	}
	return v
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMask(t *testing.T) {
	t.Parallel()
	const input = `{"login":"visitor","token":"t0k","password":"pw",
		"cert":{"username":"alice","traits":{"logins":["a","b"],"secret":"s","password":"p"}},
		"list":[{"k":"v0"},{"k":"v1"},{"k":"v2"}],
		"weird/key":1}`
	const result = `{"allow":true,"reasons":["r0","r1"],"roles":["x"]}`
	tests := []struct {
		name       string
		rules      []MaskRule
		wantInput  string // JSON, "" when input is gone
		wantResult string
		wantErased []string
		wantMasked []string
	}{
		{
			name:       "erase_top_level_field",
			rules:      []MaskRule{{Path: "/input/token"}},
			wantInput:  `{"cert":{"traits":{"logins":["a","b"],"password":"p","secret":"s"},"username":"alice"},"list":[{"k":"v0"},{"k":"v1"},{"k":"v2"}],"login":"visitor","password":"pw","weird/key":1}`,
			wantResult: result,
			wantErased: []string{"/input/token"},
		},
		{
			name:       "erase_nested_field",
			rules:      []MaskRule{{Op: MaskRemove, Path: "/input/cert/traits/secret"}},
			wantInput:  `{"cert":{"traits":{"logins":["a","b"],"password":"p"},"username":"alice"},"list":[{"k":"v0"},{"k":"v1"},{"k":"v2"}],"login":"visitor","password":"pw","token":"t0k","weird/key":1}`,
			wantResult: result,
			wantErased: []string{"/input/cert/traits/secret"},
		},
		{
			name:       "erase_array_element_shifts_the_rest",
			rules:      []MaskRule{{Path: "/input/list/1"}, {Path: "/result/reasons/0"}},
			wantInput:  `{"cert":{"traits":{"logins":["a","b"],"password":"p","secret":"s"},"username":"alice"},"list":[{"k":"v0"},{"k":"v2"}],"login":"visitor","password":"pw","token":"t0k","weird/key":1}`,
			wantResult: `{"allow":true,"reasons":["r1"],"roles":["x"]}`,
			wantErased: []string{"/input/list/1", "/result/reasons/0"},
		},
		{
			name:       "erase_inside_array_element",
			rules:      []MaskRule{{Path: "/input/list/2/k"}, {Path: "/result/roles/0"}},
			wantInput:  `{"cert":{"traits":{"logins":["a","b"],"password":"p","secret":"s"},"username":"alice"},"list":[{"k":"v0"},{"k":"v1"},{}],"login":"visitor","password":"pw","token":"t0k","weird/key":1}`,
			wantResult: `{"allow":true,"reasons":["r0","r1"],"roles":[]}`,
			wantErased: []string{"/input/list/2/k", "/result/roles/0"},
		},
		{
			name:       "erase_whole_input",
			rules:      []MaskRule{{Path: "/input"}},
			wantResult: result,
			wantErased: []string{"/input"},
		},
		{
			name:       "missing_paths_change_nothing",
			rules:      []MaskRule{{Path: "/input/nope"}, {Path: "/input/login/deeper"}, {Path: "/input/list/3"}, {Path: "/input/list/01"}, {Path: "/input/list/-1"}, {Path: "/result/allow/x"}},
			wantInput:  input,
			wantResult: result,
		},
		{
			name:       "percent_escaped_slash_in_key",
			rules:      []MaskRule{{Path: "/input/weird%2Fkey"}},
			wantInput:  `{"cert":{"traits":{"logins":["a","b"],"password":"p","secret":"s"},"username":"alice"},"list":[{"k":"v0"},{"k":"v1"},{"k":"v2"}],"login":"visitor","password":"pw","token":"t0k"}`,
			wantResult: result,
			wantErased: []string{"/input/weird%2Fkey"},
		},
		{
			name:       "upsert_replaces_nested_value",
			rules:      []MaskRule{{Op: MaskUpsert, Path: "/input/cert/traits/password", Value: "***"}},
			wantInput:  `{"cert":{"traits":{"logins":["a","b"],"password":"***","secret":"s"},"username":"alice"},"list":[{"k":"v0"},{"k":"v1"},{"k":"v2"}],"login":"visitor","password":"pw","token":"t0k","weird/key":1}`,
			wantResult: result,
			wantMasked: []string{"/input/cert/traits/password"},
		},
		{
			name:       "upsert_creates_missing_objects",
			rules:      []MaskRule{{Op: MaskUpsert, Path: "/result/audit/by", Value: map[string]any{"who": "tether"}}},
			wantInput:  input,
			wantResult: `{"allow":true,"audit":{"by":{"who":"tether"}},"reasons":["r0","r1"],"roles":["x"]}`,
			wantMasked: []string{"/result/audit/by"},
		},
		{
			name:       "upsert_array_element",
			rules:      []MaskRule{{Op: MaskUpsert, Path: "/input/cert/traits/logins/1", Value: "x"}, {Op: MaskUpsert, Path: "/input/list/0/k", Value: nil}},
			wantInput:  `{"cert":{"traits":{"logins":["a","x"],"password":"p","secret":"s"},"username":"alice"},"list":[{"k":null},{"k":"v1"},{"k":"v2"}],"login":"visitor","password":"pw","token":"t0k","weird/key":1}`,
			wantResult: result,
			wantMasked: []string{"/input/cert/traits/logins/1", "/input/list/0/k"},
		},
		{
			name:       "upsert_past_array_end_or_through_scalar_does_nothing",
			rules:      []MaskRule{{Op: MaskUpsert, Path: "/input/list/3", Value: 1}, {Op: MaskUpsert, Path: "/input/login/x", Value: 1}},
			wantInput:  input,
			wantResult: result,
		},
		{
			name:       "upsert_whole_result",
			rules:      []MaskRule{{Op: MaskUpsert, Path: "/result", Value: "hidden"}},
			wantInput:  input,
			wantResult: `"hidden"`,
			wantMasked: []string{"/result"},
		},
		{
			name:       "rules_apply_in_order",
			rules:      []MaskRule{{Op: MaskUpsert, Path: "/input/token", Value: "***"}, {Path: "/input/token"}, {Path: "/input/token"}},
			wantInput:  `{"cert":{"traits":{"logins":["a","b"],"password":"p","secret":"s"},"username":"alice"},"list":[{"k":"v0"},{"k":"v1"},{"k":"v2"}],"login":"visitor","password":"pw","weird/key":1}`,
			wantResult: result,
			wantErased: []string{"/input/token"},
			wantMasked: []string{"/input/token"},
		},
		{
			name:       "default_masks",
			rules:      DefaultMasks(),
			wantInput:  `{"cert":{"traits":{"logins":["a","b"]},"username":"alice"},"list":[{"k":"v0"},{"k":"v1"},{"k":"v2"}],"login":"visitor","weird/key":1}`,
			wantResult: result,
			wantErased: []string{"/input/token", "/input/password", "/input/cert/traits/password", "/input/cert/traits/secret"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in, res := decodeJSON(t, input), decodeJSON(t, result)
			inBefore, resBefore := mustJSON(t, in), mustJSON(t, res)
			ev := Event{DecisionID: "d", Input: in, Result: res, Erased: []string{}}
			got, err := Mask(ev, tt.rules...)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantInput == "" {
				if got.Input != nil {
					t.Errorf("input %s, want none", mustJSON(t, got.Input))
				}
			} else if g, w := mustJSON(t, got.Input), mustJSON(t, decodeJSON(t, tt.wantInput)); g != w {
				t.Errorf("input\n got %s\nwant %s", g, w)
			}
			if g, w := mustJSON(t, got.Result), mustJSON(t, decodeJSON(t, tt.wantResult)); g != w {
				t.Errorf("result\n got %s\nwant %s", g, w)
			}
			if !slices.Equal(got.Erased, tt.wantErased) {
				t.Errorf("erased %q, want %q", got.Erased, tt.wantErased)
			}
			if !slices.Equal(got.Masked, tt.wantMasked) {
				t.Errorf("masked %q, want %q", got.Masked, tt.wantMasked)
			}
			if mustJSON(t, in) != inBefore || mustJSON(t, res) != resBefore || len(ev.Erased) != 0 {
				t.Errorf("masking modified the caller's objects:\n%s\n%s", mustJSON(t, in), mustJSON(t, res))
			}
		})
	}
}

// TestMaskStructInput: a Go struct input is masked like its JSON form, so a
// typed input document cannot hide a secret from the masks.
func TestMaskStructInput(t *testing.T) {
	t.Parallel()
	type traits struct {
		Password string   `json:"password"`
		Logins   []string `json:"logins"`
	}
	type cert struct {
		Traits traits `json:"traits"`
	}
	type input struct {
		Token string            `json:"token"`
		Cert  *cert             `json:"cert"`
		Node  map[string]string `json:"node"`
	}
	in := &input{Token: "t", Cert: &cert{Traits: traits{Password: "p", Logins: []string{"a"}}}, Node: map[string]string{"name": "n"}}
	got, err := Mask(Event{Input: in}, append(DefaultMasks(), MaskRule{Op: MaskUpsert, Path: "/input/node/name", Value: "x"})...)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := mustJSON(t, got.Input), `{"cert":{"traits":{"logins":["a"]}},"node":{"name":"x"}}`; g != w {
		t.Errorf("input %s, want %s", g, w)
	}
	if in.Token != "t" || in.Cert.Traits.Password != "p" || in.Node["name"] != "n" {
		t.Errorf("the caller's struct was modified: %+v", in)
	}
}

func TestMaskInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rule MaskRule
	}{
		{"path_without_leading_slash", MaskRule{Path: "input/token"}},
		{"path_outside_input_and_result", MaskRule{Path: "/labels/id"}},
		{"empty_path", MaskRule{Path: ""}},
		{"unknown_op", MaskRule{Op: "delete", Path: "/input/token"}},
		{"bad_escape", MaskRule{Path: "/input/%zz"}},
		{"upsert_value_not_JSON", MaskRule{Op: MaskUpsert, Path: "/input/x", Value: make(chan int)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Mask(Event{}, tt.rule); !errors.Is(err, ErrInvalidMask) {
				t.Errorf("Mask(%+v) error %v, want ErrInvalidMask", tt.rule, err)
			}
			if _, err := New(Config{Masks: []MaskRule{tt.rule}, Console: &bytes.Buffer{}}); err == nil {
				t.Errorf("New accepted mask %+v", tt.rule)
			}
		})
	}
}

// FuzzMask: any JSON input and any mask path either is rejected or masks
// without panicking, leaves the original untouched, and yields an event that
// still encodes.
func FuzzMask(f *testing.F) {
	f.Add([]byte(`{"token":"x","cert":{"traits":{"password":["p"]}}}`), "/input/cert/traits/password/0", false)
	f.Add([]byte(`[1,[2,{"a":3}]]`), "/input/1/1/a", true)
	f.Add([]byte(`{"a":{"b":null}}`), "/input/a/b/c", true)
	f.Add([]byte(`"scalar"`), "/input", false)
	f.Add([]byte(`{"a%2Fb":1,"":2}`), "/result/", true)
	f.Add([]byte(`{"x":[]}`), "/input/x/0", false)
	f.Fuzz(func(t *testing.T, data []byte, path string, upsert bool) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var doc any
		if err := dec.Decode(&doc); err != nil {
			return
		}
		before, err := json.Marshal(doc)
		if err != nil {
			return
		}
		rule := MaskRule{Path: path}
		if upsert {
			rule = MaskRule{Op: MaskUpsert, Path: path, Value: map[string]any{"v": "***"}}
		}
		ev := Event{Input: doc, Result: doc}
		got, err := Mask(ev, rule, rule)
		if err != nil {
			if !errors.Is(err, ErrInvalidMask) {
				t.Fatalf("error %v does not wrap ErrInvalidMask", err)
			}
			return
		}
		if after, _ := json.Marshal(doc); !bytes.Equal(before, after) {
			t.Fatalf("original modified:\nbefore %s\nafter  %s", before, after)
		}
		if _, err := json.Marshal(got); err != nil {
			t.Fatalf("masked event does not encode: %v", err)
		}
		if n := len(got.Erased) + len(got.Masked); n > 2 {
			t.Fatalf("two rules recorded %d changes", n)
		}
	})
}
