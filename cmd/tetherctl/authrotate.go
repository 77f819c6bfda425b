package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// authRotateCommand is tctl's `auth rotate --manual`: one phase of a CA rotation of the
// running cluster per call.
func authRotateCommand() *cobra.Command {
	var conn connFlags
	var typ, phase string
	cmd := &cobra.Command{
		Use:   "rotate --type=user|host|tls|openssh --phase=init|update_clients|update_servers|standby|rollback",
		Short: "Move one of the running cluster's CAs to the next phase of a key rotation",
		Long: `Rotates a certificate authority of the running cluster one phase at a time, as
Teleport's tctl auth rotate --manual:

  init            a new key is made and trusted beside the current one; it does not sign yet.
                  Users sign in again (tether login) to trust the new key; OpenSSH servers
                  registered by hand get the new keys now (tetherctl auth export
                  --type=openssh for TrustedUserCAKeys, --type=host for known_hosts).
  update_clients  the new key signs: every certificate this cluster issues or presents from
                  now on (user certificates, the proxy's and the nodes' host certificates,
                  TLS certificates, the admin identity, the openssh CA's per-connection
                  certificates for nodes) is the new key's; the old key is still trusted.
                  Tether node agents renew theirs, and learn the openssh CA's keys, by
                  heartbeat.
  update_servers  OpenSSH servers registered by hand get new host certificates now
                  (tetherctl auth sign).
  standby         the old key is dropped: what it signed stops verifying here and at Tether
                  node agents; OpenSSH servers registered by hand keep trusting it until
                  they get auth export's output again (do it now: after a compromise, the
                  old key opens every sshd that still lists it).
  rollback        back to the old key (from init, update_clients or update_servers);
                  standby then drops the new one.

Across a trust: the other cluster's copies of the user and host CAs (a root's user and
host CAs at its leaves, a leaf's host CA at its roots) follow each phase over the tunnel,
a root's within seconds, a leaf's within a minute (tetherctl get cas on the other side
shows the keys it has); wait for them before update_clients. The TLS CAs authenticate the
tunnel itself and do not cross it: a TLS CA another cluster keeps cannot start a rotation
(remove the trust first and make it again after). The openssh CA is the cluster's own (never sent in the handshake): rotate it
with --type=openssh, giving OpenSSH nodes the output of auth export --type=openssh (both
keys) after init and before update_clients.

The phase is saved in the cluster's data directory, so a restart resumes the rotation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch typ {
			case "user", "host", "tls", "openssh":
			default:
				return fmt.Errorf("--type=%q: give --type=user, host, tls or openssh", typ)
			}
			switch phase {
			case "init", "update_clients", "update_servers", "standby", "rollback":
			default:
				return fmt.Errorf("--phase=%q: give --phase=init, update_clients, update_servers, standby or rollback", phase)
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			st, err := c.RotateCA(ctxOf(cmd), typ, phase)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "The %s CA is in phase %s.\n", st.Type, st.Phase)
			for i, fp := range st.Fingerprints {
				role := "signing"
				if i > 0 {
					role = "also trusted"
				}
				fmt.Fprintf(w, "  %-13s %s\n", role, fp)
			}
			return nil
		},
	}
	conn.register(cmd)
	cmd.Flags().StringVar(&typ, "type", "", "the CA to rotate: user, host, tls or openssh")
	cmd.Flags().StringVar(&phase, "phase", "", "the phase to move to: init, update_clients, update_servers, standby or rollback")
	return cmd
}
