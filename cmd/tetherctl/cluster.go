package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tetherproject/tether/gateway/adminclient"
	"github.com/tetherproject/tether/gateway/identity"
	"github.com/tetherproject/tether/resource"
)

// connFlags say how the online commands reach a running cluster: the admin identity in the
// cluster's data directory, or an identity file and an auth server address.
type connFlags struct {
	dataDir      string
	identityFile string
	authServer   string
}

func (f *connFlags) register(cmd *cobra.Command) {
	f.registerOn(cmd.PersistentFlags(), "")
}

// registerOn adds the flags to fs, each usage text followed by note.
func (f *connFlags) registerOn(fs *pflag.FlagSet, note string) {
	def := os.Getenv("TETHER_DATA_DIR")
	if def == "" {
		def = "/var/lib/tether"
	}
	fs.StringVar(&f.dataDir, "data-dir", def, "the cluster's data directory, for its admin identity ("+identity.FileName+")"+note)
	fs.StringVarP(&f.identityFile, "identity", "i", "", "admin identity file (instead of --data-dir)"+note)
	fs.StringVar(&f.authServer, "auth-server", "", "auth server web API host:port (default: from the identity file)"+note)
}

func (f *connFlags) client() (*adminclient.Client, error) {
	path := f.identityFile
	if path == "" {
		path = filepath.Join(f.dataDir, identity.FileName)
	}
	id, err := identity.Load(path)
	if err != nil {
		return nil, fmt.Errorf("%w (run tetherctl on the cluster's host with --data-dir, or give -i identity-file --auth-server host:port)", err)
	}
	return adminclient.New(id, f.authServer)
}

// kindAliases maps what users type to canonical kinds.
var kindAliases = map[string]string{
	"role": resource.KindRole, "roles": resource.KindRole,
	"user": resource.KindUser, "users": resource.KindUser,
	"trusted_cluster": resource.KindTrustedCluster, "trusted_clusters": resource.KindTrustedCluster, "tc": resource.KindTrustedCluster,
	"rc": resource.KindRemoteCluster, "remote_cluster": resource.KindRemoteCluster, "remote_clusters": resource.KindRemoteCluster,
	"cas": resource.KindCertAuthority, "ca": resource.KindCertAuthority, "cert_authority": resource.KindCertAuthority, "cert_authorities": resource.KindCertAuthority,
	"token": resource.KindToken, "tokens": resource.KindToken,
	"node": resource.KindNode, "nodes": resource.KindNode,
	"lock": resource.KindLock, "locks": resource.KindLock,
	"oidc": resource.KindOIDC,
}

// parseRef splits KIND[/NAME] and canonicalises the kind.
func parseRef(ref string, needName bool) (kind, name string, err error) {
	k, n, _ := strings.Cut(ref, "/")
	kind, ok := kindAliases[strings.ToLower(k)]
	if !ok {
		return "", "", fmt.Errorf("unknown resource kind %q: use role, user, trusted_cluster, rc, cas, token, node, lock or oidc", k)
	}
	if needName && n == "" {
		return "", "", fmt.Errorf("%q: want KIND/NAME, for example rc/leaf.example.com", ref)
	}
	return kind, n, nil
}

// parseLabels reads k=v,k2=v2.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

func ctxOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}
