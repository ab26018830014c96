package conformance

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/keyschedule"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

func init() { register("psk_secret", runPSKSecret) }

// pskSecretCase is one case of psk_secret.json (test-vectors.md, "Pre-Shared Keys").
type pskSecretCase struct {
	CipherSuite uint16 `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    hexBytes `json:"psk_id"`
		PSK      hexBytes `json:"psk"`
		PSKNonce hexBytes `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hexBytes `json:"psk_secret"`
}

// runPSKSecret combines external PSKs into psk_secret (RFC 9420 §8.4), and
// checks that the order of the PSKs matters.
func runPSKSecret(t *testing.T, raw json.RawMessage) {
	var c pskSecretCase
	decodeCase(t, raw, &c)
	s, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	psks := make([]keyschedule.PSK, 0, len(c.PSKs))
	for _, p := range c.PSKs {
		id, err := codec.Marshal(&wire.PreSharedKeyID{PSKType: wire.PSKTypeExternal, ID: p.PSKID, Nonce: p.PSKNonce})
		if err != nil {
			t.Fatal(err)
		}
		psks = append(psks, keyschedule.PSK{ID: id, Secret: p.PSK})
	}
	got, err := keyschedule.PSKSecret(s, psks)
	if err != nil || !bytes.Equal(got, c.PSKSecret) {
		t.Fatalf("psk_secret = %x, %v; want %x", got, err, []byte(c.PSKSecret))
	}
	if len(psks) > 1 && !bytes.Equal(psks[0].Secret, psks[len(psks)-1].Secret) {
		swapped := append([]keyschedule.PSK{psks[len(psks)-1]}, psks[:len(psks)-1]...)
		if got, _ := keyschedule.PSKSecret(s, swapped); bytes.Equal(got, c.PSKSecret) {
			t.Error("psk_secret does not depend on the order of the PSKs")
		}
	}
}
