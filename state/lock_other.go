//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package state

import (
	"errors"
	"os"
)

func lockDir(dir string) (*os.File, error) {
	return nil, errors.New("state: the embedded store needs flock, which this platform lacks")
}

func unlockDir(f *os.File) error { return nil }

func syncDir(dir string) error { return nil }
