package ciphersuite

import (
	"bytes"
	"fmt"
	"testing"
)

// forEachSuiteB runs f for every supported suite as a sub-benchmark named
// suite=0x000N, so `-bench 'Sign/suite=0x0001'` selects one suite.
func forEachSuiteB(b *testing.B, f func(b *testing.B, s *Suite)) {
	for _, id := range Supported() {
		s, err := Lookup(id)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("suite=%#04x", uint16(id)), func(b *testing.B) { f(b, s) })
	}
}

// content is a typical FramedContentTBS size for a small application message.
var content = bytes.Repeat([]byte{0x42}, 1200)

func BenchmarkSignWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *Suite) {
		priv, _, err := s.GenerateSignatureKeyPair()
		if err != nil {
			b.Fatal(err)
		}
		sg, err := s.NewSigner(priv)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := sg.SignWithLabel("FramedContentTBS", content); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerifyWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *Suite) {
		priv, pub, err := s.GenerateSignatureKeyPair()
		if err != nil {
			b.Fatal(err)
		}
		sig, err := s.SignWithLabel(priv, "FramedContentTBS", content)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.VerifyWithLabel(pub, "FramedContentTBS", content, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncryptWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *Suite) {
		_, pub, err := s.GenerateKEMKeyPair()
		if err != nil {
			b.Fatal(err)
		}
		secret := make([]byte, s.Nh())
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.EncryptWithLabel(pub, "UpdatePathNode", content[:100], secret); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecryptWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *Suite) {
		priv, pub, err := s.GenerateKEMKeyPair()
		if err != nil {
			b.Fatal(err)
		}
		secret := make([]byte, s.Nh())
		kem, ct, err := s.EncryptWithLabel(pub, "UpdatePathNode", content[:100], secret)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.DecryptWithLabel(priv, "UpdatePathNode", content[:100], kem, ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDeriveKEMKeyPair(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *Suite) {
		ikm := bytes.Repeat([]byte{5}, s.Nh())
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.DeriveKEMKeyPair(ikm); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSealOpen1KiB measures AEAD Seal followed by Open of 1 KiB.
func BenchmarkSealOpen1KiB(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *Suite) {
		key, nonce := make([]byte, s.Nk()), make([]byte, s.Nn())
		pt := make([]byte, 1024)
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			ct, err := s.Seal(key, nonce, content[:40], pt)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := s.Open(key, nonce, content[:40], ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkExpandWithLabel(b *testing.B) {
	forEachSuiteB(b, func(b *testing.B, s *Suite) {
		secret := make([]byte, s.Nh())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.DeriveTreeSecret(secret, "key", 7, s.Nk()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
