package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // RFC 6238 TOTP is defined over HMAC-SHA-1; authenticator apps expect it
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP parameters (RFC 6238 with the defaults every authenticator app uses).
const (
	TOTPPeriod    = 30 * time.Second
	TOTPDigits    = 6
	totpSecretLen = 20 // 160 bits, RFC 4226's recommendation
	// totpSkew is how many periods before and after the current one a code is accepted.
	totpSkew = 1
)

var totpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newTOTPSecret() ([]byte, error) {
	s := make([]byte, totpSecretLen)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("generating a TOTP secret: %w", err)
	}
	return s, nil
}

// EncodeTOTPSecret is the secret as authenticator apps take it: base32 without padding.
func EncodeTOTPSecret(secret []byte) string { return totpEncoding.EncodeToString(secret) }

// DecodeTOTPSecret reads a secret EncodeTOTPSecret wrote (spaces and case ignored).
func DecodeTOTPSecret(s string) ([]byte, error) {
	s = strings.ToUpper(strings.ReplaceAll(s, " ", ""))
	return totpEncoding.DecodeString(strings.TrimRight(s, "="))
}

// TOTPCode is the code for secret at t (RFC 6238: HMAC-SHA-1, 30-second steps, 6 digits).
func TOTPCode(secret []byte, t time.Time) string {
	return hotp(secret, uint64(t.Unix())/uint64(TOTPPeriod/time.Second))
}

func hotp(secret []byte, counter uint64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

// checkTOTP returns the time step whose code is code, within totpSkew steps of now and
// after lastUsed (the last step a code was accepted for: a code is good once; -1 when none
// was). Every candidate is compared, in constant time.
func checkTOTP(secret []byte, code string, now time.Time, lastUsed int64) (int64, bool) {
	if len(code) != TOTPDigits {
		return 0, false
	}
	cur := now.Unix() / int64(TOTPPeriod/time.Second)
	found, step := false, int64(0)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		if s < 0 {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(hotp(secret, uint64(s))), []byte(code)) == 1 && s > lastUsed && !found {
			found, step = true, s
		}
	}
	return step, found
}

// TOTPURI is the otpauth:// URI authenticator apps read (as a QR code or pasted).
func TOTPURI(issuer, user string, secret []byte) string {
	label := url.PathEscape(issuer + ":" + user)
	q := url.Values{}
	q.Set("secret", EncodeTOTPSecret(secret))
	q.Set("issuer", issuer)
	q.Set("algorithm", "SHA1")
	q.Set("digits", fmt.Sprint(TOTPDigits))
	q.Set("period", fmt.Sprint(int(TOTPPeriod/time.Second)))
	return "otpauth://totp/" + label + "?" + q.Encode()
}
