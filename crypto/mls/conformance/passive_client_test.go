package conformance

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls"
)

// passive-client vectors (passive-client-welcome, -handling-commit, -random):
// join from a Welcome with the given key package privates, then feed each
// epoch's proposals and commit and compare the epoch authenticators.
func init() { register("passive-client", runPassiveClient) }

type passiveClientCase struct {
	CipherSuite  uint16 `json:"cipher_suite"`
	ExternalPSKs []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexBytes `json:"key_package"`
	SignaturePriv             hexBytes `json:"signature_priv"`
	EncryptionPriv            hexBytes `json:"encryption_priv"`
	InitPriv                  hexBytes `json:"init_priv"`
	Welcome                   hexBytes `json:"welcome"`
	RatchetTree               hexBytes `json:"ratchet_tree"`
	InitialEpochAuthenticator hexBytes `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func runPassiveClient(t *testing.T, raw json.RawMessage) {
	var c passiveClientCase
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	psks := map[string][]byte{}
	for _, p := range c.ExternalPSKs {
		psks[string(p.PSKID)] = p.PSK
	}
	cfg := &mls.Config{
		ExternalPSK: func(id []byte) ([]byte, bool) { s, ok := psks[string(id)]; return s, ok },
		// The vectors' random epochs may use resumption PSKs of any epoch.
		RetainedResumptionPSKs: 1 << 20,
	}
	priv := &mls.KeyPackagePrivate{InitKey: c.InitPriv, EncryptionKey: c.EncryptionPriv, SignatureKey: c.SignaturePriv}
	g, err := mls.JoinFromWelcome(cfg, c.Welcome, c.KeyPackage, priv, c.RatchetTree)
	if err != nil {
		t.Fatalf("suite %#04x: join: %v", c.CipherSuite, err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), c.InitialEpochAuthenticator) {
		t.Fatalf("suite %#04x: initial epoch authenticator %x, want %x", c.CipherSuite, g.EpochAuthenticator(), c.InitialEpochAuthenticator)
	}
	for i, e := range c.Epochs {
		for j, p := range e.Proposals {
			if _, err := g.ProcessMessage(p); err != nil {
				t.Fatalf("suite %#04x: epoch %d proposal %d: %v", c.CipherSuite, i, j, err)
			}
		}
		if _, err := g.ProcessMessage(e.Commit); err != nil {
			t.Fatalf("suite %#04x: epoch %d commit: %v", c.CipherSuite, i, err)
		}
		if !bytes.Equal(g.EpochAuthenticator(), e.EpochAuthenticator) {
			t.Fatalf("suite %#04x: epoch %d authenticator %x, want %x", c.CipherSuite, i, g.EpochAuthenticator(), e.EpochAuthenticator)
		}
	}
}
