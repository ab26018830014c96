// Package sframe implements Secure Frame (SFrame, RFC 9605): end-to-end
// encryption of media frames that selective forwarding units relay without
// being able to read them.
//
// A Key is the per-KID key and salt derived from a base key (§4.4.2); it
// seals and opens single frames (§4.4.3, §4.4.4). A Context is a key store
// keyed by KID that keeps each send key's counter (so a (KID, CTR) pair is
// never used twice, §9.1) and a replay window per receive key. MLSContext
// derives the base keys of every epoch of an MLS group with the MLS exporter
// and assigns KIDs from the epoch and the sender's leaf index (§5.2).
//
// All five cipher suites of §4.5 are supported: the AES-CTR with HMAC-SHA256
// suites with 80, 64 and 32-bit tags (§4.5.1), AES-128-GCM with SHA-256 and
// AES-256-GCM with SHA-512. Only the Go standard library's AES, GCM, HMAC
// and HKDF are used.
package sframe

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
)

// CipherSuite identifies an SFrame cipher suite (RFC 9605 §8.1).
type CipherSuite uint16

// The cipher suites of RFC 9605 §4.5.
const (
	AES128CTRHMACSHA256_80 CipherSuite = 0x0001
	AES128CTRHMACSHA256_64 CipherSuite = 0x0002
	AES128CTRHMACSHA256_32 CipherSuite = 0x0003
	AES128GCMSHA256_128    CipherSuite = 0x0004
	AES256GCMSHA512_128    CipherSuite = 0x0005
)

// Errors callers distinguish. Decryption failures other than an unknown KID
// or a replay are all reported as ErrAuthentication, so that a receiver
// treats every invalid ciphertext alike (§4.4.4).
var (
	// ErrUnsupportedSuite is returned for a cipher suite this package does not know.
	ErrUnsupportedSuite = errors.New("sframe: unsupported cipher suite")
	// ErrMalformed is returned for a ciphertext whose header or length is invalid.
	ErrMalformed = errors.New("sframe: malformed ciphertext")
	// ErrUnknownKID is returned when no key is held for a ciphertext's KID;
	// the caller may buffer the frame and retry once the key arrives (§4.4.4).
	ErrUnknownKID = errors.New("sframe: no key for KID")
	// ErrAuthentication is returned when a ciphertext fails authentication.
	ErrAuthentication = errors.New("sframe: authentication failed")
	// ErrReplay is returned for a ciphertext whose counter was already
	// accepted, or is too old for the replay window.
	ErrReplay = errors.New("sframe: replayed or too old counter")
	// ErrCounterExhausted is returned when a send key has used every counter value.
	ErrCounterExhausted = errors.New("sframe: counter exhausted; a new key is needed")
	// ErrKeyUsage is returned when a KID is added both as a send and a
	// receive key (§4.4.1: a base key is used for one of the two, never both).
	ErrKeyUsage = errors.New("sframe: key is registered for the other direction")
)

// params are the constants of a cipher suite (RFC 9605 §4.5, Table 2).
type params struct {
	nh, nka, nk, nn, nt int
	hash                func() hash.Hash
	ctr                 bool // the AES-CTR + HMAC construction of §4.5.1
}

func (s CipherSuite) params() (params, error) {
	switch s {
	case AES128CTRHMACSHA256_80:
		return params{nh: 32, nka: 16, nk: 48, nn: 12, nt: 10, hash: sha256.New, ctr: true}, nil
	case AES128CTRHMACSHA256_64:
		return params{nh: 32, nka: 16, nk: 48, nn: 12, nt: 8, hash: sha256.New, ctr: true}, nil
	case AES128CTRHMACSHA256_32:
		return params{nh: 32, nka: 16, nk: 48, nn: 12, nt: 4, hash: sha256.New, ctr: true}, nil
	case AES128GCMSHA256_128:
		return params{nh: 32, nk: 16, nn: 12, nt: 16, hash: sha256.New}, nil
	case AES256GCMSHA512_128:
		return params{nh: 64, nk: 32, nn: 12, nt: 16, hash: sha512.New}, nil
	}
	return params{}, fmt.Errorf("%w: 0x%04x", ErrUnsupportedSuite, uint16(s))
}

// KeySize returns the suite's AEAD key size Nk in bytes, which is also the
// length of the base key an MLS exporter produces for it (§5.2).
// It returns 0 for an unknown suite.
func (s CipherSuite) KeySize() int { p, _ := s.params(); return p.nk }

// Overhead returns the authentication tag size Nt in bytes, which every
// ciphertext carries beyond its header and plaintext. It returns 0 for an
// unknown suite.
func (s CipherSuite) Overhead() int { p, _ := s.params(); return p.nt }

// String returns the suite's name in RFC 9605.
func (s CipherSuite) String() string {
	switch s {
	case AES128CTRHMACSHA256_80:
		return "AES_128_CTR_HMAC_SHA256_80"
	case AES128CTRHMACSHA256_64:
		return "AES_128_CTR_HMAC_SHA256_64"
	case AES128CTRHMACSHA256_32:
		return "AES_128_CTR_HMAC_SHA256_32"
	case AES128GCMSHA256_128:
		return "AES_128_GCM_SHA256_128"
	case AES256GCMSHA512_128:
		return "AES_256_GCM_SHA512_128"
	}
	return fmt.Sprintf("CipherSuite(0x%04x)", uint16(s))
}

// Suites returns every supported cipher suite.
func Suites() []CipherSuite {
	return []CipherSuite{AES128CTRHMACSHA256_80, AES128CTRHMACSHA256_64, AES128CTRHMACSHA256_32, AES128GCMSHA256_128, AES256GCMSHA512_128}
}
