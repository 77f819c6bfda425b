package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"runtime"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password rules and the argon2id parameters new hashes are made with (RFC 9106's second
// recommended option, scaled to OWASP's minimum of 19 MiB with two passes). The
// parameters are stored with each hash, so raising them later keeps old hashes readable.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 1024

	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// passwordHash is an argon2id hash with everything needed to check a password against it.
type passwordHash struct {
	Alg     string `json:"alg"` // "argon2id"
	Time    uint32 `json:"time"`
	Memory  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
	Salt    []byte `json:"salt"`
	Hash    []byte `json:"hash"`
}

// checkPasswordRules refuses a password too short or too long to be one. The message
// never echoes the password.
func checkPasswordRules(pw string) error {
	switch n := utf8.RuneCountInString(pw); {
	case !utf8.ValidString(pw):
		return errorf(ErrBadRequest, "the password is not valid UTF-8")
	case n < MinPasswordLength:
		return errorf(ErrBadRequest, "the password must be at least %d characters, this one has %d", MinPasswordLength, n)
	case len(pw) > MaxPasswordLength:
		return errorf(ErrBadRequest, "the password must be at most %d bytes", MaxPasswordLength)
	}
	return nil
}

// hashSlots bounds the argon2id computations running at once, each taking its Memory
// (19 MiB): the failure limits bound one address's sign-in attempts, not those of many
// addresses together. They are CPU-bound, so more at once than processors would finish
// none sooner; the rest wait their turn.
var hashSlots = make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))

// A wait for a slot ends with ctx: a sign-in whose caller has gone is not checked for
// nobody, in the place of those still waiting.
func argon2id(ctx context.Context, pw, salt []byte, passes, memory uint32, threads uint8, keyLen uint32) ([]byte, error) {
	select {
	case hashSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to check a password: %w", ctx.Err())
	}
	defer func() { <-hashSlots }()
	return argon2.IDKey(pw, salt, passes, memory, threads, keyLen), nil
}

// hashPassword hashes pw with argon2id and a fresh random salt.
func hashPassword(ctx context.Context, pw string) (passwordHash, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return passwordHash{}, fmt.Errorf("hashing a password: %w", err)
	}
	hash, err := argon2id(ctx, []byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	if err != nil {
		return passwordHash{}, err
	}
	return passwordHash{
		Alg: "argon2id", Time: argonTime, Memory: argonMemory, Threads: argonThreads, Salt: salt, Hash: hash,
	}, nil
}

// matches reports whether pw is the password h was made from, in constant time. A hash
// with parameters out of bounds (a damaged record) matches nothing. The error says the
// check was not made (ctx ended while it waited its turn).
func (h passwordHash) matches(ctx context.Context, pw string) (bool, error) {
	if h.Alg != "argon2id" || h.Time == 0 || h.Time > 16 || h.Memory < 8*1024 || h.Memory > 1024*1024 ||
		h.Threads == 0 || len(h.Salt) < 8 || len(h.Hash) < 16 || len(h.Hash) > 64 || len(pw) > MaxPasswordLength {
		return false, nil
	}
	got, err := argon2id(ctx, []byte(pw), h.Salt, h.Time, h.Memory, h.Threads, uint32(len(h.Hash)))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, h.Hash) == 1, nil
}

// dummyHash is checked against when the user does not exist or has no password yet, so
// that those failures take as long as a wrong password.
var dummyHash = passwordHash{
	Alg: "argon2id", Time: argonTime, Memory: argonMemory, Threads: argonThreads,
	Salt: make([]byte, argonSaltLen), Hash: make([]byte, argonKeyLen),
}
