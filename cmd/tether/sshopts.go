package main

import (
	"fmt"
	"io"
	"strings"
)

// sshOptions is what tether ssh -o Key=Value (OpenSSH's options, as tsh ssh -o takes them)
// changes: ForwardAgent is -A, RequestTTY yes/force is -t and no is -T.
type sshOptions struct {
	agent, tty, noTTY bool
}

// sshIgnoredOptions are OpenSSH options tether ssh takes and ignores, by lower-case name:
// the profile and the cluster decide them (host keys are always checked against the
// cluster's CAs; the key, certificate, user, ports and route are the profile's), or they
// tune a client tether is not. Saying so beats failing a command line written for ssh.
var sshIgnoredOptions = map[string]string{}

func init() {
	for _, k := range []string{
		"StrictHostKeyChecking", "UserKnownHostsFile", "GlobalKnownHostsFile", "CheckHostIP", "HashKnownHosts",
		"UpdateHostKeys", "VisualHostKey", "HostKeyAlias", "HostKeyAlgorithms", "HostName", "Port", "User",
		"IdentityFile", "IdentitiesOnly", "IdentityAgent", "CertificateFile", "AddKeysToAgent",
		"PasswordAuthentication", "PubkeyAuthentication", "KbdInteractiveAuthentication", "PreferredAuthentications",
		"ProxyCommand", "ProxyJump", "ServerAliveInterval", "ServerAliveCountMax", "ConnectTimeout",
		"ConnectionAttempts", "TCPKeepAlive", "BatchMode", "LogLevel", "Compression", "ControlMaster",
		"ControlPath", "ControlPersist", "Ciphers", "MACs", "KexAlgorithms", "SendEnv", "SetEnv",
		"ExitOnForwardFailure", "ClearAllForwardings", "ForwardX11", "ForwardX11Trusted", "EscapeChar",
	} {
		sshIgnoredOptions[strings.ToLower(k)] = k
	}
}

// apply reads each -o option, "Key=Value" or "Key Value" (names in any case, as OpenSSH),
// and says on warn which it ignores. A malformed or unknown option is an error, as with ssh.
func (o *sshOptions) apply(opts []string, warn io.Writer) error {
	for _, opt := range opts {
		key, value, ok := strings.Cut(strings.TrimSpace(opt), "=")
		if !ok {
			key, value, ok = strings.Cut(strings.TrimSpace(opt), " ")
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok || key == "" || value == "" {
			return fmt.Errorf("-o %q: give an OpenSSH option as Key=Value (for example -o ForwardAgent=yes)", opt)
		}
		switch k := strings.ToLower(key); k {
		case "forwardagent":
			switch strings.ToLower(value) {
			case "yes":
				o.agent = true
			case "no":
			default:
				return fmt.Errorf("-o %s: ForwardAgent takes yes or no", opt)
			}
		case "requesttty":
			switch strings.ToLower(value) {
			case "yes", "force":
				o.tty = true
			case "no":
				o.noTTY = true
			case "auto":
			default:
				return fmt.Errorf("-o %s: RequestTTY takes yes, no, force or auto", opt)
			}
		default:
			name, known := sshIgnoredOptions[k]
			if !known {
				return fmt.Errorf("-o %s: unknown or unsupported option %q (tether ssh acts on ForwardAgent and RequestTTY)", opt, key)
			}
			fmt.Fprintf(warn, "tether ssh: ignoring -o %s (the profile and the cluster decide it; host keys are always checked against the cluster's CAs)\n", name)
		}
	}
	return nil
}
