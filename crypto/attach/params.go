package attach

import (
	"crypto/rand"
)

// Scheme names this package's ciphertext format in attachment references.
const Scheme = "aes256gcm-chunked-v1"

// Sizes of the format.
const (
	// KeySize is the size of a file key: AES-256.
	KeySize = 32
	// NoncePrefixSize is the size of the random prefix of every chunk nonce.
	NoncePrefixSize = 4
	// ChunkSize is the number of plaintext bytes in every chunk but the last.
	ChunkSize = 64 << 10
	// TagSize is the AES-GCM tag appended to every chunk.
	TagSize = 16
	// HashSize is the size of the SHA-256 of the ciphertext.
	HashSize = 32
)

// Params are the secret parameters of one encrypted file: a fresh random
// key and nonce prefix. They travel only inside MLS-encrypted messages and
// are never reused for a second file.
type Params struct {
	Key         [KeySize]byte
	NoncePrefix [NoncePrefixSize]byte
}

// NewParams returns fresh random parameters from crypto/rand.
func NewParams() Params {
	var p Params
	rand.Read(p.Key[:]) // crypto/rand.Read never fails (Go 1.24+)
	rand.Read(p.NoncePrefix[:])
	return p
}
