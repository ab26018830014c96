package conformance

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
)

func init() { register("secret-tree", runSecretTree) }

// secretTreeCase is one case of secret-tree.json (test-vectors.md, "Secret Tree").
type secretTreeCase struct {
	CipherSuite uint16 `json:"cipher_suite"`
	SenderData  struct {
		SenderDataSecret hexBytes `json:"sender_data_secret"`
		Ciphertext       hexBytes `json:"ciphertext"`
		Key              hexBytes `json:"key"`
		Nonce            hexBytes `json:"nonce"`
	} `json:"sender_data"`
	EncryptionSecret hexBytes `json:"encryption_secret"`
	Leaves           [][]struct {
		Generation       uint32   `json:"generation"`
		HandshakeKey     hexBytes `json:"handshake_key"`
		HandshakeNonce   hexBytes `json:"handshake_nonce"`
		ApplicationKey   hexBytes `json:"application_key"`
		ApplicationNonce hexBytes `json:"application_nonce"`
	} `json:"leaves"`
}

// runSecretTree checks sender-data keys and the ratchet keys of every leaf
// at the listed generations (RFC 9420 §6.3.2, §9).
func runSecretTree(t *testing.T, raw json.RawMessage) {
	var c secretTreeCase
	decodeCase(t, raw, &c)
	s, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	key, nonce, err := secrettree.SenderDataKeyNonce(s, c.SenderData.SenderDataSecret, c.SenderData.Ciphertext)
	if err != nil || !bytes.Equal(key, c.SenderData.Key) || !bytes.Equal(nonce, c.SenderData.Nonce) {
		t.Errorf("sender data key, nonce = %x, %x, %v; want %x, %x", key, nonce, err, []byte(c.SenderData.Key), []byte(c.SenderData.Nonce))
	}
	tr := secrettree.New(s, c.EncryptionSecret, uint32(len(c.Leaves)))
	for i, gens := range c.Leaves {
		for _, g := range gens {
			h, err := tr.Get(uint32(i), secrettree.Handshake, g.Generation)
			if err != nil || !bytes.Equal(h.Key, g.HandshakeKey) || !bytes.Equal(h.Nonce, g.HandshakeNonce) {
				t.Errorf("leaf %d handshake generation %d: %x %x %v", i, g.Generation, h.Key, h.Nonce, err)
			}
			a, err := tr.Get(uint32(i), secrettree.Application, g.Generation)
			if err != nil || !bytes.Equal(a.Key, g.ApplicationKey) || !bytes.Equal(a.Nonce, g.ApplicationNonce) {
				t.Errorf("leaf %d application generation %d: %x %x %v", i, g.Generation, a.Key, a.Nonce, err)
			}
		}
	}
}
