package ciphersuite

import (
	"bytes"
	"errors"
	"testing"
)

// TestMalformedInputsFailCleanly feeds wrong-length and garbage keys,
// signatures and ciphertexts to every entry point that takes bytes from the
// wire: each must return an error (the documented sentinel where callers
// distinguish it) and never panic.
func TestMalformedInputsFailCleanly(t *testing.T) {
	garbage := [][]byte{nil, {}, {0}, bytes.Repeat([]byte{0xff}, 31), bytes.Repeat([]byte{0x04}, 133), bytes.Repeat([]byte{1}, 300)}
	forEachSuite(t, func(t *testing.T, s *Suite) {
		sigPriv, sigPub, err := s.GenerateSignatureKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.SignWithLabel(sigPriv, "L", []byte("c"))
		if err != nil {
			t.Fatal(err)
		}
		kemPriv, kemPub, err := s.GenerateKEMKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		enc, ct, err := s.EncryptWithLabel(kemPub, "L", nil, []byte("pt"))
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range garbage {
			if err := s.VerifyWithLabel(g, "L", []byte("c"), sig); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("VerifyWithLabel(pub %d bytes): %v, want ErrInvalidSignature", len(g), err)
			}
			if err := s.VerifyWithLabel(sigPub, "L", []byte("c"), g); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("VerifyWithLabel(signature %d bytes): %v, want ErrInvalidSignature", len(g), err)
			}
			// A short nonzero ECDSA scalar is a valid left-padded key; any
			// other length, and the zero scalar, must be refused.
			shortScalar := s.sig == sigECDSA && len(g) < len(sigPriv) && len(bytes.Trim(g, "\x00")) > 0
			if _, err := s.NewSigner(g); err == nil && !shortScalar && len(g) != len(sigPriv) {
				t.Errorf("NewSigner(%d bytes) accepted", len(g))
			} else if err != nil && !errors.Is(err, ErrInvalidKey) {
				t.Errorf("NewSigner(%d bytes): %v, want ErrInvalidKey", len(g), err)
			}
			if _, _, err := s.EncryptWithLabel(g, "L", nil, []byte("pt")); err == nil {
				t.Errorf("EncryptWithLabel(pub %d bytes) accepted", len(g))
			}
			if _, err := s.DecryptWithLabel(kemPriv, "L", nil, g, ct); err == nil {
				t.Errorf("DecryptWithLabel(kem output %d bytes) accepted", len(g))
			}
			if _, err := s.DecryptWithLabel(kemPriv, "L", nil, enc, g); !errors.Is(err, ErrDecrypt) {
				t.Errorf("DecryptWithLabel(ciphertext %d bytes): %v, want ErrDecrypt", len(g), err)
			}
			if _, err := s.ExportReceiver(kemPriv, g, nil, []byte("x"), 16); err == nil {
				t.Errorf("ExportReceiver(kem output %d bytes) accepted", len(g))
			}
			if _, err := s.Open(bytes.Repeat([]byte{1}, s.Nk()), bytes.Repeat([]byte{2}, s.Nn()), nil, g); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Open(%d bytes): %v, want ErrDecrypt", len(g), err)
			}
		}
		// A flipped bit anywhere in the ciphertext is detected.
		bad := bytes.Clone(ct)
		bad[len(bad)-1] ^= 1
		if _, err := s.DecryptWithLabel(kemPriv, "L", nil, enc, bad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("tampered ciphertext: %v, want ErrDecrypt", err)
		}
		if _, err := s.Seal(bytes.Repeat([]byte{1}, s.Nk()), []byte{1, 2}, nil, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Seal with a short nonce: %v, want ErrInvalidKey", err)
		}
		if _, err := s.ExpandWithLabel([]byte("k"), "L", nil, 1<<16); err == nil {
			t.Error("ExpandWithLabel of 65536 bytes accepted")
		}
	})
}

// TestShortP521ScalarsAreLeftPadded checks the vector pitfall: P-521
// private keys (signature and HPKE) may be written in 65 bytes when the top
// byte is zero, and must mean the same key as the 66-byte form.
func TestShortP521ScalarsAreLeftPadded(t *testing.T) {
	s, err := Lookup(MLS_256_DHKEMP521_AES256GCM_SHA512_P521)
	if err != nil {
		t.Fatal(err)
	}
	// A P-521 scalar is 521 bits, so its first byte is 0 about half the time.
	var sigPriv, sigPub []byte
	for i := 0; i < 64 && (sigPriv == nil || sigPriv[0] != 0); i++ {
		if sigPriv, sigPub, err = s.GenerateSignatureKeyPair(); err != nil {
			t.Fatal(err)
		}
	}
	if len(sigPriv) != 66 || sigPriv[0] != 0 {
		t.Fatalf("no P-521 signature key with a zero top byte in 64 tries (got %d bytes)", len(sigPriv))
	}
	sg, err := s.NewSigner(sigPriv[1:])
	if err != nil {
		t.Fatalf("NewSigner(65-byte scalar): %v", err)
	}
	if !bytes.Equal(sg.Public(), sigPub) {
		t.Error("65-byte scalar gave another public key")
	}
	var kemPriv, kemPub []byte
	for i := 0; i < 64 && (kemPriv == nil || kemPriv[0] != 0); i++ {
		if kemPriv, kemPub, err = s.GenerateKEMKeyPair(); err != nil {
			t.Fatal(err)
		}
	}
	if len(kemPriv) != 66 || kemPriv[0] != 0 {
		t.Fatalf("no P-521 HPKE key with a zero top byte in 64 tries (got %d bytes)", len(kemPriv))
	}
	enc, ct, err := s.EncryptWithLabel(kemPub, "L", nil, []byte("pt"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.DecryptWithLabel(kemPriv[1:], "L", nil, enc, ct); err != nil || string(pt) != "pt" {
		t.Errorf("DecryptWithLabel with a 65-byte key = %q, %v", pt, err)
	}
}
