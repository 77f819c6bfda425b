package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tetherproject/tether/gateway/web"
	"github.com/tetherproject/tether/internal/buildinfo"
)

func versionCommand() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print tetherctl's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Get()
			switch format {
			case "text":
				_, err := fmt.Fprintln(cmd.OutOrStdout(), "tetherctl", info.String())
				return err
			case "json":
				return writeJSON(cmd.OutOrStdout(), info)
			}
			return fmt.Errorf("--format %q: use text or json", format)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func statusCommand() *cobra.Command {
	var (
		conn   connFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster: name, CAs and their rotation phase, storage, remote clusters, the TLS CA file leaves pin",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format %q: use text or json", format)
			}
			c, err := conn.client()
			if err != nil {
				return err
			}
			st, err := c.Status(ctxOf(cmd))
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	conn.register(cmd)
	cmd.Flags().StringVar(&format, "format", "text", "output format: text or json")
	return cmd
}

func printStatus(w io.Writer, st web.StatusResponse) {
	rows := [][]string{
		{"Cluster", st.ClusterName},
		{"Version", st.Server.String()},
		{"Storage", st.Storage},
		{"Remote clusters", fmt.Sprintf("%d online, %d offline", st.RemoteClusters.Online, st.RemoteClusters.Offline)},
	}
	for _, ca := range st.CAs {
		name := ca.Type + " CA"
		if ca.Type == "tls" {
			name = "TLS CA"
		}
		for i, fp := range ca.Fingerprints {
			label, phase := name, "("+ca.Phase+")"
			if i > 0 {
				label, phase = "", "(also trusted during the rotation)"
			}
			rows = append(rows, []string{label, fp + " " + phase})
		}
	}
	switch len(st.TLSCAFiles) {
	case 0:
		rows = append(rows, []string{"TLS CA file", "(not found on the cluster's machine; save tls_ca_pem from --format json)"})
	default:
		rows = append(rows, []string{"TLS CA file", strings.Join(st.TLSCAFiles, ", ") + " (on the cluster's machine: leaves pin it with root_ca_file)"})
	}
	for _, t := range st.Tunnels {
		line := t.State
		if t.Transport != "" {
			line += " over " + t.Transport
		}
		switch {
		case t.SessionsOverSSH:
			line += " (+ssh for sessions)"
		case t.SessionsError != "":
			line += " (sessions over quic too: the ssh tunnel for sessions failed: " + t.SessionsError + ")"
		case t.SessionsIdle:
			line += " (ssh for sessions: idle)"
		}
		if !t.Since.IsZero() {
			line += " since " + t.Since.UTC().Format(time.RFC3339)
		}
		if t.Endpoint != "" {
			line += " to " + t.Endpoint
		}
		if t.Replica != "" && t.Replica != t.Endpoint {
			line += " (replica " + t.Replica + ")"
		}
		if t.LastError != "" {
			line += ": " + tunnelError(t.Root, t.LastError)
		}
		rows = append(rows, []string{"Tunnel", t.Root + ": " + line})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%-16s %s\n", r[0], r[1])
	}
}

// tunnelError is a tunnel's last error as an admin reads it. The root refusing this
// cluster's certificate (a TLS bad_certificate alert from the root, over QUIC or TCP) is
// said as what it means and what ends it, without QUIC's and TLS's framing: after rm rc
// on the root, the leaf's connects read 'QUIC (handshake rejected): reading the hello
// answer: CRYPTO_ERROR 0x12a (remote): tls: bad certificate'. The JSON status and
// tetherd's log keep the error as it was.
func tunnelError(root, lastErr string) string {
	if strings.Contains(lastErr, "tls: bad certificate") && (strings.Contains(lastErr, "(remote)") || strings.Contains(lastErr, "remote error")) {
		return fmt.Sprintf("%s refused this cluster's certificate: it no longer trusts this cluster (rm rc on the root, or this cluster's CAs changed); "+
			"to join again, tetherctl rm trusted_cluster/%s here and create it again with a new token from the root", root, root)
	}
	return lastErr
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
