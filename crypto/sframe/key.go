package sframe

import (
	"crypto/cipher"
	"crypto/hkdf"
	"encoding/binary"
	"fmt"
)

// Key is the sframe_key and sframe_salt derived for one KID from a base key
// (RFC 9605 §4.4.2). It seals and opens frames for that KID; it does not
// track counters (a Context does). A Key is safe for concurrent use.
type Key struct {
	suite CipherSuite
	kid   uint64
	aead  cipher.AEAD
	salt  [12]byte
}

// DeriveKey derives the key and salt for kid from baseKey (§4.4.2):
//
//	sframe_secret = HKDF-Extract("", base_key)
//	sframe_key    = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret key "  + KID + cipher_suite, Nk)
//	sframe_salt   = HKDF-Expand(sframe_secret, "SFrame 1.0 Secret salt " + KID + cipher_suite, Nn)
//
// with KID as an 8-byte and cipher_suite as a 2-byte big-endian integer.
func DeriveKey(suite CipherSuite, kid uint64, baseKey []byte) (*Key, error) {
	p, err := suite.params()
	if err != nil {
		return nil, err
	}
	if len(baseKey) == 0 {
		return nil, fmt.Errorf("sframe: empty base key for KID %d", kid)
	}
	secret, err := hkdf.Extract(p.hash, baseKey, nil)
	if err != nil {
		return nil, fmt.Errorf("sframe: derive secret: %w", err)
	}
	key, err := hkdf.Expand(p.hash, secret, string(label("SFrame 1.0 Secret key ", kid, suite)), p.nk)
	if err != nil {
		return nil, fmt.Errorf("sframe: derive key: %w", err)
	}
	salt, err := hkdf.Expand(p.hash, secret, string(label("SFrame 1.0 Secret salt ", kid, suite)), p.nn)
	if err != nil {
		return nil, fmt.Errorf("sframe: derive salt: %w", err)
	}
	aead, err := newAEAD(p, key)
	if err != nil {
		return nil, err
	}
	k := &Key{suite: suite, kid: kid, aead: aead}
	copy(k.salt[:], salt)
	return k, nil
}

func label(prefix string, kid uint64, suite CipherSuite) []byte {
	b := append([]byte(prefix), make([]byte, 10)...)
	binary.BigEndian.PutUint64(b[len(prefix):], kid)
	binary.BigEndian.PutUint16(b[len(prefix)+8:], uint16(suite))
	return b
}

// KID returns the key id the key was derived for.
func (k *Key) KID() uint64 { return k.kid }

// Suite returns the key's cipher suite.
func (k *Key) Suite() CipherSuite { return k.suite }

// nonce is sframe_salt XOR CTR, CTR encoded big-endian in Nn bytes (§4.4.3).
func (k *Key) nonce(ctr uint64) [12]byte {
	n := k.salt
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], ctr)
	for i := range c {
		n[4+i] ^= c[i]
	}
	return n
}

// Seal encrypts plaintext as the frame with counter ctr and appends the
// SFrame ciphertext (header, encrypted frame, tag) to dst (§4.4.3). The
// header and metadata are authenticated. The caller must never seal two
// frames with the same key and counter; Context.Encrypt guarantees that.
func (k *Key) Seal(dst []byte, ctr uint64, metadata, plaintext []byte) []byte {
	start := len(dst)
	dst = Header{KID: k.kid, CTR: ctr}.Append(dst)
	hdrEnd := len(dst)
	nonce := k.nonce(ctr)
	if len(metadata) == 0 {
		return k.aead.Seal(dst, nonce[:], plaintext, dst[start:hdrEnd])
	}
	aad := append(append(make([]byte, 0, hdrEnd-start+len(metadata)), dst[start:hdrEnd]...), metadata...)
	return k.aead.Seal(dst, nonce[:], plaintext, aad)
}

// Open authenticates and decrypts the SFrame ciphertext ct and appends the
// plaintext to dst (§4.4.4). It returns the parsed header too. It returns
// ErrMalformed for an unparsable ciphertext, ErrUnknownKID if the header
// names another KID, and ErrAuthentication if authentication fails.
func (k *Key) Open(dst, metadata, ct []byte) ([]byte, Header, error) {
	h, n, err := ParseHeader(ct)
	if err != nil {
		return nil, Header{}, err
	}
	if h.KID != k.kid {
		return nil, h, fmt.Errorf("%w: ciphertext has KID %d, key is for %d", ErrUnknownKID, h.KID, k.kid)
	}
	out, err := k.open(dst, metadata, ct, h, n)
	return out, h, err
}

func (k *Key) open(dst, metadata, ct []byte, h Header, hdrLen int) ([]byte, error) {
	if len(ct)-hdrLen < k.aead.Overhead() {
		return nil, fmt.Errorf("%w: shorter than the tag", ErrMalformed)
	}
	aad := ct[:hdrLen]
	if len(metadata) > 0 {
		aad = append(append(make([]byte, 0, hdrLen+len(metadata)), ct[:hdrLen]...), metadata...)
	}
	nonce := k.nonce(h.CTR)
	out, err := k.aead.Open(dst, nonce[:], ct[hdrLen:], aad)
	if err != nil {
		return nil, ErrAuthentication
	}
	return out, nil
}
