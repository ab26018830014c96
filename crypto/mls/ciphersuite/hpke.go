package ciphersuite

import (
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"fmt"

	"github.com/cloudflare/circl/dh/x448"
	chpke "github.com/cloudflare/circl/hpke"
)

// HPKE (RFC 9180) in base mode with the suite's KEM, KDF and AEAD. The
// standard library covers DHKEM(X25519, P-256, P-384, P-521); DHKEM(X448)
// comes from circl, with DeriveKeyPair implemented here because circl only
// accepts seeds of exactly 56 bytes while RFC 9180 allows any length.

// x448SuiteID is "KEM" || I2OSP(0x0021, 2) (RFC 9180 §4.1).
var x448SuiteID = []byte{'K', 'E', 'M', 0x00, 0x21}

func (s *Suite) circlSuite() chpke.Suite {
	aead := chpke.AEAD_AES256GCM
	if s.aeadID == 3 {
		aead = chpke.AEAD_ChaCha20Poly1305
	}
	return chpke.NewSuite(chpke.KEM_X448_HKDF_SHA512, chpke.KDF_HKDF_SHA512, aead)
}

func (s *Suite) hpkeAEAD() hpke.AEAD {
	switch s.aeadID {
	case 1:
		return hpke.AES128GCM()
	case 2:
		return hpke.AES256GCM()
	}
	return hpke.ChaCha20Poly1305()
}

// GenerateKEMKeyPair returns a fresh HPKE key pair (serialized).
func (s *Suite) GenerateKEMKeyPair() (priv, pub []byte, err error) {
	if s.x448 {
		ikm := make([]byte, 56)
		if _, err := rand.Read(ikm); err != nil {
			return nil, nil, err
		}
		return x448DeriveKeyPair(ikm)
	}
	k, err := s.kem.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	if priv, err = k.Bytes(); err != nil {
		return nil, nil, err
	}
	return priv, k.PublicKey().Bytes(), nil
}

// DeriveKEMKeyPair is RFC 9180 DeriveKeyPair(ikm) for the suite's KEM; ikm may
// have any length.
func (s *Suite) DeriveKEMKeyPair(ikm []byte) (priv, pub []byte, err error) {
	if s.x448 {
		return x448DeriveKeyPair(ikm)
	}
	k, err := s.kem.DeriveKeyPair(ikm)
	if err != nil {
		return nil, nil, fmt.Errorf("mls ciphersuite: DeriveKeyPair: %w", err)
	}
	if priv, err = k.Bytes(); err != nil {
		return nil, nil, err
	}
	return priv, k.PublicKey().Bytes(), nil
}

// x448DeriveKeyPair is RFC 9180 §7.1.3 DeriveKeyPair for DHKEM(X448,
// HKDF-SHA512): dkp_prk = LabeledExtract("", "dkp_prk", ikm);
// sk = LabeledExpand(dkp_prk, "sk", "", 56).
func x448DeriveKeyPair(ikm []byte) (priv, pub []byte, err error) {
	labeled := func(label string, b []byte) []byte {
		out := append([]byte("HPKE-v1"), x448SuiteID...)
		out = append(out, label...)
		return append(out, b...)
	}
	prk, err := hkdf.Extract(sha512.New, labeled("dkp_prk", ikm), nil)
	if err != nil {
		return nil, nil, err
	}
	info := binary.BigEndian.AppendUint16(nil, x448.Size)
	info = append(info, labeled("sk", nil)...)
	sk, err := hkdf.Expand(sha512.New, prk, string(info), x448.Size)
	if err != nil {
		return nil, nil, err
	}
	var k, p x448.Key
	copy(k[:], sk)
	x448.KeyGen(&p, &k)
	return sk, p[:], nil
}

// kemPrivate left-pads an ECDH private key to the scalar length (vectors
// may carry P-521 scalars shorter than 66 bytes).
func (s *Suite) kemPrivate(priv []byte) ([]byte, error) {
	if len(priv) == s.nsk {
		return priv, nil
	}
	if s.curve == nil || len(priv) == 0 || len(priv) > s.nsk {
		return nil, fmt.Errorf("%w: HPKE private key of %d bytes", ErrInvalidKey, len(priv))
	}
	out := make([]byte, s.nsk)
	copy(out[s.nsk-len(priv):], priv)
	return out, nil
}

// sealTo sets up an HPKE base-mode sender context to pub with info and
// either seals plaintext or, when exportLen > 0, exports exportLen bytes.
func (s *Suite) sealTo(pub, info, plaintext []byte, exporterContext []byte, exportLen int) (enc, ct, exported []byte, err error) {
	if s.x448 {
		pk, err := chpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPublicKey(pub)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		snd, err := s.circlSuite().NewSender(pk, info)
		if err != nil {
			return nil, nil, nil, err
		}
		enc, sealer, err := snd.Setup(rand.Reader)
		if err != nil {
			return nil, nil, nil, err
		}
		if exportLen > 0 {
			return enc, nil, sealer.Export(exporterContext, uint(exportLen)), nil
		}
		ct, err := sealer.Seal(plaintext, nil)
		return enc, ct, nil, err
	}
	pk, err := s.kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	enc, snd, err := hpke.NewSender(pk, s.kdf, s.hpkeAEAD(), info)
	if err != nil {
		return nil, nil, nil, err
	}
	if exportLen > 0 {
		exported, err = snd.Export(string(exporterContext), exportLen)
		return enc, nil, exported, err
	}
	ct, err = snd.Seal(nil, plaintext)
	return enc, ct, nil, err
}

// openFrom sets up an HPKE base-mode receiver context and opens or exports.
func (s *Suite) openFrom(priv, enc, info, ciphertext []byte, exporterContext []byte, exportLen int) ([]byte, error) {
	if s.x448 {
		sk, err := chpke.KEM_X448_HKDF_SHA512.Scheme().UnmarshalBinaryPrivateKey(priv)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
		rcv, err := s.circlSuite().NewReceiver(sk, info)
		if err != nil {
			return nil, err
		}
		op, err := rcv.Setup(enc)
		if err != nil {
			return nil, ErrDecrypt
		}
		if exportLen > 0 {
			return op.Export(exporterContext, uint(exportLen)), nil
		}
		pt, err := op.Open(ciphertext, nil)
		if err != nil {
			return nil, ErrDecrypt
		}
		return pt, nil
	}
	p, err := s.kemPrivate(priv)
	if err != nil {
		return nil, err
	}
	sk, err := s.kem.NewPrivateKey(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	r, err := hpke.NewRecipient(enc, sk, s.kdf, s.hpkeAEAD(), info)
	if err != nil {
		return nil, ErrDecrypt
	}
	if exportLen > 0 {
		return r.Export(string(exporterContext), exportLen)
	}
	pt, err := r.Open(nil, ciphertext)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// EncryptWithLabel is RFC 9420 §5.1.3: HPKE SealBase(pub, EncryptContext{
// "MLS 1.0 " + label, context}, "", plaintext).
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	kemOutput, ciphertext, _, err = s.sealTo(pub, encryptContext(label, context), plaintext, nil, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("mls ciphersuite: EncryptWithLabel: %w", err)
	}
	return kemOutput, ciphertext, nil
}

// DecryptWithLabel reverses EncryptWithLabel; it returns ErrDecrypt if the
// ciphertext does not open.
func (s *Suite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	pt, err := s.openFrom(priv, kemOutput, encryptContext(label, context), ciphertext, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("mls ciphersuite: DecryptWithLabel: %w", err)
	}
	return pt, nil
}

// ExportSender sets up an HPKE base-mode context to pub with info and
// exports length bytes for exporterContext (RFC 9420 §8.3 external init).
func (s *Suite) ExportSender(pub []byte, info, exporterContext []byte, length int) (kemOutput, secret []byte, err error) {
	if length <= 0 {
		return nil, nil, fmt.Errorf("mls ciphersuite: export length %d", length)
	}
	kemOutput, _, secret, err = s.sealTo(pub, info, nil, exporterContext, length)
	if err != nil {
		return nil, nil, fmt.Errorf("mls ciphersuite: HPKE export: %w", err)
	}
	return kemOutput, secret, nil
}

// ExportReceiver recomputes the ExportSender secret with the private key.
func (s *Suite) ExportReceiver(priv []byte, kemOutput, info, exporterContext []byte, length int) ([]byte, error) {
	if length <= 0 {
		return nil, fmt.Errorf("mls ciphersuite: export length %d", length)
	}
	out, err := s.openFrom(priv, kemOutput, info, nil, exporterContext, length)
	if err != nil {
		return nil, fmt.Errorf("mls ciphersuite: HPKE export: %w", err)
	}
	return out, nil
}
