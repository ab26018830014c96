package ciphersuite

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func forEachSuite(t *testing.T, f func(t *testing.T, s *Suite)) {
	for _, id := range Supported() {
		s, err := Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("suite=%#04x", uint16(id)), func(t *testing.T) { f(t, s) })
	}
}

func TestLookupRejectsUnknownSuites(t *testing.T) {
	for _, id := range []ID{0, 8, 0x0a0a, 0xffff} {
		if _, err := Lookup(id); !errors.Is(err, ErrUnsupported) {
			t.Errorf("Lookup(%#04x) = %v, want ErrUnsupported", uint16(id), err)
		}
	}
}

func TestSignatureRoundTripAndTampering(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *Suite) {
		priv, pub, err := s.GenerateSignatureKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		sg, err := s.NewSigner(priv)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(sg.Public(), pub) {
			t.Fatal("Signer.Public differs from the generated public key")
		}
		sig, err := s.SignWithLabel(priv, "LeafNodeTBS", []byte("content"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("content"), sig); err != nil {
			t.Fatalf("valid signature rejected: %v", err)
		}
		for name, check := range map[string]func() error{
			"other label":   func() error { return s.VerifyWithLabel(pub, "KeyPackageTBS", []byte("content"), sig) },
			"other content": func() error { return s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("contenT"), sig) },
			"bad key":       func() error { return s.VerifyWithLabel(pub[:len(pub)-1], "LeafNodeTBS", []byte("content"), sig) },
		} {
			if err := check(); !errors.Is(err, ErrInvalidSignature) {
				t.Errorf("%s: %v, want ErrInvalidSignature", name, err)
			}
		}
	})
}

func TestHPKERoundTripAndDerivation(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *Suite) {
		// DeriveKeyPair is deterministic for any seed length (RFC 9180).
		for _, n := range []int{1, 32, 65, 200} {
			ikm := bytes.Repeat([]byte{7}, n)
			p1, q1, err := s.DeriveKEMKeyPair(ikm)
			if err != nil {
				t.Fatalf("DeriveKEMKeyPair(%d bytes): %v", n, err)
			}
			p2, q2, _ := s.DeriveKEMKeyPair(ikm)
			if !bytes.Equal(p1, p2) || !bytes.Equal(q1, q2) {
				t.Fatalf("DeriveKEMKeyPair(%d bytes) not deterministic", n)
			}
		}
		priv, pub, err := s.DeriveKEMKeyPair([]byte("seed"))
		if err != nil {
			t.Fatal(err)
		}
		kem, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", []byte("ctx"), []byte("secret"))
		if err != nil {
			t.Fatal(err)
		}
		pt, err := s.DecryptWithLabel(priv, "UpdatePathNode", []byte("ctx"), kem, ct)
		if err != nil || string(pt) != "secret" {
			t.Fatalf("decrypt = %q, %v", pt, err)
		}
		if _, err := s.DecryptWithLabel(priv, "Welcome", []byte("ctx"), kem, ct); !errors.Is(err, ErrDecrypt) {
			t.Errorf("decrypt with another label: %v, want ErrDecrypt", err)
		}
		kem2, sec, err := s.ExportSender(pub, []byte("info"), []byte("MLS 1.0 external init secret"), s.Nh())
		if err != nil {
			t.Fatal(err)
		}
		sec2, err := s.ExportReceiver(priv, kem2, []byte("info"), []byte("MLS 1.0 external init secret"), s.Nh())
		if err != nil || !bytes.Equal(sec, sec2) || len(sec) != s.Nh() {
			t.Fatalf("exported secrets differ: %x %x %v", sec, sec2, err)
		}
	})
}

func TestAEADAndKDF(t *testing.T) {
	forEachSuite(t, func(t *testing.T, s *Suite) {
		key := bytes.Repeat([]byte{1}, s.Nk())
		nonce := bytes.Repeat([]byte{2}, s.Nn())
		ct, err := s.Seal(key, nonce, []byte("aad"), []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := s.Open(key, nonce, []byte("aad"), ct); err != nil || string(pt) != "hello" {
			t.Fatalf("Open = %q, %v", pt, err)
		}
		if _, err := s.Open(key, nonce, []byte("AAD"), ct); !errors.Is(err, ErrDecrypt) {
			t.Errorf("Open with other aad: %v, want ErrDecrypt", err)
		}
		if _, err := s.Seal(key[1:], nonce, nil, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Seal with a short key: %v, want ErrInvalidKey", err)
		}
		d, err := s.DeriveSecret(s.Extract(nil, []byte("ikm")), "path")
		if err != nil || len(d) != s.Nh() {
			t.Fatalf("DeriveSecret = %x, %v", d, err)
		}
		if len(s.Hash(nil)) != s.Nh() || len(s.RefHash("MLS 1.0 KeyPackage Reference", nil)) != s.Nh() {
			t.Error("hash length differs from Nh")
		}
	})
}
