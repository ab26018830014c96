package ciphersuite

import (
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"

	"github.com/cloudflare/circl/sign/mldsa/mldsa87"
)

// Post-quantum cipher suites of draft-ietf-mls-pq-ciphersuites-06 §3.1,
// under private-use codepoints (RFC 9420 §17.1: 0xF000–0xFFFF) until IANA
// assigns the draft's TBD values. Groups using them interoperate only with
// implementations that map the same codepoints.
const (
	// MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 is the draft's TBD1:
	// HPKE KEM 0x647a (MLKEM768-X25519, "X-Wing", draft-ietf-hpke-pq), KDF
	// 0x0001 (HKDF-SHA256), AEAD 0x0001 (AES-128-GCM), hash SHA-256,
	// signature ed25519. Post-quantum confidentiality, classical
	// authenticity.
	MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 ID = 0xF001
	// MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87 is the draft's TBD11: HPKE
	// KEM 0x0042 (ML-KEM-1024), KDF 0x0002 (HKDF-SHA384), AEAD 0x0002
	// (AES-256-GCM), hash SHA-384, signature mldsa87 (FIPS 204 ML-DSA-87,
	// pure mode, empty context, as draft-ietf-tls-mldsa). Post-quantum
	// confidentiality and authenticity.
	MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87 ID = 0xF002
)

// addPostQuantum registers the post-quantum suites. Their KEMs are Go's
// crypto/hpke implementations of draft-ietf-hpke-pq, which also define the
// encodings MLS uses: an HPKE public key (init_key, encryption_key,
// external_pub) is SerializePublicKey — for X-Wing the ML-KEM-768
// encapsulation key followed by the X25519 point (1216 bytes), for
// ML-KEM-1024 the encapsulation key (1568 bytes); a private key is the
// seed (32 bytes for X-Wing, 64 for ML-KEM); DeriveKeyPair(ikm) expands ikm
// with SHAKE256 LabeledDerive into that seed, so RFC 9420's
// DeriveKeyPair(path_secret) and the external key pair work unchanged.
func addPostQuantum(add func(*Suite)) {
	add(&Suite{id: MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519, newHash: sha256.New, nh: 32, nk: 16, nn: 12, aeadID: 1,
		kem: hpke.MLKEM768X25519(), kdf: hpke.HKDFSHA256(), nsk: 32, sig: sigEd25519})
	add(&Suite{id: MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87, newHash: sha512.New384, nh: 48, nk: 32, nn: 12, aeadID: 2,
		kem: hpke.MLKEM1024(), kdf: hpke.HKDFSHA384(), nsk: 64, sig: sigMLDSA87})
}

// generateMLDSA87 returns a fresh ML-DSA-87 key pair as (seed, public key).
func generateMLDSA87() (priv, pub []byte, err error) {
	var seed [mldsa87.SeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, nil, err
	}
	pk, _ := mldsa87.NewKeyFromSeed(&seed)
	return seed[:], pk.Bytes(), nil
}

func newMLDSA87Signer(s *Suite, priv []byte) (*Signer, error) {
	if len(priv) != mldsa87.SeedSize {
		return nil, fmt.Errorf("%w: ML-DSA-87 seed of %d bytes", ErrInvalidKey, len(priv))
	}
	pk, sk := mldsa87.NewKeyFromSeed((*[mldsa87.SeedSize]byte)(priv))
	return &Signer{suite: s, mldsa: sk, pub: pk.Bytes()}, nil
}

// signMLDSA87 is hedged (randomized) ML-DSA-87 signing of msg with an empty
// context string (FIPS 204 Algorithm 2).
func signMLDSA87(sk *mldsa87.PrivateKey, msg []byte) ([]byte, error) {
	sig := make([]byte, mldsa87.SignatureSize)
	if err := mldsa87.SignTo(sk, msg, nil, true, sig); err != nil {
		return nil, fmt.Errorf("mls ciphersuite: ML-DSA-87 sign: %w", err)
	}
	return sig, nil
}

func verifyMLDSA87(pub, msg, sig []byte) error {
	if len(pub) != mldsa87.PublicKeySize || len(sig) != mldsa87.SignatureSize {
		return ErrInvalidSignature
	}
	var pk mldsa87.PublicKey
	if err := pk.UnmarshalBinary(pub); err != nil {
		return ErrInvalidSignature
	}
	if !mldsa87.Verify(&pk, msg, nil, sig) {
		return ErrInvalidSignature
	}
	return nil
}
