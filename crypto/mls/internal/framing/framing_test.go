package framing

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

func setup(t *testing.T) (*ciphersuite.Suite, *ciphersuite.Signer, *wire.GroupContext, wire.FramedContent) {
	t.Helper()
	s, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := s.GenerateSignatureKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := s.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	gc := &wire.GroupContext{Version: 1, CipherSuite: 1, GroupID: []byte("g"), Epoch: 4, TreeHash: []byte("th")}
	fc := wire.FramedContent{GroupID: []byte("g"), Epoch: 4, Sender: wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: 2},
		ContentType: wire.ContentTypeApplication, ApplicationData: []byte("hello")}
	return s, signer, gc, fc
}

func TestPrivateMessageRoundTripReplayAndTampering(t *testing.T) {
	s, signer, gc, fc := setup(t)
	secret := bytes.Repeat([]byte{3}, 32)
	sds := bytes.Repeat([]byte{4}, 32)
	pub := func(uint32) ([]byte, error) { return signer.Public(), nil }
	msg, err := ProtectPrivate(s, signer, fc, gc, secrettree.New(s, secret, 4), sds, nil, 32)
	if err != nil {
		t.Fatal(err)
	}
	rcv := secrettree.New(s, secret, 4)
	ac, sd, err := UnprotectPrivate(s, msg, gc, rcv, sds, pub)
	if err != nil {
		t.Fatal(err)
	}
	if string(ac.Content.ApplicationData) != "hello" || sd.LeafIndex != 2 || sd.Generation != 0 {
		t.Fatalf("got %q from leaf %d generation %d", ac.Content.ApplicationData, sd.LeafIndex, sd.Generation)
	}
	if _, _, err := UnprotectPrivate(s, msg, gc, rcv, sds, pub); !errors.Is(err, secrettree.ErrGenerationConsumed) {
		t.Errorf("replay: %v, want ErrGenerationConsumed", err)
	}
	bad := *msg
	bad.Ciphertext = append([]byte(nil), msg.Ciphertext...)
	bad.Ciphertext[len(bad.Ciphertext)-1] ^= 1
	fresh := secrettree.New(s, secret, 4)
	if _, _, err := UnprotectPrivate(s, &bad, gc, fresh, sds, pub); !errors.Is(err, ErrDecrypt) {
		t.Errorf("tampered ciphertext: %v, want ErrDecrypt", err)
	}
	// The forgery did not burn the key: the genuine message still opens.
	if _, _, err := UnprotectPrivate(s, msg, gc, fresh, sds, pub); err != nil {
		t.Errorf("genuine message after a forgery: %v", err)
	}
	other := func(uint32) ([]byte, error) { _, p, _ := s.GenerateSignatureKeyPair(); return p, nil }
	if _, _, err := UnprotectPrivate(s, msg, gc, secrettree.New(s, secret, 4), sds, other); !errors.Is(err, ErrSignature) {
		t.Errorf("wrong signer: %v, want ErrSignature", err)
	}
}

func TestPublicMessageMembershipTag(t *testing.T) {
	s, signer, gc, fc := setup(t)
	if _, err := ProtectPublic(s, signer, fc, gc, []byte("k"), nil); !errors.Is(err, ErrApplicationPublic) {
		t.Fatalf("application as PublicMessage: %v, want ErrApplicationPublic", err)
	}
	fc.ContentType = wire.ContentTypeProposal
	fc.ApplicationData = nil
	fc.Proposal = &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: 1}}
	pm, err := ProtectPublic(s, signer, fc, gc, []byte("membership"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnprotectPublic(s, pm, gc, []byte("membership"), signer.Public()); err != nil {
		t.Fatalf("valid PublicMessage rejected: %v", err)
	}
	if _, err := UnprotectPublic(s, pm, gc, []byte("other key"), signer.Public()); !errors.Is(err, ErrMembershipTag) {
		t.Errorf("wrong membership key: %v, want ErrMembershipTag", err)
	}
	gc2 := *gc
	gc2.Epoch++
	if _, err := UnprotectPublic(s, pm, &gc2, []byte("membership"), signer.Public()); err == nil {
		t.Error("PublicMessage verified under another group context")
	}
}
