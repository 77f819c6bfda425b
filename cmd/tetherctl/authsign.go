package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/tetherproject/tether/ca"
	"github.com/tetherproject/tether/gateway/auth"
)

func authCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "auth", Short: "Sign keys with the cluster's certificate authorities, export their public keys, rotate them"}
	var dataDir, host, pubFile string
	var ttl time.Duration
	sign := &cobra.Command{
		Use:   "sign --host=NAME[,NAME...] --pub=FILE [--ttl=0]",
		Short: "Print an OpenSSH host certificate for a node's host key, signed by the cluster's host CA (sshd_config HostCertificate)",
		Long: `Signs an OpenSSH server's host key (e.g. /etc/ssh/ssh_host_ed25519_key.pub) with the
cluster's host CA, so that the cluster's proxy can verify the server when it connects to it
as a registered node. NAME must be the node resource's name (the proxy checks it among the
certificate's principals). Run it on the cluster's host: it reads the CA from --data-dir.
Write the output next to the key as ..._key-cert.pub and add HostCertificate to sshd_config;
give sshd the cluster's openssh CA as TrustedUserCAKeys (tetherctl auth export
--type=openssh; never the user CA, which signs users' login certificates).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if host == "" || pubFile == "" {
				return errors.New("give --host=NAME (the node's name) and --pub=FILE (the server's public host key)")
			}
			// Only names a node can have: the proxy looks the node up by its name.
			for _, h := range strings.Split(host, ",") {
				if h = strings.TrimSpace(h); h == "" {
					continue
				}
				if err := auth.CheckNodeName(h); err != nil {
					return fmt.Errorf("--host: %v", err)
				}
			}
			data, err := os.ReadFile(pubFile)
			if err != nil {
				return fmt.Errorf("reading the host key: %v", err)
			}
			pub, _, _, _, err := ssh.ParseAuthorizedKey(data)
			if err != nil {
				return fmt.Errorf("%s is not an OpenSSH public key", pubFile)
			}
			cluster, err := ca.LoadCluster(filepath.Join(dataDir, "ca"))
			if err != nil {
				return fmt.Errorf("reading the cluster's CAs from %s: %v (run tetherctl on the cluster's host, with --data-dir)", filepath.Join(dataDir, "ca"), err)
			}
			var principals []string
			for _, h := range strings.Split(host, ",") {
				if h = strings.TrimSpace(h); h != "" {
					principals = append(principals, h, h+"."+cluster.Name)
				}
			}
			cert, err := cluster.Host.IssueHost(ca.HostCertRequest{PublicKey: pub, Principals: principals, TTL: ttl})
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(ssh.MarshalAuthorizedKey(cert))
			return err
		},
	}
	def := os.Getenv("TETHER_DATA_DIR")
	if def == "" {
		def = "/var/lib/tether"
	}
	sign.Flags().StringVar(&dataDir, "data-dir", def, "the cluster's data directory")
	sign.Flags().StringVar(&host, "host", "", "the node's name (comma-separated for several)")
	sign.Flags().StringVar(&pubFile, "pub", "", "the server's public host key file")
	sign.Flags().DurationVar(&ttl, "ttl", 0, "the certificate's lifetime; 0 never expires (as ssh-keygen)")
	cmd.AddCommand(sign, authExportCommand(), authRotateCommand())
	return cmd
}
