// Package ciphersuite implements the cryptographic operations of the seven
// MLS cipher suites of RFC 9420 §17.1 (0x0001–0x0007) and two post-quantum
// suites of draft-ietf-mls-pq-ciphersuites-06 under private-use codepoints
// (pq.go) on vetted primitives: Go's crypto/hpke (including the X-Wing and
// ML-KEM KEMs of draft-ietf-hpke-pq), crypto/ecdh, crypto/ecdsa,
// crypto/ed25519, crypto/hkdf and AEADs, and github.com/cloudflare/circl for
// X448, Ed448 and ML-DSA-87.
//
// It provides the labelled MLS operations of RFC 9420 §5 and §8 —
// ExpandWithLabel, DeriveSecret, DeriveTreeSecret, RefHash, SignWithLabel /
// VerifyWithLabel, EncryptWithLabel / DecryptWithLabel — plus HPKE key
// derivation (RFC 9180 DeriveKeyPair), the AEAD, MAC and the HPKE exporter
// used by external commits.
//
// Key encodings are those of the MLS wire format and test vectors: HPKE keys
// as RFC 9180 SerializePublicKey / SerializePrivateKey; Ed25519 and Ed448
// private keys as seeds; ECDSA private keys as big-endian scalars (shorter
// values are left-padded), public keys as uncompressed points, signatures
// DER-encoded; ML-DSA private keys as the 32-byte FIPS 204 seed, public keys
// and signatures in their FIPS 204 encodings.
package ciphersuite

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"github.com/cloudflare/circl/sign/ed448"
	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
	"golang.org/x/crypto/chacha20poly1305"
)

// ID is an MLS cipher suite identifier (RFC 9420 §17.1).
type ID uint16

// The cipher suites of RFC 9420 §17.1.
const (
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519        ID = 0x0001
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256             ID = 0x0002
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519 ID = 0x0003
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448            ID = 0x0004
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521             ID = 0x0005
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448     ID = 0x0006
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384             ID = 0x0007
)

// Errors returned by this package; callers distinguish them with errors.Is.
var (
	// ErrUnsupported means an unknown or unsupported cipher suite.
	ErrUnsupported = errors.New("mls ciphersuite: unsupported cipher suite")
	// ErrInvalidSignature means a signature did not verify.
	ErrInvalidSignature = errors.New("mls ciphersuite: invalid signature")
	// ErrDecrypt means an AEAD or HPKE ciphertext did not open.
	ErrDecrypt = errors.New("mls ciphersuite: decryption failed")
	// ErrInvalidKey means a key had the wrong length or was not on the curve.
	ErrInvalidKey = errors.New("mls ciphersuite: invalid key")
)

type sigScheme int

const (
	sigEd25519 sigScheme = iota
	sigEd448
	sigECDSA
	sigMLDSA87
)

// Suite is one MLS cipher suite. Suites are immutable and safe for
// concurrent use; get them with Lookup.
type Suite struct {
	id      ID
	newHash func() hash.Hash
	nh      int
	nk, nn  int
	aeadID  uint16 // HPKE AEAD id: 1 AES-128-GCM, 2 AES-256-GCM, 3 ChaCha20Poly1305
	kem     hpke.KEM
	kdf     hpke.KDF
	x448    bool           // KEM is DHKEM(X448), from circl
	nsk     int            // serialized HPKE private key length
	sig     sigScheme      // signature scheme
	curve   elliptic.Curve // for sigECDSA
}

var suites = map[ID]*Suite{}

func init() {
	add := func(s *Suite) { suites[s.id] = s }
	add(&Suite{id: 1, newHash: sha256.New, nh: 32, nk: 16, nn: 12, aeadID: 1, kem: hpke.DHKEM(ecdh.X25519()), kdf: hpke.HKDFSHA256(), nsk: 32, sig: sigEd25519})
	add(&Suite{id: 2, newHash: sha256.New, nh: 32, nk: 16, nn: 12, aeadID: 1, kem: hpke.DHKEM(ecdh.P256()), kdf: hpke.HKDFSHA256(), nsk: 32, sig: sigECDSA, curve: elliptic.P256()})
	add(&Suite{id: 3, newHash: sha256.New, nh: 32, nk: 32, nn: 12, aeadID: 3, kem: hpke.DHKEM(ecdh.X25519()), kdf: hpke.HKDFSHA256(), nsk: 32, sig: sigEd25519})
	add(&Suite{id: 4, newHash: sha512.New, nh: 64, nk: 32, nn: 12, aeadID: 2, x448: true, kdf: hpke.HKDFSHA512(), nsk: 56, sig: sigEd448})
	add(&Suite{id: 5, newHash: sha512.New, nh: 64, nk: 32, nn: 12, aeadID: 2, kem: hpke.DHKEM(ecdh.P521()), kdf: hpke.HKDFSHA512(), nsk: 66, sig: sigECDSA, curve: elliptic.P521()})
	add(&Suite{id: 6, newHash: sha512.New, nh: 64, nk: 32, nn: 12, aeadID: 3, x448: true, kdf: hpke.HKDFSHA512(), nsk: 56, sig: sigEd448})
	add(&Suite{id: 7, newHash: sha512.New384, nh: 48, nk: 32, nn: 12, aeadID: 2, kem: hpke.DHKEM(ecdh.P384()), kdf: hpke.HKDFSHA384(), nsk: 48, sig: sigECDSA, curve: elliptic.P384()})
	addPostQuantum(add)
}

// Lookup returns the suite with the given id, or ErrUnsupported.
func Lookup(id ID) (*Suite, error) {
	s, ok := suites[id]
	if !ok {
		return nil, fmt.Errorf("%w: %#04x", ErrUnsupported, uint16(id))
	}
	return s, nil
}

// Supported returns the ids of all supported suites in ascending order: the
// seven of RFC 9420 and the post-quantum suites of pq.go.
func Supported() []ID {
	return []ID{1, 2, 3, 4, 5, 6, 7, MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519, MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87}
}

// ID returns the suite's identifier.
func (s *Suite) ID() ID { return s.id }

// Nh returns the output length of the suite's hash and KDF.
func (s *Suite) Nh() int { return s.nh }

// Nk returns the AEAD key length.
func (s *Suite) Nk() int { return s.nk }

// Nn returns the AEAD nonce length.
func (s *Suite) Nn() int { return s.nn }

// Hash returns the suite hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.newHash()
	h.Write(data)
	return h.Sum(nil)
}

// MAC returns HMAC with the suite hash (RFC 9420 §5.1).
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// Extract is HKDF-Extract(salt, ikm) with the suite hash: HMAC(salt, ikm)
// (RFC 5869 §2.2; an empty salt acts as Nh zero bytes under HMAC).
func (s *Suite) Extract(salt, ikm []byte) []byte { return s.MAC(salt, ikm) }

// Expand is HKDF-Expand(prk, info, length) with the suite hash.
func (s *Suite) Expand(prk, info []byte, length int) ([]byte, error) {
	out, err := hkdf.Expand(s.newHash, prk, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("mls ciphersuite: HKDF-Expand: %w", err)
	}
	return out, nil
}

// labelPrefix is prepended to every MLS label (RFC 9420 §5.1.2, §5.1.3, §8).
const labelPrefix = "MLS 1.0 "

// appendOpaque appends opaque<V>: a QUIC-style variable-length length, then b
// (RFC 9420 §2.1.2). Lengths here are small and known to fit.
func appendOpaque(out, b []byte) []byte {
	return append(appendVarint(out, len(b)), b...)
}

// appendLabel appends opaque label<V> = "MLS 1.0 " + label without building
// the concatenation.
func appendLabel(out []byte, label string) []byte {
	out = appendVarint(out, len(labelPrefix)+len(label))
	out = append(out, labelPrefix...)
	return append(out, label...)
}

// appendVarint appends a QUIC-style variable-length integer n < 2^30
// (RFC 9420 §2.1.2).
func appendVarint(out []byte, length int) []byte {
	n := uint64(length)
	switch {
	case n <= 0x3f:
		out = append(out, byte(n))
	case n <= 0x3fff:
		out = binary.BigEndian.AppendUint16(out, uint16(n)|0x4000)
	default:
		out = binary.BigEndian.AppendUint32(out, uint32(n)|0x80000000)
	}
	return out
}

// ExpandWithLabel is RFC 9420 §8: HKDF-Expand(secret, KDFLabel, length) with
// KDFLabel{uint16 length; opaque label<V> = "MLS 1.0 " + label; opaque context<V>}.
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("mls ciphersuite: ExpandWithLabel length %d", length)
	}
	return s.expandWithLabel(secret, label, context, nil, length)
}

// expandWithLabel builds KDFLabel in one allocation; its context is context
// followed by suffix (so DeriveTreeSecret needs no separate buffer).
func (s *Suite) expandWithLabel(secret []byte, label string, context, suffix []byte, length int) ([]byte, error) {
	ctxLen := len(context) + len(suffix)
	info := make([]byte, 0, 2+4+len(labelPrefix)+len(label)+4+ctxLen)
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = appendLabel(info, label)
	info = appendVarint(info, ctxLen)
	info = append(info, context...)
	info = append(info, suffix...)
	return s.Expand(secret, info, length)
}

// DeriveSecret is ExpandWithLabel(secret, label, "", Nh) (RFC 9420 §8).
func (s *Suite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	return s.ExpandWithLabel(secret, label, nil, s.nh)
}

// DeriveTreeSecret is ExpandWithLabel(secret, label, uint32 generation,
// length) (RFC 9420 §9).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("mls ciphersuite: DeriveTreeSecret length %d", length)
	}
	var g [4]byte
	binary.BigEndian.PutUint32(g[:], generation)
	return s.expandWithLabel(secret, label, nil, g[:], length)
}

// RefHash is Hash(RefHashInput{opaque label<V>; opaque value<V>}) with the
// label used as given (RFC 9420 §5.2: the caller passes e.g. "MLS 1.0 KeyPackage Reference").
func (s *Suite) RefHash(label string, value []byte) []byte {
	in := appendOpaque(nil, []byte(label))
	in = appendOpaque(in, value)
	return s.Hash(in)
}

func (s *Suite) aead(key []byte) (cipher.AEAD, error) {
	if len(key) != s.nk {
		return nil, fmt.Errorf("%w: AEAD key of %d bytes, want %d", ErrInvalidKey, len(key), s.nk)
	}
	if s.aeadID == 3 {
		return chacha20poly1305.New(key)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return cipher.NewGCM(b)
}

// Seal encrypts plaintext with the suite AEAD.
func (s *Suite) Seal(key, nonce, aad, plaintext []byte) ([]byte, error) {
	a, err := s.aead(key)
	if err != nil {
		return nil, err
	}
	if len(nonce) != a.NonceSize() {
		return nil, fmt.Errorf("%w: nonce of %d bytes", ErrInvalidKey, len(nonce))
	}
	return a.Seal(nil, nonce, plaintext, aad), nil
}

// Open decrypts ciphertext with the suite AEAD; it returns ErrDecrypt if the
// ciphertext is not authentic.
func (s *Suite) Open(key, nonce, aad, ciphertext []byte) ([]byte, error) {
	a, err := s.aead(key)
	if err != nil {
		return nil, err
	}
	if len(nonce) != a.NonceSize() {
		return nil, fmt.Errorf("%w: nonce of %d bytes", ErrInvalidKey, len(nonce))
	}
	pt, err := a.Open(nil, nonce, ciphertext, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// signContent encodes SignContent{opaque label<V>; opaque content<V>}
// (RFC 9420 §5.1.2).
func signContent(label string, content []byte) []byte {
	out := make([]byte, 0, 4+len(labelPrefix)+len(label)+4+len(content))
	out = appendLabel(out, label)
	return appendOpaque(out, content)
}

// encryptContext encodes EncryptContext{opaque label<V>; opaque context<V>}
// (RFC 9420 §5.1.3).
func encryptContext(label string, context []byte) []byte {
	out := make([]byte, 0, 4+len(labelPrefix)+len(label)+4+len(context))
	out = appendLabel(out, label)
	return appendOpaque(out, context)
}

// GenerateSignatureKeyPair returns a fresh signature key pair in the MLS
// encodings.
func (s *Suite) GenerateSignatureKeyPair() (priv, pub []byte, err error) {
	switch s.sig {
	case sigEd25519:
		pk, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		return sk.Seed(), pk, nil
	case sigEd448:
		pk, sk, err := ed448.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		return sk.Seed(), pk, nil
	case sigMLDSA87:
		return generateMLDSA87()
	}
	k, err := ecdsa.GenerateKey(s.curve, rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if pub, err = k.PublicKey.Bytes(); err != nil {
		return nil, nil, err
	}
	if priv, err = k.Bytes(); err != nil {
		return nil, nil, err
	}
	return priv, pub, nil
}

// SignWithLabel signs SignContent{"MLS 1.0 " + label, content} with priv
// (RFC 9420 §5.1.2). For repeated signing, NewSigner avoids re-parsing the key.
func (s *Suite) SignWithLabel(priv []byte, label string, content []byte) ([]byte, error) {
	sg, err := s.NewSigner(priv)
	if err != nil {
		return nil, err
	}
	return sg.SignWithLabel(label, content)
}

// VerifyWithLabel verifies a SignWithLabel signature; it returns
// ErrInvalidSignature if the signature or key is invalid.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	msg := signContent(label, content)
	switch s.sig {
	case sigEd25519:
		if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, msg, signature) {
			return ErrInvalidSignature
		}
		return nil
	case sigEd448:
		if len(pub) != ed448.PublicKeySize || !ed448.Verify(ed448.PublicKey(pub), msg, signature, "") {
			return ErrInvalidSignature
		}
		return nil
	case sigMLDSA87:
		return verifyMLDSA87(pub, msg, signature)
	}
	pk, err := ecdsa.ParseUncompressedPublicKey(s.curve, pub)
	if err != nil {
		return ErrInvalidSignature
	}
	if !ecdsa.VerifyASN1(pk, s.Hash(msg), signature) {
		return ErrInvalidSignature
	}
	return nil
}

// Signer is a parsed signature private key, reusable for many signatures.
type Signer struct {
	suite *Suite
	ed    ed25519.PrivateKey
	ed448 ed448.PrivateKey
	ec    *ecdsa.PrivateKey
	mldsa *mldsa87.PrivateKey
	pub   []byte
}

// NewSigner parses a signature private key in the MLS encoding.
func (s *Suite) NewSigner(priv []byte) (*Signer, error) {
	switch s.sig {
	case sigEd25519:
		if len(priv) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: Ed25519 seed of %d bytes", ErrInvalidKey, len(priv))
		}
		k := ed25519.NewKeyFromSeed(priv)
		return &Signer{suite: s, ed: k, pub: k.Public().(ed25519.PublicKey)}, nil
	case sigEd448:
		if len(priv) != ed448.SeedSize {
			return nil, fmt.Errorf("%w: Ed448 seed of %d bytes", ErrInvalidKey, len(priv))
		}
		k := ed448.NewKeyFromSeed(priv)
		return &Signer{suite: s, ed448: k, pub: k.Public().(ed448.PublicKey)}, nil
	case sigMLDSA87:
		return newMLDSA87Signer(s, priv)
	}
	size := (s.curve.Params().BitSize + 7) / 8
	if len(priv) > size || len(priv) == 0 {
		return nil, fmt.Errorf("%w: ECDSA scalar of %d bytes", ErrInvalidKey, len(priv))
	}
	padded := make([]byte, size)
	copy(padded[size-len(priv):], priv)
	k, err := ecdsa.ParseRawPrivateKey(s.curve, padded)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	pub, err := k.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return &Signer{suite: s, ec: k, pub: pub}, nil
}

// Public returns the signature public key in the MLS encoding.
func (g *Signer) Public() []byte { return g.pub }

// SignWithLabel signs SignContent{"MLS 1.0 " + label, content} (RFC 9420 §5.1.2).
func (g *Signer) SignWithLabel(label string, content []byte) ([]byte, error) {
	msg := signContent(label, content)
	switch {
	case g.ed != nil:
		return ed25519.Sign(g.ed, msg), nil
	case g.ed448 != nil:
		return ed448.Sign(g.ed448, msg, ""), nil
	case g.mldsa != nil:
		return signMLDSA87(g.mldsa, msg)
	}
	return ecdsa.SignASN1(rand.Reader, g.ec, g.suite.Hash(msg))
}
