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

func init() { register("welcome", runWelcome) }

// welcomeCase is one case of welcome.json (test-vectors.md, "Welcome").
// KeyPackage and Welcome are MLSMessages.
type welcomeCase struct {
	CipherSuite uint16   `json:"cipher_suite"`
	InitPriv    hexBytes `json:"init_priv"`
	SignerPub   hexBytes `json:"signer_pub"`
	KeyPackage  hexBytes `json:"key_package"`
	Welcome     hexBytes `json:"welcome"`
}

// runWelcome processes a Welcome as the new member holding init_priv (RFC
// 9420 §12.4.3.1): it finds the EncryptedGroupSecrets for the KeyPackage by
// its reference, decrypts the GroupSecrets, derives the welcome key and
// nonce from the joiner secret (no PSKs), decrypts the GroupInfo, verifies
// its signature with signer_pub, and checks its confirmation tag against the
// key schedule of the new epoch. Tampered signatures and tags must fail.
func runWelcome(t *testing.T, raw json.RawMessage) {
	var c welcomeCase
	decodeCase(t, raw, &c)
	s, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}

	var km, wm wire.MLSMessage
	if err := codec.Unmarshal(c.KeyPackage, &km); err != nil {
		t.Fatalf("key_package: %v", err)
	}
	if km.WireFormat != wire.WireFormatKeyPackage || km.KeyPackage == nil {
		t.Fatalf("key_package has wire format %d, want key_package", km.WireFormat)
	}
	if err := codec.Unmarshal(c.Welcome, &wm); err != nil {
		t.Fatalf("welcome: %v", err)
	}
	if wm.WireFormat != wire.WireFormatWelcome || wm.Welcome == nil {
		t.Fatalf("welcome has wire format %d, want welcome", wm.WireFormat)
	}
	kp, w := km.KeyPackage, wm.Welcome
	if kp.CipherSuite != s.ID() || w.CipherSuite != s.ID() {
		t.Fatalf("cipher suites: key package %#04x, welcome %#04x, case %#04x", kp.CipherSuite, w.CipherSuite, c.CipherSuite)
	}

	// KeyPackageRef = RefHash("MLS 1.0 KeyPackage Reference", KeyPackage) (§5.2).
	kpBytes, err := codec.Marshal(kp)
	if err != nil {
		t.Fatal(err)
	}
	ref := s.RefHash("MLS 1.0 KeyPackage Reference", kpBytes)
	var egs *wire.EncryptedGroupSecrets
	for i := range w.Secrets {
		if bytes.Equal(w.Secrets[i].NewMember, ref) {
			egs = &w.Secrets[i]
		}
	}
	if egs == nil {
		t.Fatalf("no EncryptedGroupSecrets for key package ref %x among %d", ref, len(w.Secrets))
	}

	// EncryptWithLabel(init_key, "Welcome", encrypted_group_info, group_secrets) (§12.4.3.1).
	gsBytes, err := s.DecryptWithLabel(c.InitPriv, "Welcome", w.EncryptedGroupInfo, egs.EncryptedGroupSecrets.KEMOutput, egs.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		t.Fatalf("decrypt group secrets: %v", err)
	}
	var gs wire.GroupSecrets
	if err := codec.Unmarshal(gsBytes, &gs); err != nil {
		t.Fatalf("group secrets: %v", err)
	}
	if len(gs.PSKs) != 0 {
		t.Fatalf("group secrets name %d PSKs; this vector format has none", len(gs.PSKs))
	}
	pskSecret, err := keyschedule.PSKSecret(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	welcomeSecret, err := keyschedule.WelcomeSecret(s, gs.JoinerSecret, pskSecret)
	if err != nil {
		t.Fatal(err)
	}
	key, nonce, err := keyschedule.WelcomeKeyNonce(s, welcomeSecret)
	if err != nil {
		t.Fatal(err)
	}
	giBytes, err := s.Open(key, nonce, nil, w.EncryptedGroupInfo)
	if err != nil {
		t.Fatalf("decrypt group info: %v", err)
	}
	var gi wire.GroupInfo
	if err := codec.Unmarshal(giBytes, &gi); err != nil {
		t.Fatalf("group info: %v", err)
	}
	if gi.GroupContext.CipherSuite != s.ID() || gi.GroupContext.Version != wire.ProtocolVersionMLS10 {
		t.Errorf("group context: version %d, cipher suite %#04x", gi.GroupContext.Version, gi.GroupContext.CipherSuite)
	}

	// Signature over GroupInfoTBS (§12.4.3).
	tbs, err := gi.TBS()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyWithLabel(c.SignerPub, "GroupInfoTBS", tbs, gi.Signature); err != nil {
		t.Errorf("group info signature: %v", err)
	}
	bad := bytes.Clone(tbs)
	bad[len(bad)-1] ^= 1
	if err := s.VerifyWithLabel(c.SignerPub, "GroupInfoTBS", bad, gi.Signature); err == nil {
		t.Error("group info signature verifies over altered content")
	}

	// confirmation_tag = MAC(confirmation_key, confirmed_transcript_hash)
	// with the new epoch's confirmation key (§6.1, §8; §12.4.3.1 step 8).
	gcBytes, err := codec.Marshal(&gi.GroupContext)
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := keyschedule.FromJoiner(s, gs.JoinerSecret, pskSecret, gcBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(epoch.WelcomeSecret, welcomeSecret) {
		t.Error("welcome secret differs between WelcomeSecret and FromJoiner")
	}
	if err := keyschedule.VerifyConfirmationTag(s, epoch.ConfirmationKey, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag); err != nil {
		t.Errorf("group info confirmation tag: %v", err)
	}
	other, err := keyschedule.FromJoiner(s, gs.JoinerSecret, bytes.Repeat([]byte{1}, s.Nh()), gcBytes)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(keyschedule.ConfirmationTag(s, other.ConfirmationKey, gi.GroupContext.ConfirmedTranscriptHash), gi.ConfirmationTag) {
		t.Error("confirmation tag also matches under a different psk_secret")
	}
}
