package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/resource"
)

// authExportCommand is tctl's `auth export`: the cluster's public CA keys in the forms
// OpenSSH and other tools read, fetched from the running cluster with the admin identity.
func authExportCommand() *cobra.Command {
	var conn connFlags
	var typ string
	cmd := &cobra.Command{
		Use:   "export --type=openssh|user|host|tls",
		Short: "Print the cluster's public CA keys: openssh (sshd TrustedUserCAKeys), user, host (known_hosts), tls (PEM)",
		Long: `Prints the public keys of this cluster's certificate authorities, every key a
certificate may be checked against (the signing key and, during a rotation, the others):

  --type=openssh  one OpenSSH public key per line: the file sshd's TrustedUserCAKeys names
                  on an OpenSSH server registered as a node. The openssh CA signs only the
                  5-minute certificates the cluster's enforcement point issues for one
                  connection, after its ssh.session decision; users' login certificates
                  (tether login) are the user CA's, so that sshd refuses them.
  --type=user     the same form for the user CA, which signs users' login certificates.
                  Do not give it to a node's sshd: every user who signs in at this
                  cluster would log in to the node directly, around its access decision.
  --type=host     @cert-authority lines for an OpenSSH client's known_hosts
  --type=tls      the TLS CA certificates in PEM (what a leaf pins with root_ca_file)

Teleport's tctl prints --type=user as authorized_keys "cert-authority" lines that had to
be edited for TrustedUserCAKeys; tetherctl prints the form sshd reads.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			want, ok := map[string]string{"openssh": resource.CATypeOpenSSH, "user": resource.CATypeUser,
				"host": resource.CATypeHost, "tls": resource.CATypeTLS}[typ]
			if !ok {
				return fmt.Errorf("--type=%q: give --type=openssh (a node's sshd TrustedUserCAKeys), user, host (known_hosts) or tls (PEM)", typ)
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			st, err := c.Status(ctxOf(cmd))
			if err != nil {
				return err
			}
			docs, err := c.Get(ctxOf(cmd), resource.KindCertAuthority, "", false)
			if err != nil {
				return err
			}
			var cas []*resource.CertAuthority
			for _, d := range docs {
				rs, err := resource.Parse([]byte(d), "cert_authority")
				if err != nil {
					return fmt.Errorf("reading the cluster's certificate authorities: %v", err)
				}
				for _, r := range rs {
					if ca, ok := r.(*resource.CertAuthority); ok {
						cas = append(cas, ca)
					}
				}
			}
			return writeCAExport(cmd.OutOrStdout(), st.ClusterName, want, cas)
		},
	}
	conn.register(cmd)
	cmd.Flags().StringVar(&typ, "type", "", "openssh, user, host or tls")
	return cmd
}

// writeCAExport prints the keys of cluster's CA of type typ among cas, active keys first.
// The comment is Teleport's (clustername=NAME&type=T): one word, which parsers that stop at
// the first space after the key (x/crypto's ParseKnownHosts) accept.
// Another cluster's CA (a trusted root's, on a leaf) is never printed: this is what the
// cluster itself signs with.
func writeCAExport(w io.Writer, cluster, typ string, cas []*resource.CertAuthority) error {
	var b strings.Builder
	n := 0
	for _, ca := range cas {
		if ca.Spec.ClusterName != cluster || ca.Spec.Type != typ {
			continue
		}
		for _, set := range []resource.CAKeySet{ca.Spec.ActiveKeys, ca.Spec.AdditionalTrustedKeys} {
			if typ == resource.CATypeTLS {
				for _, kp := range set.TLS {
					b.WriteString(strings.TrimSpace(kp.Cert) + "\n")
					n++
				}
				continue
			}
			for _, kp := range set.SSH {
				pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(kp.PublicKey))
				if err != nil {
					return fmt.Errorf("the %s CA of %s holds a key that is not an OpenSSH public key: %v", typ, cluster, err)
				}
				key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
				if typ == resource.CATypeHost {
					fmt.Fprintf(&b, "@cert-authority *.%s,%s %s clustername=%s&type=host\n", cluster, cluster, key, cluster)
				} else {
					fmt.Fprintf(&b, "%s clustername=%s&type=%s\n", key, cluster, typ)
				}
				n++
			}
		}
	}
	if n == 0 {
		return errors.New("the cluster has no " + typ + " CA keys to export (is tetherd fully started? see tetherctl status)")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
