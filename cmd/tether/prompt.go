package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// prompter asks questions on the terminal, or, when stdin is not one, reads one line per
// question from stdin (so that scripts and tests can pipe the answers).
type prompter struct {
	in   io.Reader
	out  io.Writer
	fd   int
	tty  bool
	read *bufio.Reader
}

func newPrompter(in io.Reader, out io.Writer) *prompter {
	p := &prompter{in: in, out: out}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.fd, p.tty = int(f.Fd()), true
	} else {
		p.read = bufio.NewReader(in)
	}
	return p
}

// ask prints question and returns the answer; secret answers are not echoed on a terminal.
func (p *prompter) ask(question string, secret bool) (string, error) {
	fmt.Fprint(p.out, question)
	if p.tty && secret {
		b, err := term.ReadPassword(p.fd)
		fmt.Fprintln(p.out)
		if err != nil {
			return "", errors.New("could not read from the terminal")
		}
		return string(b), nil
	}
	if p.read == nil {
		p.read = bufio.NewReader(p.in)
	}
	line, err := p.read.ReadString('\n')
	if !p.tty {
		fmt.Fprintln(p.out)
	}
	if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
		return "", fmt.Errorf("no answer to %q on stdin (pipe one line per question)", strings.TrimSpace(strings.TrimSuffix(question, ":")))
	}
	return strings.TrimRight(line, "\r\n"), nil
}
