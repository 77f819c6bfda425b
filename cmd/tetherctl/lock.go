package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/tetherproject/tether/resource"
)

// lockCommand is tctl lock: it creates a lock resource from flags, as tetherctl create
// would from YAML, with a generated name.
func lockCommand() *cobra.Command {
	var (
		conn         connFlags
		target       resource.LockTarget
		message      string
		ttl, expires string
		lockName     string
	)
	cmd := &cobra.Command{
		Use:   "lock (--user=NAME | --role=ROLE | --login=LOGIN | --node=NODE | --remote-cluster=NAME)... [--message=TEXT] [--ttl=DURATION | --expires=RFC3339]",
		Short: "Deny a user, role, login, node or remote cluster everything on this cluster until the lock expires or is removed (tetherctl rm lock/NAME)",
		Long: "Create a lock, as tctl lock does: every decision on this cluster that the target matches is denied " +
			"with the message, until --ttl or --expires (default: until tetherctl rm lock/NAME). Several targets " +
			"must all match. Live sessions whose enforcement point is this cluster end at its next check; " +
			"a lock on a root also reaches its leaves within seconds (as NAME@ROOT in their tetherctl get locks) " +
			"and ends the root's users' sessions there.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if target.IsEmpty() {
				return errors.New("name what to lock: --user, --role, --login, --node or --remote-cluster")
			}
			l := &resource.Lock{Kind: resource.KindLock, Version: "v2", Spec: resource.LockSpec{Target: target, Message: message}}
			switch {
			case ttl != "" && expires != "":
				return errors.New("give --ttl or --expires, not both")
			case ttl != "":
				d, err := time.ParseDuration(ttl)
				if err != nil || d <= 0 {
					return fmt.Errorf("--ttl %q: give a positive duration such as 30m or 10h", ttl)
				}
				end := time.Now().Add(d).UTC().Truncate(time.Second)
				l.Spec.Expires = &end
			case expires != "":
				end, err := time.Parse(time.RFC3339, expires)
				if err != nil {
					return fmt.Errorf("--expires %q: give a time such as 2026-12-31T23:00:00Z (RFC 3339)", expires)
				}
				if !end.After(time.Now()) {
					return fmt.Errorf("--expires %s is in the past", expires)
				}
				end = end.UTC()
				l.Spec.Expires = &end
			}
			if lockName == "" {
				b := make([]byte, 8)
				if _, err := rand.Read(b); err != nil {
					return err
				}
				lockName = "lock-" + hex.EncodeToString(b)
			}
			l.Metadata.Name = lockName
			if err := l.Validate(); err != nil {
				return err
			}
			data, err := yaml.Marshal(l)
			if err != nil {
				return err
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			msgs, err := c.Create(ctxOf(cmd), data, "tetherctl lock", false)
			for _, m := range msgs {
				fmt.Fprintln(cmd.OutOrStdout(), m)
			}
			return err
		},
	}
	conn.register(cmd)
	f := cmd.Flags()
	f.StringVar(&target.User, "user", "", "lock this user (a local user, or a root's user on a leaf)")
	f.StringVar(&target.Role, "role", "", "lock everyone holding this role")
	f.StringVar(&target.Login, "login", "", "lock this login (Unix user) on every node")
	f.StringVar(&target.Node, "node", "", "lock this node")
	f.StringVar(&target.RemoteCluster, "remote-cluster", "", "lock this remote (leaf) cluster")
	f.StringVar(&message, "message", "", "what the locked-out user is told")
	f.StringVar(&ttl, "ttl", "", "how long the lock lasts, for example 10h (default: until removed)")
	f.StringVar(&expires, "expires", "", "when the lock ends, RFC 3339 (default: until removed)")
	f.StringVar(&lockName, "name", "", "the lock's name (default: lock- and 16 random hex digits)")
	return cmd
}
