package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	osuser "os/user"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/term"
)

func sshCommand() *cobra.Command {
	var (
		cluster                string
		port                   int
		forceTTY, noTTY, agent bool
		noCommand              bool
		local, remote, dynamic []string
		loginFlag              string
		options                []string
		noStdin, quiet         bool
		stdioDest              string
		runSSH                 func(cmd *cobra.Command, args []string) error
	)
	cmd := &cobra.Command{
		Use:   "ssh [--cluster=X] [-l login] [-p port] [-t|-T] [-n] [-q] [-A] [-N] [-W host:port] [-o Key=Value] [-L spec] [-R spec] [-D spec] [login@]node|[login@]key=value[,key=value] [command...]",
		Short: "Run a shell or a command on a node, through the proxy, as a login your roles allow; forward ports and your agent as the node's cluster allows",
		Long: `Run a shell or a command on a node, through the proxy, as a login your roles allow;
forward ports and your agent as the node's cluster allows.

The destination is [login@]node, or, as with tsh, [login@]key=value[,key=value...]: the
nodes of the cluster (--cluster, else the selected one) that have every label and that you
may reach, as tether ls key=value lists them. One such node is an ordinary session; on
several the command runs on each (at most 8 at once, no terminal, no input), every line of
output under the node's name, and the exit status is the first failing node's.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &sshFailure{errors.New("tether ssh needs a destination: tether ssh [flags] [login@]node [command...] (tether ls lists the nodes you may reach)")}
			}
			return nil
		},
		// The remote command's status is tether's; every failure of tether ssh itself is
		// status 255, as with OpenSSH's ssh.
		RunE: func(cmd *cobra.Command, args []string) error {
			err := runSSH(cmd, args)
			var ee *exitError
			if err == nil || errors.As(err, &ee) {
				return err
			}
			return &sshFailure{err}
		},
	}
	runSSH = func(cmd *cobra.Command, args []string) error {
		// -q: tether's own notes (an option ignored, agent forwarding refused) are not
		// written; errors still are.
		var notes io.Writer = os.Stderr
		if quiet {
			notes = io.Discard
		}
		var opts sshOptions
		if err := opts.apply(options, notes); err != nil {
			return err
		}
		if noStdin {
			// -n, as OpenSSH: the command reads /dev/null, so a loop reading a list on
			// stdin keeps it; no terminal unless -t.
			devNull, err := os.Open(os.DevNull)
			if err != nil {
				return err
			}
			defer devNull.Close()
			os.Stdin = devNull
		}
		agent, forceTTY, noTTY = agent || opts.agent, forceTTY || opts.tty, noTTY || opts.noTTY
		var specs []forwardSpec
		for _, f := range []struct {
			kind string
			args []string
		}{{"L", local}, {"R", remote}, {"D", dynamic}} {
			for _, a := range f.args {
				spec, err := parseForward(f.kind, a)
				if err != nil {
					return err
				}
				specs = append(specs, spec)
			}
		}
		if stdioDest != "" {
			if err := checkStdioForward(stdioDest, sshCommandLine(args) != "", len(specs) > 0 || noCommand || forceTTY); err != nil {
				return err
			}
		}
		if noCommand && sshCommandLine(args) != "" {
			return errors.New("-N runs no command: leave out the command, or -N")
		}
		p, err := loadProfile()
		if err != nil {
			return err
		}
		login, node, err := sshDestination(args[0], loginFlag)
		if err != nil {
			return err
		}
		if want, ok, err := labelSelector(node); ok {
			if err != nil {
				return err
			}
			one, c, err := sshByLabels(cmd, p, login, cluster, node, want, sshCommandLine(args), port, forceTTY || agent || noCommand || len(specs) > 0)
			if one == "" || err != nil {
				return err
			}
			node, cluster = one, c
		} else {
			node = userNodeName(node)
			if cluster == "" {
				if cluster, err = findNodeCluster(cmd, p, node); err != nil {
					return err
				}
			}
			node = nodeOfName(node, cluster)
		}
		client, closeAll, err := dialNode(ctxOf(cmd), p, login, node, port, cluster)
		if err != nil {
			// The proxy's refusal (printed already) comes as its exitError.
			return &sshFailure{err}
		}
		defer closeAll()
		if agent {
			if err := forwardAgent(client); err != nil {
				return err
			}
		}
		if stdioDest != "" {
			return stdioForward(client, stdioDest, cluster)
		}
		// The forwards live as long as the connection (closeAll ends them).
		fw := &forwarder{client: client, stderr: os.Stderr, cluster: cluster}
		if err := fw.start(ctxOf(cmd), specs); err != nil {
			return err
		}
		if noCommand {
			ctx, stop := signal.NotifyContext(ctxOf(cmd), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			// Like ssh -N: forward until interrupted or the connection ends.
			ended := make(chan error, 1)
			go func() { ended <- client.Wait() }()
			select {
			case <-ctx.Done():
				return nil
			case <-ended:
				return fmt.Errorf("the connection to %s in cluster %s ended (the certificate expired, access was revoked, or the node went away)", node, cluster)
			}
		}
		return runSession(client, sshCommandLine(args), forceTTY, noTTY, agent, login, node, cluster, notes)
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &sshFailure{err} })
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&cluster, "cluster", "", "the cluster of the node (default: the one cluster where the node is found)")
	cmd.Flags().StringVarP(&loginFlag, "login", "l", "", "the login on the node (as OpenSSH's -l: it wins over login@; default: login@, else your local user name)")
	cmd.Flags().IntVarP(&port, "port", "p", 22, "the node's SSH port (the node's registered address decides; kept for OpenSSH compatibility)")
	cmd.Flags().BoolVarP(&forceTTY, "tty", "t", false, "allocate a terminal even for a command")
	cmd.Flags().BoolVarP(&noTTY, "no-tty", "T", false, "never allocate a terminal")
	cmd.Flags().BoolVarP(&agent, "forward-agent", "A", false, "forward your SSH agent (SSH_AUTH_SOCK) to the node, if the node's cluster allows it (role option forward_agent)")
	cmd.Flags().BoolVarP(&noCommand, "no-command", "N", false, "run no command: only forward ports")
	cmd.Flags().StringVarP(&stdioDest, "stdio-forward", "W", "", "host:port: join stdin and stdout to host:port as the node reaches it, as OpenSSH's -W (role option port_forwarding); no command, no other forwards")
	cmd.Flags().BoolVarP(&noStdin, "no-stdin", "n", false, "give the command no input (/dev/null), as OpenSSH's -n: for loops that read a list on stdin")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "write none of tether's notes (options ignored, agent forwarding refused); errors still")
	cmd.Flags().StringArrayVarP(&options, "option", "o", nil, "an OpenSSH option, Key=Value, as tsh ssh -o: ForwardAgent=yes is -A, RequestTTY=yes|force|no is -t or -T; host key, identity, port and proxy options are ignored (the profile decides them)")
	cmd.Flags().StringArrayVarP(&local, "local", "L", nil, "[bind_address:]port:host:hostport: connections to the local port reach host:hostport from the node (role option port_forwarding)")
	cmd.Flags().StringArrayVarP(&remote, "remote", "R", nil, "[bind_address:]port:host:hostport: connections to the port on the node (loopback) reach host:hostport from here")
	cmd.Flags().StringArrayVarP(&dynamic, "dynamic", "D", nil, "[bind_address:]port: a local SOCKS4/5 proxy whose connections leave from the node")
	return cmd
}

// sshByLabels is tether ssh login@key=value[,key=value...] (tsh's form) in the cluster
// given (--cluster, else the selected one, as tether ls): the nodes the user may reach
// that have every label. One such node is returned, with its cluster, for an ordinary
// session (a shell, a terminal, forwarding); on several the command runs on each (each
// line of output under the node's name) and node is "" with the result; oneOnly (a
// terminal, agent or port forwarding asked for) refuses several.
func sshByLabels(cmd *cobra.Command, p *Profile, login, cluster, selector string, want map[string]string, command string, port int, oneOnly bool) (node, inCluster string, err error) {
	if cluster == "" {
		cluster = p.defaultCluster()
	}
	all, err := fetchNodes(ctxOf(cmd), p, cluster)
	if err != nil {
		return "", "", err
	}
	matched := nodesWithLabels(all, want)
	list := fmt.Sprintf("tether ls --cluster=%s %s lists them", cluster, strings.ReplaceAll(selector, ",", " "))
	switch {
	case len(matched) == 0:
		return "", "", fmt.Errorf("no node you may reach in cluster %s has the labels %s (tether ls --cluster=%s lists the nodes you may reach)", cluster, selector, cluster)
	case len(matched) == 1:
		return matched[0].Name, cluster, nil
	case oneOnly:
		return "", "", fmt.Errorf("%d nodes in cluster %s have the labels %s: -t, -A, -N, -L, -R and -D need one node (%s)", len(matched), cluster, selector, list)
	case command == "":
		return "", "", fmt.Errorf("%d nodes in cluster %s have the labels %s: give a command to run on each; a shell needs one node (%s)", len(matched), cluster, selector, list)
	}
	names := make([]string, len(matched))
	for i, n := range matched {
		names[i] = n.Name
	}
	return "", cluster, runOnNodes(ctxOf(cmd), p, login, cluster, command, names, port, os.Stdout, os.Stderr)
}

// sshCommandLine is the command of tether ssh's arguments (the destination first): the
// words after it, joined with spaces as OpenSSH joins them, without a "--" right after the
// destination, which ends the options as in ssh host -- ls -la (flags stop at the
// destination, so cobra leaves that "--" in the arguments).
func sshCommandLine(args []string) string {
	words := args[1:]
	if len(words) > 0 && words[0] == "--" {
		words = words[1:]
	}
	return strings.Join(words, " ")
}

// runSession runs command (a shell when empty) on client, with a terminal when asked or
// when stdin is one and no command is given, and returns the remote exit status as an
// exitError.
func runSession(client *ssh.Client, command string, forceTTY, noTTY, agentFwd bool, login, node, cluster string, notes io.Writer) error {
	sess, err := client.NewSession()
	if err != nil {
		var oe *ssh.OpenChannelError
		if errors.As(err, &oe) {
			fmt.Fprintln(os.Stderr, "ERROR:", openFailure(err))
			return &exitError{Code: 255}
		}
		return fmt.Errorf("node %s in cluster %s refused the session; try again", node, cluster)
	}
	defer sess.Close()
	if agentFwd {
		if err := agent.RequestAgentForwarding(sess); err != nil {
			fmt.Fprintf(notes, "tether: agent forwarding was refused by cluster %s (its roles need options.forward_agent: true); continuing without it\n", cluster)
		}
	}
	sess.Stdin, sess.Stdout, sess.Stderr = os.Stdin, os.Stdout, os.Stderr
	stdin := int(os.Stdin.Fd())
	tty := !noTTY && (forceTTY || (command == "" && term.IsTerminal(stdin)))
	if tty && term.IsTerminal(stdin) {
		w, h, err := term.GetSize(stdin)
		if err != nil {
			w, h = 80, 24
		}
		termName := os.Getenv("TERM")
		if termName == "" {
			termName = "xterm"
		}
		if err := sess.RequestPty(termName, h, w, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
			return fmt.Errorf("node %s refused a terminal", node)
		}
		old, err := term.MakeRaw(stdin)
		if err == nil {
			defer term.Restore(stdin, old)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				if w, h, err := term.GetSize(stdin); err == nil {
					_ = sess.WindowChange(h, w)
				}
			}
		}()
	} else if tty {
		if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
			return fmt.Errorf("node %s refused a terminal", node)
		}
	}
	// Signals tether receives go to the remote command (in a terminal, ^C is a byte).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	go func() {
		for s := range sigs {
			_ = sess.Signal(sshSignal(s))
		}
	}()
	if command == "" {
		err = sess.Shell()
	} else {
		err = sess.Start(command)
	}
	if err != nil {
		return fmt.Errorf("node %s refused to run the command", node)
	}
	err = sess.Wait()
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		if ee.Signal() != "" {
			fmt.Fprintf(os.Stderr, "the remote command was killed by signal %s\n", ee.Signal())
			return &exitError{Code: 255}
		}
		return &exitError{Code: ee.ExitStatus()}
	case errors.As(err, &missing):
		fmt.Fprintln(os.Stderr, "the session ended without an exit status (the connection was closed: the certificate expired, or access was revoked)")
		return &exitError{Code: 255}
	case errors.Is(err, io.EOF):
		return &exitError{Code: 255}
	}
	return fmt.Errorf("the session on %s ended: %v", node, err)
}

func sshSignal(s os.Signal) ssh.Signal {
	switch s {
	case syscall.SIGINT:
		return ssh.SIGINT
	case syscall.SIGHUP:
		return ssh.SIGHUP
	case syscall.SIGQUIT:
		return ssh.SIGQUIT
	}
	return ssh.SIGTERM
}

// sshDestination reads [login@]node as OpenSSH does: -l wins over login@, and without
// either the login is the local user's name (tsh and ssh alike).
func sshDestination(arg, loginFlag string) (login, node string, err error) {
	node = arg
	if l, n, ok := strings.Cut(arg, "@"); ok {
		login, node = l, n
	}
	if loginFlag != "" {
		login = loginFlag
	}
	if login == "" && !strings.Contains(arg, "@") {
		if u, err := osuser.Current(); err == nil {
			login = u.Username
		}
	}
	if login == "" || node == "" {
		return "", "", fmt.Errorf("%q: give login@node or -l login (tether ls lists the nodes and your logins)", arg)
	}
	return login, node, nil
}

// checkStdioForward refuses what -W cannot go with, as OpenSSH does: a command, other
// forwards, -N or a terminal; dest must be host:port.
func checkStdioForward(dest string, command, others bool) error {
	if _, port, err := net.SplitHostPort(dest); err != nil || port == "" {
		return fmt.Errorf("-W %q: give host:port", dest)
	}
	if command {
		return errors.New("-W joins stdin and stdout to host:port and runs no command: leave out the command, or -W")
	}
	if others {
		return errors.New("-W goes alone: leave out -L, -R, -D, -N and -t")
	}
	return nil
}

// stdioForward joins stdin and stdout to dest as the node reaches it (tether ssh -W), until
// the far end closes. The cluster decides the channel as any -L forward; its refusal is
// the error.
func stdioForward(client *ssh.Client, dest, cluster string) error {
	conn, err := client.Dial("tcp", dest)
	if err != nil {
		return fmt.Errorf("-W %s refused by cluster %s: %s", dest, cluster, openFailure(err))
	}
	defer conn.Close()
	go func() {
		_, _ = io.Copy(conn, os.Stdin)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, err = io.Copy(os.Stdout, conn)
	return err
}
