package keyschedule

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

func TestScheduleChainsAndSeparatesSecrets(t *testing.T) {
	s, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, s.Nh())
	e1, err := Derive(s, zero, []byte("commit secret 1................."), nil, []byte("gc1"))
	if err != nil {
		t.Fatal(err)
	}
	e1b, _ := Derive(s, zero, []byte("commit secret 1................."), zero, []byte("gc1"))
	if !bytes.Equal(e1.EpochSecret, e1b.EpochSecret) {
		t.Fatal("nil psk_secret differs from Nh zero bytes")
	}
	e2, _ := Derive(s, e1.InitSecret, zero, nil, []byte("gc2"))
	e2x, _ := Derive(s, e1.InitSecret, zero, nil, []byte("gc2'"))
	if bytes.Equal(e2.EpochSecret, e2x.EpochSecret) {
		t.Error("epoch secret does not depend on the group context")
	}
	seen := map[string]bool{}
	for _, v := range [][]byte{e1.SenderDataSecret, e1.EncryptionSecret, e1.ExporterSecret, e1.ExternalSecret,
		e1.ConfirmationKey, e1.MembershipKey, e1.ResumptionPSK, e1.EpochAuthenticator, e1.InitSecret, e1.WelcomeSecret} {
		if seen[string(v)] || len(v) != s.Nh() {
			t.Fatal("derived secrets are not distinct Nh-byte values")
		}
		seen[string(v)] = true
	}
	a, _ := Export(s, e1.ExporterSecret, "a", nil, 16)
	b, _ := Export(s, e1.ExporterSecret, "b", nil, 16)
	if len(a) != 16 || bytes.Equal(a, b) {
		t.Error("exporter outputs for different labels are equal or of the wrong length")
	}
	if p, _ := PSKSecret(s, nil); !bytes.Equal(p, zero) {
		t.Error("psk_secret without PSKs is not zero")
	}
	p1, _ := PSKSecret(s, []PSK{{ID: []byte{1, 1, 'x', 0}, Secret: []byte("k")}})
	p2, _ := PSKSecret(s, []PSK{{ID: []byte{1, 1, 'y', 0}, Secret: []byte("k")}})
	if bytes.Equal(p1, p2) || bytes.Equal(p1, zero) {
		t.Error("psk_secret does not depend on the PSK id")
	}
	c := ConfirmedTranscriptHash(s, nil, []byte("input"))
	if bytes.Equal(InterimTranscriptHash(s, c, []byte("tag1")), InterimTranscriptHash(s, c, []byte("tag2"))) {
		t.Error("interim transcript hash ignores the confirmation tag")
	}
}

func TestWelcomeSecretMatchesTheEpochsAndDependsOnPSKs(t *testing.T) {
	for _, id := range ciphersuite.Supported() {
		s, err := ciphersuite.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		joiner := bytes.Repeat([]byte{7}, s.Nh())
		psk := bytes.Repeat([]byte{8}, s.Nh())
		e, err := FromJoiner(s, joiner, psk, []byte("group context"))
		if err != nil {
			t.Fatal(err)
		}
		ws, err := WelcomeSecret(s, joiner, psk)
		if err != nil || !bytes.Equal(ws, e.WelcomeSecret) {
			t.Fatalf("suite %#04x: WelcomeSecret = %x, %v; epoch has %x", id, ws, err, e.WelcomeSecret)
		}
		none, _ := WelcomeSecret(s, joiner, nil)
		if bytes.Equal(none, ws) {
			t.Errorf("suite %#04x: welcome secret ignores the psk secret", id)
		}
		key, nonce, err := WelcomeKeyNonce(s, ws)
		if err != nil || len(key) != s.Nk() || len(nonce) != s.Nn() {
			t.Errorf("suite %#04x: welcome key %d bytes, nonce %d bytes, %v; want %d and %d", id, len(key), len(nonce), err, s.Nk(), s.Nn())
		}
	}
}

func TestExternalInitSenderAndReceiverAgreeInEverySuite(t *testing.T) {
	for _, id := range ciphersuite.Supported() {
		s, err := ciphersuite.Lookup(id)
		if err != nil {
			t.Fatal(err)
		}
		e, err := Derive(s, make([]byte, s.Nh()), bytes.Repeat([]byte{1}, s.Nh()), nil, []byte("gc"))
		if err != nil {
			t.Fatal(err)
		}
		priv, pub, err := ExternalKeyPair(s, e.ExternalSecret)
		if err != nil {
			t.Fatalf("suite %#04x: external key pair: %v", id, err)
		}
		kem, sent, err := ExternalInitSender(s, pub)
		if err != nil {
			t.Fatalf("suite %#04x: sender: %v", id, err)
		}
		got, err := ExternalInitReceiver(s, priv, kem)
		if err != nil || !bytes.Equal(got, sent) || len(sent) != s.Nh() {
			t.Fatalf("suite %#04x: receiver got %x, %v; sender exported %x", id, got, err, sent)
		}
		otherPriv, _, err := s.GenerateKEMKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		if wrong, err := ExternalInitReceiver(s, otherPriv, kem); err == nil && bytes.Equal(wrong, sent) {
			t.Errorf("suite %#04x: another key recovers the same init secret", id)
		}
	}
}

func TestNewPSKEncodesTheID(t *testing.T) {
	s, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := NewPSK(&wire.PreSharedKeyID{PSKType: wire.PSKTypeExternal, ID: []byte("x"), Nonce: []byte("n")}, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 1, 'x', 1, 'n'}; !bytes.Equal(ext.ID, want) {
		t.Errorf("external psk id encodes as %x, want %x", ext.ID, want)
	}
	res, err := NewPSK(&wire.PreSharedKeyID{PSKType: wire.PSKTypeResumption, Usage: wire.ResumptionPSKUsageApplication,
		GroupID: []byte("g"), PSKEpoch: 3, Nonce: []byte("n")}, []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := PSKSecret(s, []PSK{ext, res})
	b, _ := PSKSecret(s, []PSK{res, ext})
	if bytes.Equal(a, b) {
		t.Error("psk secret does not depend on the order of the PSKs")
	}
}

func TestTranscriptHashesChain(t *testing.T) {
	s, err := ciphersuite.Lookup(2)
	if err != nil {
		t.Fatal(err)
	}
	interim := bytes.Repeat([]byte{1}, s.Nh())
	c := ConfirmedTranscriptHash(s, interim, []byte("commit"))
	if !bytes.Equal(c, s.Hash(append(bytes.Clone(interim), "commit"...))) {
		t.Error("confirmed transcript hash is not Hash(interim || input)")
	}
	tag := ConfirmationTag(s, bytes.Repeat([]byte{2}, s.Nh()), c)
	in, err := wire.InterimTranscriptHashInput(tag)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(InterimTranscriptHash(s, c, tag), s.Hash(append(bytes.Clone(c), in...))) {
		t.Error("interim transcript hash is not Hash(confirmed || InterimTranscriptHashInput)")
	}
	if bytes.Equal(tag, ConfirmationTag(s, bytes.Repeat([]byte{3}, s.Nh()), c)) {
		t.Error("confirmation tag ignores the confirmation key")
	}
}

func BenchmarkDeriveEpoch(b *testing.B) {
	s, err := ciphersuite.Lookup(1)
	if err != nil {
		b.Fatal(err)
	}
	initSecret, commit, gc := make([]byte, 32), bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 120)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Derive(s, initSecret, commit, nil, gc); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEraseZeroesEverySecret(t *testing.T) {
	s, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Derive(s, make([]byte, s.Nh()), bytes.Repeat([]byte{1}, s.Nh()), nil, []byte("gc"))
	if err != nil {
		t.Fatal(err)
	}
	all := [][]byte{e.JoinerSecret, e.WelcomeSecret, e.EpochSecret, e.SenderDataSecret, e.EncryptionSecret, e.ExporterSecret,
		e.EpochAuthenticator, e.ExternalSecret, e.ConfirmationKey, e.MembershipKey, e.ResumptionPSK, e.InitSecret}
	e.Erase()
	zero := make([]byte, s.Nh())
	for i, b := range all {
		if !bytes.Equal(b, zero) {
			t.Errorf("secret %d not zeroed: %x", i, b)
		}
	}
}

func TestVerifyConfirmationTag(t *testing.T) {
	s, err := ciphersuite.Lookup(3)
	if err != nil {
		t.Fatal(err)
	}
	key, cth := bytes.Repeat([]byte{1}, s.Nh()), bytes.Repeat([]byte{2}, s.Nh())
	tag := ConfirmationTag(s, key, cth)
	if err := VerifyConfirmationTag(s, key, cth, tag); err != nil {
		t.Fatalf("valid tag: %v", err)
	}
	for name, bad := range map[string][]byte{"flipped": append([]byte{tag[0] ^ 1}, tag[1:]...), "truncated": tag[:len(tag)-1], "empty": nil} {
		if err := VerifyConfirmationTag(s, key, cth, bad); !errors.Is(err, ErrConfirmationTag) {
			t.Errorf("%s tag: %v, want ErrConfirmationTag", name, err)
		}
	}
}
