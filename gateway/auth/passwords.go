package auth

import (
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

func argon2id(pw, salt []byte, passes, memory uint32, threads uint8, keyLen uint32) []byte {
	hashSlots <- struct{}{}
	defer func() { <-hashSlots }()
	return argon2.IDKey(pw, salt, passes, memory, threads, keyLen)
}

// hashPassword hashes pw with argon2id and a fresh random salt.
func hashPassword(pw string) (passwordHash, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return passwordHash{}, fmt.Errorf("hashing a password: %w", err)
	}
	return passwordHash{
		Alg: "argon2id", Time: argonTime, Memory: argonMemory, Threads: argonThreads, Salt: salt,
		Hash: argon2id([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen),
	}, nil
}

// matches reports whether pw is the password h was made from, in constant time. A hash
// with parameters out of bounds (a damaged record) matches nothing.
func (h passwordHash) matches(pw string) bool {
	if h.Alg != "argon2id" || h.Time == 0 || h.Time > 16 || h.Memory < 8*1024 || h.Memory > 1024*1024 ||
		h.Threads == 0 || len(h.Salt) < 8 || len(h.Hash) < 16 || len(h.Hash) > 64 || len(pw) > MaxPasswordLength {
		return false
	}
	got := argon2id([]byte(pw), h.Salt, h.Time, h.Memory, h.Threads, uint32(len(h.Hash)))
	return subtle.ConstantTimeCompare(got, h.Hash) == 1
}

// dummyHash is checked against when the user does not exist or has no password yet, so
// that those failures take as long as a wrong password.
var dummyHash = passwordHash{
	Alg: "argon2id", Time: argonTime, Memory: argonMemory, Threads: argonThreads,
	Salt: make([]byte, argonSaltLen), Hash: make([]byte, argonKeyLen),
}
