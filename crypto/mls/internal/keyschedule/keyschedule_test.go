package keyschedule

import (
	"bytes"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
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
