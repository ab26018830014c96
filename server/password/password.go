// Package password hashes and verifies account passwords with argon2id
// (RFC 9106) using the OWASP Password Storage Cheat Sheet parameters, stored
// in the PHC string format so parameters can be raised later without
// invalidating existing hashes.
package password

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters of argon2id. Defaults follow OWASP: m=19 MiB, t=2, p=1.
type Parameters struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// Default is the OWASP-recommended minimum configuration.
var Default = Parameters{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

// ErrMismatch means the password does not match the hash.
var ErrMismatch = errors.New("password: mismatch")

// ErrMalformedHash means the stored hash could not be parsed.
var ErrMalformedHash = errors.New("password: malformed hash")

const (
	saltLen = 16
	keyLen  = 32
	// maxPasswordLen bounds the work an attacker can cause per attempt.
	maxPasswordLen = 1024
)

// Hash returns the PHC-format argon2id hash of pw with a random salt.
func Hash(pw string, p Parameters) (string, error) {
	if len(pw) > maxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", maxPasswordLen)
	}
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// Verify checks pw against a hash made by Hash, in constant time with
// respect to the key. It returns ErrMismatch when they differ.
func Verify(pw, hash string) error {
	if len(pw) > maxPasswordLen {
		return ErrMismatch
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return ErrMalformedHash
	}
	var p Parameters
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return ErrMalformedHash
	}
	// Refuse parameters no hash of ours has, so a tampered row cannot make
	// login allocate gigabytes.
	if p.MemoryKiB == 0 || p.MemoryKiB > 1<<20 || p.Time == 0 || p.Time > 10 || p.Threads == 0 {
		return ErrMalformedHash
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return ErrMalformedHash
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) < 16 || len(want) > 64 {
		return ErrMalformedHash
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}
