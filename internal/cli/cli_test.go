package cli

import (
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// A command that only groups subcommands fails on a missing or unknown one, naming it and
// the choices; flags after an unknown command blame the command, not the flag.
func TestRequireSubcommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "tool needs a command: one of get, group (see tool --help)"},
		{[]string{"lock", "--user=alice"}, `unknown command "lock" for "tool": use one of get, group`},
		{[]string{"group"}, "tool group needs a command: one of leaf"},
		{[]string{"group", "nope"}, `unknown command "nope" for "tool group"`},
		{[]string{"get"}, ""},
	} {
		root := &cobra.Command{Use: "tool", SilenceErrors: true, SilenceUsage: true, CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true}}
		group := &cobra.Command{Use: "group"}
		group.AddCommand(&cobra.Command{Use: "leaf", RunE: func(*cobra.Command, []string) error { return nil }})
		root.AddCommand(&cobra.Command{Use: "get", RunE: func(*cobra.Command, []string) error { return nil }}, group)
		RequireSubcommands(root)
		root.SetArgs(tc.args)
		root.SetOut(io.Discard)
		err := root.Execute()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tc.args, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// A flag value pflag cannot read is said as the flag and what it wants, without Go's
// parser errors: tetherctl tokens add --ttl=zz said 'invalid argument "zz" for "--ttl"
// flag: time: invalid duration "zz"', tether ssh -p abc '... strconv.ParseInt: parsing
// "abc": invalid syntax'. Found by the acceptance pass.
func TestFlagValueErrorsAreSaidPlainly(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "--ttl=zz"}, `--ttl "zz" is not a duration such as 30m or 10h`},
		{[]string{"get", "-p", "abc"}, `--port "abc" is not a number`},
		{[]string{"get", "--port=99999999999999999999"}, `--port "99999999999999999999" is not a number`},
		{[]string{"get", "--yes=maybe"}, `--yes "maybe" is not true or false`},
		{[]string{"get", "--bogus"}, "unknown flag: --bogus"},
	} {
		root := &cobra.Command{Use: "tool", SilenceErrors: true, SilenceUsage: true, CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true}}
		get := &cobra.Command{Use: "get", RunE: func(*cobra.Command, []string) error { return nil }}
		get.Flags().Duration("ttl", 0, "")
		get.Flags().IntP("port", "p", 22, "")
		get.Flags().Bool("yes", false, "")
		root.AddCommand(get)
		RequireSubcommands(root)
		root.SetArgs(tc.args)
		root.SetOut(io.Discard)
		err := root.Execute()
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestExactArgsSaysWhatToGive: a missing or extra argument names the command's usage.
func TestExactArgsSaysWhatToGive(t *testing.T) {
	cmd := &cobra.Command{Use: "create [-f|--force] FILE", RunE: func(*cobra.Command, []string) error { return nil }, Args: ExactArgs(1)}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "create takes one argument, got none: create [-f|--force] FILE (see create --help)"},
		{[]string{"a", "b"}, `create takes one argument, got "a" "b": create [-f|--force] FILE`},
	} {
		cmd.SetArgs(tc.args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %q: %v, want %q", tc.args, err, tc.want)
		}
	}
	cmd.SetArgs([]string{"f.yaml"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("one argument: %v", err)
	}
}
