package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway/web"
)

// clustersInKnownHosts are the clusters whose host CAs the profile's known_hosts holds,
// from the comments tether writes: "clustername=NAME&type=host" (web.KnownHostsLine), or
// "tether host CA of NAME" in profiles written by earlier versions.
// configCiphers is the cipher order tether config gives OpenSSH: OpenSSH's own default set
// with AES-GCM first. The user's SSH connection ends at the cluster's enforcement point and
// proxy, written in Go, where AES-GCM runs on the CPU's AES instructions and ChaCha20 has no
// assembly on amd64 (x/crypto), so OpenSSH's first choice, chacha20-poly1305, costs the
// leaf ≈ 2-3 ms of CPU per MiB more (make bench: -tether.scpcipher). Nothing is removed:
// a server that offers only ChaCha20 (the cluster's ciphers option) still gets it.
const configCiphers = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr"

func clustersInKnownHosts(p *Profile) []string {
	data, err := os.ReadFile(p.KnownHostsPath())
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "@cert-authority ") {
			continue
		}
		// Only cluster names become Host lines and ProxyCommand arguments (a profile
		// written before tether login checked them may hold anything the proxy sent).
		if _, name, ok := strings.Cut(line, " tether host CA of "); ok {
			if name = strings.TrimSpace(name); isClusterName(name) {
				seen[name] = true
			}
			continue
		}
		f := strings.Fields(line)
		if c, ok := strings.CutPrefix(f[len(f)-1], web.KnownHostsClusterPrefix); ok {
			if name, _, _ := strings.Cut(c, "&"); isClusterName(name) {
				seen[name] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sortMostSpecificFirst(out)
	return out
}

// sortMostSpecificFirst orders names by their number of labels, most first, then by name:
// OpenSSH takes each option from the first Host block that matches, so the block of
// root.example.com must come before that of a cluster named example.com, whose pattern
// *.example.com matches root.example.com's nodes too.
func sortMostSpecificFirst(names []string) {
	sort.Slice(names, func(i, j int) bool {
		ni, nj := strings.Count(names[i], "."), strings.Count(names[j], ".")
		if ni != nj {
			return ni > nj
		}
		return names[i] < names[j]
	})
}

// configPath is a file name as an ssh_config argument: double-quoted (OpenSSH reads \" and
// \\ in quotes) and with '%' doubled, since OpenSSH expands %d, %h, ... in these options.
func configPath(s string) string {
	return strings.ReplaceAll(strconv.Quote(s), "%", "%%")
}

// shellArg is s as one word of the ProxyCommand, which OpenSSH percent-expands and then
// runs with sh -c: single-quoted ('$', '`' and '"' stay literal) and with '%' doubled.
func shellArg(s string) string {
	return strings.ReplaceAll("'"+strings.ReplaceAll(s, "'", `'\''`)+"'", "%", "%%")
}

func configCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "config",
		Short: "Print an ssh_config block that lets OpenSSH (ssh, scp, sftp) reach nodes as NODE.CLUSTER through the proxy",
		Long: `Print an ssh_config block that lets OpenSSH (ssh, scp, sftp) reach nodes as
NODE.CLUSTER through the proxy: one "Match originalhost *.CLUSTER,*.CLUSTER." block per
cluster you have signed in to (the root and its leaves), and one for the proxy itself,
for ProxyJump. Names match in any case (ssh NODE.LEAF works as ssh node.leaf); a name
typed with a final dot (ssh node.leaf.) is refused by tether proxy ssh with what to type
instead, since OpenSSH would check the node's host certificate against the dotted name.

Use it with ssh -F FILE, or put it in ~/.ssh/config before any Host * block: OpenSSH keeps
the first value it reads for an option, so a Host * block above these would decide
StrictHostKeyChecking and UserKnownHostsFile for the nodes too (with accept-new there, ssh
would trust a node's plain key on first use instead of the cluster's host CA).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := loadProfile()
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				self = "tether"
			}
			// A profile outside ~/.tether is named in the ProxyCommand, so the block works
			// from a shell that has no TETHER_HOME (ssh -F, scp, an IDE's remote plugin).
			proxyCmd := shellArg(self)
			if h := os.Getenv("TETHER_HOME"); h != "" {
				if abs, err := filepath.Abs(h); err == nil {
					proxyCmd = "env TETHER_HOME=" + shellArg(abs) + " " + shellArg(self)
				}
			}
			w := cmd.OutOrStdout()
			identity := func() {
				fmt.Fprintf(w, "    UserKnownHostsFile %s\n", configPath(p.KnownHostsPath()))
				fmt.Fprintf(w, "    IdentityFile %s\n", configPath(p.KeyPath()))
				fmt.Fprintf(w, "    CertificateFile %s\n", configPath(p.CertPath()))
				fmt.Fprintf(w, "    IdentitiesOnly yes\n")
				fmt.Fprintf(w, "    PubkeyAuthentication yes\n")
				fmt.Fprintf(w, "    PasswordAuthentication no\n")
				// Only the host CAs in tether's known_hosts are trusted: a plain or unknown
				// host key is refused, not offered for trust on first use into that file.
				fmt.Fprintf(w, "    StrictHostKeyChecking yes\n")
				fmt.Fprintf(w, "    Ciphers %s\n", configCiphers)
			}
			fmt.Fprintf(w, "# Tether: reach nodes as NODE.CLUSTER through %s (generated by tether config for %s)\n", p.Proxy, p.User)
			fmt.Fprintf(w, "# In ~/.ssh/config, put this before any Host * block: OpenSSH keeps the first value of each option\n")
			// The proxy itself, for ProxyJump (ssh -F FILE -J HOST login@NODE.CLUSTER, as
			// with Teleport's proxy): its port, and its host certificate checked under the
			// root cluster's name, which the known_hosts CA line names (OpenSSH would look
			// the host up as [HOST]:PORT). First, and with ProxyCommand none, so that no
			// cluster's *.NAME block (a leaf named example.com, a proxy at
			// tether.example.com) sends the proxy's own connection through a tunnel.
			// Matched in any case, with or without a final dot, as the clusters' blocks.
			if host, port, err := net.SplitHostPort(p.Proxy); err == nil && p.Cluster != "" {
				fmt.Fprintf(w, "# The proxy, for ProxyJump: ssh -F FILE -J %s LOGIN@NODE.CLUSTER\n", host)
				fmt.Fprintf(w, "Match originalhost %s,%s.\n", host, host)
				fmt.Fprintf(w, "    Port %s\n", port)
				fmt.Fprintf(w, "    User %s\n", p.User)
				fmt.Fprintf(w, "    HostKeyAlias %s\n", p.Cluster)
				fmt.Fprintf(w, "    ProxyCommand none\n")
				identity()
				fmt.Fprintln(w)
			}
			// Most specific cluster names first (clustersInKnownHosts). "Match originalhost",
			// not "Host": OpenSSH matches Host patterns against the name as typed and
			// case-sensitively, so "ssh NODE.LEAF" missed "Host *.leaf" and went to DNS;
			// Match compares lowercased, as the name is lowercased for %h and the host
			// certificate check. The name with a final dot is matched too, so that tether
			// proxy ssh says to type it without the dot (proxyNodeOfName).
			for _, c := range clustersInKnownHosts(p) {
				fmt.Fprintf(w, "Match originalhost *.%s,*.%s.\n", c, c)
				identity()
				fmt.Fprintf(w, "    ProxyCommand %s proxy ssh --cluster=%s %%r@%%h:%%p\n", proxyCmd, c)
				fmt.Fprintln(w)
			}
			return nil
		},
	}
}
