package conformance

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/framing"
	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

func init() { register("message-protection", runMessageProtection) }

// messageProtectionCase is one case of message-protection.json
// (test-vectors.md, "Message Protection").
type messageProtectionCase struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	TreeHash                hexBytes `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes `json:"signature_priv"`
	SignaturePub            hexBytes `json:"signature_pub"`
	EncryptionSecret        hexBytes `json:"encryption_secret"`
	SenderDataSecret        hexBytes `json:"sender_data_secret"`
	MembershipKey           hexBytes `json:"membership_key"`
	Proposal                hexBytes `json:"proposal"`
	ProposalPub             hexBytes `json:"proposal_pub"`
	ProposalPriv            hexBytes `json:"proposal_priv"`
	Commit                  hexBytes `json:"commit"`
	CommitPub               hexBytes `json:"commit_pub"`
	CommitPriv              hexBytes `json:"commit_priv"`
	Application             hexBytes `json:"application"`
	ApplicationPriv         hexBytes `json:"application_priv"`
}

// runMessageProtection unprotects the given public and private messages and
// round-trips freshly protected ones (RFC 9420 §6), sender leaf 1 of 2.
func runMessageProtection(t *testing.T, raw json.RawMessage) {
	var c messageProtectionCase
	decodeCase(t, raw, &c)
	s, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	signer, err := s.NewSigner(c.SignaturePriv)
	if err != nil {
		t.Fatal(err)
	}
	gc := &wire.GroupContext{Version: wire.ProtocolVersionMLS10, CipherSuite: ciphersuite.ID(c.CipherSuite), GroupID: c.GroupID,
		Epoch: c.Epoch, TreeHash: c.TreeHash, ConfirmedTranscriptHash: c.ConfirmedTranscriptHash}
	pubOf := func(leaf uint32) ([]byte, error) {
		if leaf != 1 {
			return nil, errors.New("only leaf 1 sends in this vector")
		}
		return c.SignaturePub, nil
	}
	decodeMsg := func(name string, b []byte) *wire.MLSMessage {
		var m wire.MLSMessage
		if err := codec.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		return &m
	}
	content := func(ct wire.ContentType) wire.FramedContent {
		return wire.FramedContent{GroupID: c.GroupID, Epoch: c.Epoch, Sender: wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: 1}, ContentType: ct}
	}
	body := func(name string, ac *wire.AuthenticatedContent) []byte {
		var w codec.Writer
		switch ac.Content.ContentType {
		case wire.ContentTypeApplication:
			return ac.Content.ApplicationData
		case wire.ContentTypeProposal:
			ac.Content.Proposal.MarshalMLS(&w)
		case wire.ContentTypeCommit:
			ac.Content.Commit.MarshalMLS(&w)
		}
		b, err := w.Bytes()
		if err != nil {
			t.Fatalf("%s: encode body: %v", name, err)
		}
		return b
	}

	type item struct {
		name      string
		ct        wire.ContentType
		raw       []byte
		pub, priv []byte
	}
	for _, it := range []item{
		{"proposal", wire.ContentTypeProposal, c.Proposal, c.ProposalPub, c.ProposalPriv},
		{"commit", wire.ContentTypeCommit, c.Commit, c.CommitPub, c.CommitPriv},
		{"application", wire.ContentTypeApplication, c.Application, nil, c.ApplicationPriv},
	} {
		fc := content(it.ct)
		var tag []byte
		switch it.ct {
		case wire.ContentTypeProposal:
			fc.Proposal = &wire.Proposal{}
			if err := codec.Unmarshal(it.raw, fc.Proposal); err != nil {
				t.Fatalf("%s: decode: %v", it.name, err)
			}
		case wire.ContentTypeCommit:
			fc.Commit = &wire.Commit{}
			if err := codec.Unmarshal(it.raw, fc.Commit); err != nil {
				t.Fatalf("%s: decode: %v", it.name, err)
			}
			tag = bytes.Repeat([]byte{0x42}, s.Nh())
		case wire.ContentTypeApplication:
			fc.ApplicationData = it.raw
		}

		// Public: the vector's message, and our own round trip.
		if it.pub != nil {
			m := decodeMsg(it.name+"_pub", it.pub)
			if m.PublicMessage == nil {
				t.Fatalf("%s_pub is not a PublicMessage", it.name)
			}
			ac, err := framing.UnprotectPublic(s, m.PublicMessage, gc, c.MembershipKey, c.SignaturePub)
			if err != nil {
				t.Errorf("%s_pub: unprotect: %v", it.name, err)
			} else if !bytes.Equal(body(it.name, ac), it.raw) {
				t.Errorf("%s_pub: content differs from %s", it.name, it.name)
			}
		}
		pm, err := framing.ProtectPublic(s, signer, fc, gc, c.MembershipKey, tag)
		if it.ct == wire.ContentTypeApplication {
			if !errors.Is(err, framing.ErrApplicationPublic) {
				t.Errorf("protecting application data as PublicMessage: %v, want ErrApplicationPublic", err)
			}
		} else if err != nil {
			t.Errorf("%s: protect public: %v", it.name, err)
		} else if _, err := framing.UnprotectPublic(s, pm, gc, c.MembershipKey, c.SignaturePub); err != nil {
			t.Errorf("%s: own PublicMessage: %v", it.name, err)
		}

		// Private: the vector's message, and our own round trip.
		m := decodeMsg(it.name+"_priv", it.priv)
		if m.PrivateMessage == nil {
			t.Fatalf("%s_priv is not a PrivateMessage", it.name)
		}
		ac, _, err := framing.UnprotectPrivate(s, m.PrivateMessage, gc, secrettree.New(s, c.EncryptionSecret, 2), c.SenderDataSecret, pubOf)
		if err != nil {
			t.Errorf("%s_priv: unprotect: %v", it.name, err)
		} else if !bytes.Equal(body(it.name, ac), it.raw) {
			t.Errorf("%s_priv: content differs from %s", it.name, it.name)
		}
		// The same through the epoch-level API, which also checks group,
		// epoch and sender, and refuses the replay (RFC 9420 §6.3.2, §9.2).
		ep := &framing.Epoch{Suite: s, GroupContext: gc, MembershipKey: c.MembershipKey, SenderDataSecret: c.SenderDataSecret,
			SecretTree: secrettree.New(s, c.EncryptionSecret, 2)}
		keyOf := func(fc *wire.FramedContent) ([]byte, error) {
			if fc.Sender.SenderType != wire.SenderTypeMember {
				return nil, errors.New("only members send in this vector")
			}
			return pubOf(fc.Sender.LeafIndex)
		}
		if ac, err := ep.Unprotect(m, keyOf); err != nil {
			t.Errorf("%s_priv: Epoch.Unprotect: %v", it.name, err)
		} else if !bytes.Equal(body(it.name, ac), it.raw) {
			t.Errorf("%s_priv: Epoch.Unprotect content differs from %s", it.name, it.name)
		}
		if _, err := ep.Unprotect(m, keyOf); !errors.Is(err, secrettree.ErrGenerationConsumed) {
			t.Errorf("%s_priv: replay: %v, want ErrGenerationConsumed", it.name, err)
		}
		if it.pub != nil {
			if _, err := ep.Unprotect(decodeMsg(it.name+"_pub", it.pub), keyOf); err != nil {
				t.Errorf("%s_pub: Epoch.Unprotect: %v", it.name, err)
			}
		}
		priv, err := framing.ProtectPrivate(s, signer, fc, gc, secrettree.New(s, c.EncryptionSecret, 2), c.SenderDataSecret, tag, 16)
		if err != nil {
			t.Fatalf("%s: protect private: %v", it.name, err)
		}
		ac, _, err = framing.UnprotectPrivate(s, priv, gc, secrettree.New(s, c.EncryptionSecret, 2), c.SenderDataSecret, pubOf)
		if err != nil {
			t.Errorf("%s: own PrivateMessage: %v", it.name, err)
		} else if !bytes.Equal(body(it.name, ac), it.raw) {
			t.Errorf("%s: own PrivateMessage content differs", it.name)
		}
	}
}
