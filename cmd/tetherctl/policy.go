package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/bundles"
	"github.com/tetherproject/tether/policy"
	regolib "github.com/tetherproject/tether/rego"
	"github.com/tetherproject/tether/resource"
)

func policyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Build, test and query Tether's policy offline; export a running cluster's bundle",
	}
	cmd.AddCommand(policyBuildCommand(), policyTestCommand(), policyEvalCommand(), policyExplainCommand(), policyExportCommand())
	return cmd
}

// sourceFlags are how the offline commands find a cluster's policy: resource files and
// operator modules, or an already built bundle.
type sourceFlags struct {
	resources  []string
	modules    string
	cluster    string
	bundlePath string
	skew       time.Duration
	revision   string
	// errOut is where warnings go (the command's stderr).
	errOut func() io.Writer

	// Signature checks on --bundle, with OPA's flag names.
	verificationKey   string
	verificationKeyID string
	verificationAlg   string
	scope             string
}

func (s *sourceFlags) register(cmd *cobra.Command, withBundle bool) {
	s.errOut = cmd.ErrOrStderr
	cmd.Flags().StringSliceVarP(&s.resources, "resources", "r", nil, "resource YAML files (roles, trusted_cluster, remote_cluster, cert_authority, lock); repeatable")
	cmd.Flags().StringVar(&s.modules, "modules", "", "directory of operator Rego modules (package tether.custom)")
	cmd.Flags().StringVar(&s.cluster, "cluster", "", "name of the cluster the policy is for (default: the input's cluster)")
	cmd.Flags().DurationVar(&s.skew, "max-clock-skew", bundles.DefaultMaxClockSkew, "how far in the future a certificate's valid_after may be")
	cmd.Flags().StringVar(&s.revision, "revision", "", "bundle revision (default: a hash of the content)")
	if withBundle {
		cmd.Flags().StringVarP(&s.bundlePath, "bundle", "b", "", "use a built bundle (.tar.gz or directory) instead of --resources/--modules")
		cmd.Flags().StringVar(&s.verificationKey, "verification-key", "", "refuse the --bundle unless it is signed with this key (PEM public key or certificate, or HMAC secret file) and unchanged since")
		cmd.Flags().StringVar(&s.verificationKeyID, "verification-key-id", bundles.DefaultKeyID, "name of the verification key (as opa's --verification-key-id)")
		cmd.Flags().StringVar(&s.verificationAlg, "signing-alg", "ES256", "algorithm the bundle was signed with (ES256, RS256, HS256, ...)")
		cmd.Flags().StringVar(&s.scope, "scope", "", "scope the bundle's signature must carry (as opa's --scope)")
	}
}

func (s *sourceFlags) build() (*bundles.Bundle, error) {
	if s.bundlePath != "" {
		if len(s.resources) > 0 || s.modules != "" {
			return nil, fmt.Errorf("--bundle cannot be combined with --resources or --modules")
		}
		if s.verificationKey == "" {
			if s.scope != "" {
				return nil, fmt.Errorf("--scope needs --verification-key")
			}
			return bundles.Read(s.bundlePath)
		}
		key, err := os.ReadFile(s.verificationKey)
		if err != nil {
			return nil, fmt.Errorf("reading verification key: %w", err)
		}
		return bundles.ReadVerified(s.bundlePath, bundles.VerificationKey{
			KeyID: s.verificationKeyID, Algorithm: s.verificationAlg, Key: key, Scope: s.scope,
		})
	}
	if s.verificationKey != "" || s.scope != "" {
		return nil, fmt.Errorf("--verification-key and --scope check a --bundle; a policy built from --resources is not signed")
	}
	if s.cluster == "" {
		return nil, fmt.Errorf("--cluster is required: the name of the cluster this policy is for")
	}
	var res []resource.Resource
	for _, path := range s.resources {
		data, err := readLimited(path)
		if err != nil {
			return nil, err
		}
		rs, warn, err := resource.ParseWithWarnings(data, path)
		if err != nil {
			return nil, err
		}
		if warn != nil && s.errOut != nil {
			fmt.Fprintln(s.errOut(), "WARNING:", warn.String())
		}
		res = append(res, rs...)
	}
	var mods []bundles.Module
	if s.modules != "" {
		var err error
		if mods, _, err = bundles.ReadOperatorModules(s.modules); err != nil {
			return nil, err
		}
	}
	return bundles.ForCluster(bundles.ClusterOptions{
		ShapeOptions:    bundles.ShapeOptions{ClusterName: s.cluster, MaxClockSkew: s.skew, Resources: res},
		OperatorModules: mods,
		Revision:        s.revision,
	})
}

func policyBuildCommand() *cobra.Command {
	var src sourceFlags
	var out, dir, signingKey, signingAlg, keyID, scope string
	cmd := &cobra.Command{
		Use:   "build --cluster NAME --resources FILE... [--modules DIR] (-o bundle.tar.gz | --dir DIR)",
		Short: "Build an OPA bundle from resource files, Tether's Rego library and operator modules",
		Long: `Build the policy bundle a cluster evaluates every decision with.

The bundle holds the cluster's resources shaped as data.tether, Tether's Rego library
and the operator modules. opa eval -b accepts it:

  opa eval -b bundle.tar.gz -i input.json 'data.tether.authz.decision'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (out == "") == (dir == "") {
				return fmt.Errorf("give exactly one of -o FILE.tar.gz or --dir DIR")
			}
			b, err := src.build()
			if err != nil {
				return err
			}
			if signingKey != "" {
				key, err := os.ReadFile(signingKey)
				if err != nil {
					return fmt.Errorf("reading signing key: %w", err)
				}
				if err := bundles.Sign(b, bundles.SigningKey{Algorithm: signingAlg, Key: key, KeyID: keyID, Scope: scope}); err != nil {
					return err
				}
			} else if scope != "" {
				return fmt.Errorf("--scope is recorded in a signature: give --signing-key too")
			}
			if dir != "" {
				if err := bundles.WriteDir(dir, b); err != nil {
					return err
				}
			} else {
				f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
				if err != nil {
					return err
				}
				if err := bundles.WriteTarGz(f, b); err != nil {
					f.Close()
					return err
				}
				if err := f.Close(); err != nil {
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "bundle revision %s written to %s\n", b.Revision, out+dir)
			return nil
		},
	}
	src.register(cmd, false)
	cmd.Flags().StringVarP(&out, "output", "o", "", "write a .tar.gz bundle")
	cmd.Flags().StringVar(&dir, "dir", "", "write the bundle as a directory")
	cmd.Flags().StringVar(&signingKey, "signing-key", "", "sign the bundle (OPA .signatures.json) with this PEM private key or HMAC secret file")
	cmd.Flags().StringVar(&signingAlg, "signing-alg", "ES256", "signing algorithm (ES256, RS256, HS256, ...)")
	cmd.Flags().StringVar(&keyID, "key-id", "", "key id recorded in the signature")
	cmd.Flags().StringVar(&scope, "scope", "", "scope recorded in the signature (verifiers must name the same --scope)")
	return cmd
}

func policyTestCommand() *cobra.Command {
	var modulesDir string
	var verbose bool
	var filter string
	cmd := &cobra.Command{
		Use:   "test [--modules DIR]",
		Short: "Run the Rego tests of Tether's library and of the operator modules, in-process",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files := append(regolib.Modules(), regolib.Tests()...)
			if modulesDir != "" {
				mods, tests, err := bundles.ReadOperatorModules(modulesDir)
				if err != nil {
					return err
				}
				for _, m := range append(mods, tests...) {
					files = append(files, regolib.File{Path: "custom/" + m.Path, Raw: m.Raw})
				}
				// Sub-packages' deny and grants rules join data.tether.custom as in a
				// built bundle, so the tests see what the engine will.
				var parsed []*ast.Module
				for _, m := range mods {
					pm, err := ast.ParseModuleWithOpts(m.Path, string(m.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1})
					if err != nil {
						return fmt.Errorf("operator module %s: %w", m.Path, err)
					}
					parsed = append(parsed, pm)
				}
				if agg, ok := bundles.SubpackageRules(parsed); ok {
					files = append(files, regolib.File{Path: agg.Path, Raw: agg.Raw})
				}
			}
			return runRegoTests(cmd.Context(), cmd.OutOrStdout(), files, filter, verbose)
		},
	}
	cmd.Flags().StringVar(&modulesDir, "modules", "", "directory of operator Rego modules and their _test.rego files")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every test")
	cmd.Flags().StringVar(&filter, "run", "", "run only tests whose name matches this regex")
	return cmd
}

func runRegoTests(ctx context.Context, w io.Writer, files []regolib.File, filter string, verbose bool) error {
	modules := map[string]*ast.Module{}
	for _, f := range files {
		m, err := ast.ParseModuleWithOpts(f.Path, string(f.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		modules[f.Path] = m
	}
	runner := tester.NewRunner().SetModules(modules).SetDefaultRegoVersion(ast.RegoV1).SetTimeout(time.Minute)
	if filter != "" {
		runner = runner.Filter(filter)
	}
	ch, err := runner.Run(ctx, modules)
	if err != nil {
		return err
	}
	var results []*tester.Result
	for r := range ch {
		results = append(results, r)
	}
	rch := make(chan *tester.Result, len(results))
	failed := 0
	for _, r := range results {
		if !r.Pass() {
			failed++
		}
		rch <- r
	}
	close(rch)
	if err := (tester.PrettyReporter{Output: w, Verbose: verbose}).Report(rch); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d policy tests failed", failed, len(results))
	}
	return nil
}

func readInput(path string) (*policy.Input, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, policy.MaxInputJSON+1))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	in, err := policy.ParseInputJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return in, nil
}

// whatIf loads the policy and answers one input with the engine's public query.
func whatIf(ctx context.Context, src *sourceFlags, inputPath string) (*policy.Engine, *policy.Input, policy.Decision, error) {
	in, err := readInput(inputPath)
	if err != nil {
		return nil, nil, policy.Decision{}, err
	}
	if src.cluster == "" {
		src.cluster = in.Cluster
	}
	b, err := src.build()
	if err != nil {
		return nil, nil, policy.Decision{}, err
	}
	e, err := policy.New(policy.Options{CacheSize: -1})
	if err != nil {
		return nil, nil, policy.Decision{}, err
	}
	if err := e.Load(ctx, b); err != nil {
		return nil, nil, policy.Decision{}, err
	}
	d, err := e.DecidePlain(ctx, in)
	return e, in, d, err
}

type decisionJSON struct {
	Allow     bool     `json:"allow"`
	Roles     []string `json:"roles"`
	Reasons   []string `json:"reasons"`
	ExpiresAt *string  `json:"expires_at"`
	Revision  string   `json:"revision"`
}

func toJSON(d policy.Decision) decisionJSON {
	out := decisionJSON{Allow: d.Allow, Roles: d.Roles, Reasons: d.Reasons, Revision: d.Revision}
	if out.Roles == nil {
		out.Roles = []string{}
	}
	if out.Reasons == nil {
		out.Reasons = []string{}
	}
	if !d.ExpiresAt.IsZero() {
		s := d.ExpiresAt.UTC().Format(time.RFC3339Nano)
		out.ExpiresAt = &s
	}
	return out
}

func policyEvalCommand() *cobra.Command {
	var src sourceFlags
	var inputPath string
	var failDenied bool
	cmd := &cobra.Command{
		Use:   "eval --resources FILE... [--modules DIR] --input input.json",
		Short: "What-if: print the decision for an input, with the mapped roles and the reasons",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, _, d, err := whatIf(cmd.Context(), &src, inputPath)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(toJSON(d)); err != nil {
				return err
			}
			if failDenied && !d.Allow {
				os.Exit(2)
			}
			return nil
		},
	}
	src.register(cmd, true)
	cmd.Flags().StringVarP(&inputPath, "input", "i", "", "decision input document (JSON; - for stdin)")
	cmd.Flags().BoolVar(&failDenied, "fail-denied", false, "exit with status 2 when the decision is a denial")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func policyExplainCommand() *cobra.Command {
	var src sourceFlags
	var inputPath string
	cmd := &cobra.Command{
		Use:   "explain --resources FILE... [--modules DIR] --input input.json",
		Short: "Explain in plain words why a request is allowed or denied",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			e, in, d, err := whatIf(ctx, &src, inputPath)
			if err != nil {
				return err
			}
			return explain(ctx, cmd.OutOrStdout(), e, in, d)
		},
	}
	src.register(cmd, true)
	cmd.Flags().StringVarP(&inputPath, "input", "i", "", "decision input document (JSON; - for stdin)")
	_ = cmd.MarkFlagRequired("input")
	return cmd
}

func explain(ctx context.Context, w io.Writer, e *policy.Engine, in *policy.Input, d policy.Decision) error {
	verdict := "DENIED"
	if d.Allow {
		verdict = "ALLOWED"
	}
	fmt.Fprintf(w, "%s: %s", verdict, in.Action)
	switch {
	case in.Login != "" && in.Node != nil:
		fmt.Fprintf(w, " as %s@%s", in.Login, in.Node.Name)
	case in.Node != nil:
		fmt.Fprintf(w, " of node %s", in.Node.Name)
	case in.RemoteCluster != nil:
		fmt.Fprintf(w, " to cluster %s", in.RemoteCluster.Name)
	}
	fmt.Fprintf(w, " on cluster %s at %s (policy revision %s)\n\n", in.Cluster, in.Now.UTC().Format(time.RFC3339), d.Revision)

	c := in.Cert
	fmt.Fprintf(w, "Certificate\n  user %q, %s certificate signed by cluster %s (%s)\n", c.Username, c.Type, c.SigningCA.Cluster, c.SigningCA.Fingerprint)
	fmt.Fprintf(w, "  valid %s to %s\n", fmtTime(c.ValidAfter), fmtTime(c.ValidBefore))
	fmt.Fprintf(w, "  principals %s, roles %s\n", list(c.Principals), list(c.Roles))
	if c.IssuedVia != "" || c.MFAVerified {
		fmt.Fprintf(w, "  issued via %q, MFA verified: %v\n", c.IssuedVia, c.MFAVerified)
	}
	if in.Node != nil {
		fmt.Fprintf(w, "Node\n  %s %s\n", in.Node.Name, labelString(in.Node.Labels))
	}

	idv, err := e.Identity(ctx, in)
	if err != nil {
		return err
	}
	id, _ := idv.(map[string]any)
	fmt.Fprintf(w, "\nTrust\n")
	if probs := anyStrings(id["problems"]); len(probs) > 0 {
		for _, p := range probs {
			fmt.Fprintf(w, "  ✗ %s\n", p)
		}
	} else {
		fmt.Fprintf(w, "  ✓ signed by a certificate authority this cluster trusts for user certificates\n")
	}

	fmt.Fprintf(w, "\nRoles\n")
	if local, _ := id["local"].(bool); local {
		fmt.Fprintf(w, "  the certificate is from this cluster: its roles are used as they are\n")
	} else {
		fmt.Fprintf(w, "  role_map of trusted cluster %s:\n", c.SigningCA.Cluster)
		remote := c.Roles
		if len(remote) == 0 {
			remote = []string{""}
		}
		for _, r := range remote {
			mapped, err := e.Query(ctx, "data.tether.rolemap.map_roles(data.tether.trusted_clusters[input.cluster].role_map, [input.role])",
				ast.MustInterfaceToValue(map[string]any{"cluster": c.SigningCA.Cluster, "role": r}))
			if err != nil {
				fmt.Fprintf(w, "    %q → (no role_map: %v)\n", r, err)
				continue
			}
			ms := anyStrings(mapped)
			if len(ms) == 0 {
				fmt.Fprintf(w, "    %q → nothing (no rule matches)\n", r)
			} else {
				fmt.Fprintf(w, "    %q → %s\n", r, list(ms))
			}
		}
	}
	for _, n := range anyStrings(id["notes"]) {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintf(w, "  local roles: %s\n", list(d.Roles))

	fmt.Fprintf(w, "\nDecision\n")
	for _, r := range d.Reasons {
		mark := "✗"
		if d.Allow {
			mark = "✓"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, r)
	}
	if !d.ExpiresAt.IsZero() {
		fmt.Fprintf(w, "  holds until %s\n", d.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return explainEngine(ctx, w, e, in, d)
}

// explainEngine decides the input again as tetherd does (the engine's stages, on the
// evaluators it picks for this bundle) and says whether that is the decision above, which
// is the public query's (data.tether.authz.decision on topdown, what opa eval -b gives).
func explainEngine(ctx context.Context, w io.Writer, e *policy.Engine, in *policy.Input, d policy.Decision) error {
	ev := e.Evaluators()
	stages := make([]string, 0, len(ev))
	for _, s := range []string{"identity", "fast", "access", "nodes"} {
		stages = append(stages, s+" "+ev[s])
	}
	fmt.Fprintf(w, "\nEngine (as tetherd decides: %s)\n", strings.Join(stages, ", "))
	staged, err := e.Decide(ctx, in)
	if err == nil {
		staged, err = staged.Explained(ctx)
	}
	if err != nil {
		return fmt.Errorf("deciding on the engine's path: %w", err)
	}
	if staged.Allow == d.Allow && slices.Equal(staged.Reasons, d.Reasons) && slices.Equal(staged.Roles, d.Roles) && staged.ExpiresAt.Equal(d.ExpiresAt) {
		fmt.Fprintf(w, "  ✓ the same decision, roles, reasons and expiry as data.tether.authz.decision\n")
		return nil
	}
	fmt.Fprintf(w, "  ✗ a different decision: allow %v, roles %s, reasons %q (please report this: the two must agree)\n", staged.Allow, list(staged.Roles), staged.Reasons)
	return errors.New("the engine's decision differs from data.tether.authz.decision")
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "(unset)"
	}
	return t.UTC().Format(time.RFC3339)
}

func list(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func labelString(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func anyStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
