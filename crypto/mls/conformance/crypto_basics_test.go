package conformance

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
)

func init() { register("crypto-basics", runCryptoBasics) }

// cryptoBasicsCase is one case of crypto-basics.json (test-vectors.md,
// "Crypto Basics").
type cryptoBasicsCase struct {
	CipherSuite uint16 `json:"cipher_suite"`
	RefHash     struct {
		Label string   `json:"label"`
		Value hexBytes `json:"value"`
		Out   hexBytes `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexBytes `json:"secret"`
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Out     hexBytes `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexBytes `json:"secret"`
		Label  string   `json:"label"`
		Out    hexBytes `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexBytes `json:"secret"`
		Label      string   `json:"label"`
		Generation uint32   `json:"generation"`
		Length     int      `json:"length"`
		Out        hexBytes `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexBytes `json:"priv"`
		Pub       hexBytes `json:"pub"`
		Content   hexBytes `json:"content"`
		Label     string   `json:"label"`
		Signature hexBytes `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexBytes `json:"priv"`
		Pub        hexBytes `json:"pub"`
		Label      string   `json:"label"`
		Context    hexBytes `json:"context"`
		Plaintext  hexBytes `json:"plaintext"`
		KEMOutput  hexBytes `json:"kem_output"`
		Ciphertext hexBytes `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

// runCryptoBasics checks the labelled operations of RFC 9420 §5 and §8.
func runCryptoBasics(t *testing.T, raw json.RawMessage) {
	var c cryptoBasicsCase
	decodeCase(t, raw, &c)
	s, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	if got := s.RefHash(c.RefHash.Label, c.RefHash.Value); !bytes.Equal(got, c.RefHash.Out) {
		t.Errorf("RefHash = %x, want %x", got, []byte(c.RefHash.Out))
	}
	e := c.ExpandWithLabel
	if got, err := s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length); err != nil || !bytes.Equal(got, e.Out) {
		t.Errorf("ExpandWithLabel = %x, %v; want %x", got, err, []byte(e.Out))
	}
	d := c.DeriveSecret
	if got, err := s.DeriveSecret(d.Secret, d.Label); err != nil || !bytes.Equal(got, d.Out) {
		t.Errorf("DeriveSecret = %x, %v; want %x", got, err, []byte(d.Out))
	}
	ts := c.DeriveTreeSecret
	if got, err := s.DeriveTreeSecret(ts.Secret, ts.Label, ts.Generation, ts.Length); err != nil || !bytes.Equal(got, ts.Out) {
		t.Errorf("DeriveTreeSecret = %x, %v; want %x", got, err, []byte(ts.Out))
	}
	sg := c.SignWithLabel
	if err := s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sg.Signature); err != nil {
		t.Errorf("VerifyWithLabel(vector signature): %v", err)
	}
	signer, err := s.NewSigner(sg.Priv)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	if !bytes.Equal(signer.Public(), sg.Pub) {
		t.Errorf("public key from private = %x, want %x", signer.Public(), []byte(sg.Pub))
	}
	sig, err := signer.SignWithLabel(sg.Label, sg.Content)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyWithLabel(sg.Pub, sg.Label, sg.Content, sig); err != nil {
		t.Errorf("VerifyWithLabel(own signature): %v", err)
	}
	en := c.EncryptWithLabel
	if pt, err := s.DecryptWithLabel(en.Priv, en.Label, en.Context, en.KEMOutput, en.Ciphertext); err != nil || !bytes.Equal(pt, en.Plaintext) {
		t.Errorf("DecryptWithLabel(vector) = %x, %v; want %x", pt, err, []byte(en.Plaintext))
	}
	kem, ct, err := s.EncryptWithLabel(en.Pub, en.Label, en.Context, en.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.DecryptWithLabel(en.Priv, en.Label, en.Context, kem, ct); err != nil || !bytes.Equal(pt, en.Plaintext) {
		t.Errorf("DecryptWithLabel(own) = %x, %v", pt, err)
	}
}
