package framing

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// pair is a sender and a receiver in one epoch of a four-leaf group in
// which only leaf 2 (the sender) and leaf 0 are members.
type pair struct {
	suite    *ciphersuite.Suite
	signer   *ciphersuite.Signer
	from, to *Epoch
	keys     SignatureKeyFunc
}

func newPair(t testing.TB, id ciphersuite.ID) *pair {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
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
	gc := &wire.GroupContext{Version: wire.ProtocolVersionMLS10, CipherSuite: id, GroupID: []byte("group"), Epoch: 7,
		TreeHash: bytes.Repeat([]byte{1}, s.Nh()), ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, s.Nh())}
	enc := bytes.Repeat([]byte{3}, s.Nh())
	epoch := func() *Epoch {
		return &Epoch{Suite: s, GroupContext: gc, MembershipKey: bytes.Repeat([]byte{4}, s.Nh()),
			SenderDataSecret: bytes.Repeat([]byte{5}, s.Nh()), SecretTree: secrettree.New(s, enc, 4)}
	}
	keys := func(c *wire.FramedContent) ([]byte, error) {
		if c.Sender.SenderType == wire.SenderTypeMember && (c.Sender.LeafIndex == 2 || c.Sender.LeafIndex == 0) {
			return signer.Public(), nil
		}
		if c.Sender.SenderType == wire.SenderTypeExternal && c.Sender.SenderIndex == 0 {
			return signer.Public(), nil
		}
		return nil, fmt.Errorf("no such sender %+v", c.Sender)
	}
	return &pair{suite: s, signer: signer, from: epoch(), to: epoch(), keys: keys}
}

func (p *pair) content(ct wire.ContentType, leaf uint32) *wire.FramedContent {
	c := &wire.FramedContent{GroupID: []byte("group"), Epoch: 7, Sender: wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: leaf},
		AuthenticatedData: []byte("aad"), ContentType: ct}
	switch ct {
	case wire.ContentTypeApplication:
		c.ApplicationData = []byte("vital signs stable")
	case wire.ContentTypeProposal:
		c.Proposal = &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: 1}}
	case wire.ContentTypeCommit:
		c.Commit = &wire.Commit{}
	}
	return c
}

// reencode sends m over the wire and back.
func reencode(t testing.TB, m *wire.MLSMessage) *wire.MLSMessage {
	t.Helper()
	b, err := codec.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out wire.MLSMessage
	if err := codec.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func TestEpochRoundTripsEveryContentTypeAndWireFormatInEverySuite(t *testing.T) {
	for _, id := range ciphersuite.Supported() {
		p := newPair(t, id)
		tag := bytes.Repeat([]byte{9}, p.suite.Nh())
		for _, wf := range []wire.WireFormat{wire.WireFormatPublicMessage, wire.WireFormatPrivateMessage} {
			for _, ct := range []wire.ContentType{wire.ContentTypeApplication, wire.ContentTypeProposal, wire.ContentTypeCommit} {
				name := fmt.Sprintf("suite %#04x wire format %d content type %d", id, wf, ct)
				m, err := p.from.Protect(p.signer, wf, p.content(ct, 2), tag)
				if wf == wire.WireFormatPublicMessage && ct == wire.ContentTypeApplication {
					if !errors.Is(err, ErrApplicationPublic) {
						t.Errorf("%s: %v, want ErrApplicationPublic", name, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: protect: %v", name, err)
				}
				ac, err := p.to.Unprotect(reencode(t, m), p.keys)
				if err != nil {
					t.Fatalf("%s: unprotect: %v", name, err)
				}
				want := p.content(ct, 2)
				if got, _ := codec.Marshal(&ac.Content); !bytes.Equal(got, mustMarshal(t, want)) {
					t.Errorf("%s: content changed in transit", name)
				}
				if ct == wire.ContentTypeCommit && !bytes.Equal(ac.Auth.ConfirmationTag, tag) {
					t.Errorf("%s: confirmation tag not carried", name)
				}
			}
		}
	}
}

func mustMarshal(t testing.TB, v codec.Marshaler) []byte {
	t.Helper()
	b, err := codec.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEpochUnprotectRejects(t *testing.T) {
	p := newPair(t, 1)
	priv := func() *wire.MLSMessage {
		c := p.content(wire.ContentTypeApplication, 2)
		// A separate sender state so every case encrypts at generation 0.
		from := *p.from
		from.SecretTree = secrettree.New(p.suite, bytes.Repeat([]byte{3}, p.suite.Nh()), 4)
		m, err := from.Protect(p.signer, wire.WireFormatPrivateMessage, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	pub := func(mut func(*wire.FramedContent)) *wire.MLSMessage {
		c := p.content(wire.ContentTypeProposal, 2)
		if mut != nil {
			mut(c)
		}
		pm, err := ProtectPublic(p.suite, p.signer, *c, p.from.GroupContext, p.from.MembershipKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &wire.MLSMessage{Version: wire.ProtocolVersionMLS10, WireFormat: wire.WireFormatPublicMessage, PublicMessage: pm}
	}
	fresh := func() *Epoch {
		e := *p.to
		e.SecretTree = secrettree.New(p.suite, bytes.Repeat([]byte{3}, p.suite.Nh()), 4)
		return &e
	}
	cases := []struct {
		name string
		msg  func() *wire.MLSMessage
		want error
	}{
		{"private message of another group", func() *wire.MLSMessage {
			m := priv()
			m.PrivateMessage.GroupID = []byte("other")
			return m
		}, ErrWrongGroup},
		{"private message of another epoch", func() *wire.MLSMessage {
			m := priv()
			m.PrivateMessage.Epoch = 6
			return m
		}, ErrWrongEpoch},
		{"public message of another epoch", func() *wire.MLSMessage {
			return pub(func(c *wire.FramedContent) { c.Epoch = 8 })
		}, ErrWrongEpoch},
		{"private message with altered authenticated data", func() *wire.MLSMessage {
			m := priv()
			m.PrivateMessage.AuthenticatedData = []byte("AAD")
			return m
		}, ErrDecrypt},
		{"private message with altered content type", func() *wire.MLSMessage {
			m := priv()
			m.PrivateMessage.ContentType = wire.ContentTypeProposal
			return m
		}, ErrDecrypt},
		{"private message with altered sender data", func() *wire.MLSMessage {
			m := priv()
			m.PrivateMessage.EncryptedSenderData[0] ^= 1
			return m
		}, ErrDecrypt},
		{"application data in a public message", func() *wire.MLSMessage {
			m := pub(nil)
			m.PublicMessage.Content.ContentType = wire.ContentTypeApplication
			m.PublicMessage.Content.Proposal = nil
			m.PublicMessage.Content.ApplicationData = []byte("x")
			return m
		}, ErrApplicationPublic},
		{"public message from a non-member leaf", func() *wire.MLSMessage {
			return pub(func(c *wire.FramedContent) { c.Sender.LeafIndex = 3 })
		}, ErrSender},
		{"commit from an external sender", func() *wire.MLSMessage {
			m := pub(nil)
			c := &m.PublicMessage.Content
			c.Sender = wire.Sender{SenderType: wire.SenderTypeExternal}
			c.ContentType, c.Proposal, c.Commit = wire.ContentTypeCommit, nil, &wire.Commit{}
			return m
		}, ErrSender},
		{"public message with a wrong membership tag", func() *wire.MLSMessage {
			m := pub(nil)
			m.PublicMessage.MembershipTag[0] ^= 1
			return m
		}, ErrMembershipTag},
		{"external proposal with a wrong signature", func() *wire.MLSMessage {
			// The membership tag covers a member's signature; an external
			// sender's message has no tag, so the signature check decides.
			m := pub(func(c *wire.FramedContent) { c.Sender = wire.Sender{SenderType: wire.SenderTypeExternal} })
			m.PublicMessage.Auth.Signature[0] ^= 1
			return m
		}, ErrSignature},
		{"welcome", func() *wire.MLSMessage {
			return &wire.MLSMessage{Version: wire.ProtocolVersionMLS10, WireFormat: wire.WireFormatWelcome, Welcome: &wire.Welcome{}}
		}, ErrWireFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := fresh().Unprotect(c.msg(), p.keys)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestEpochPrivateMessageFromBlankLeafIsRejected(t *testing.T) {
	p := newPair(t, 1)
	// Leaf 1 is blank: the receiver's signature key lookup fails.
	m, err := p.from.Protect(p.signer, wire.WireFormatPrivateMessage, p.content(wire.ContentTypeApplication, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.to.Unprotect(m, p.keys); !errors.Is(err, ErrSender) {
		t.Fatalf("blank sender leaf: %v, want ErrSender", err)
	}
}

func TestEpochForgedPrivateMessageDoesNotBurnTheGenuineKey(t *testing.T) {
	p := newPair(t, 1)
	genuine, err := p.from.Protect(p.signer, wire.WireFormatPrivateMessage, p.content(wire.ContentTypeApplication, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A forgery signed by someone else, for the same leaf and generation.
	other, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	priv, _, _ := other.GenerateSignatureKeyPair()
	forger, _ := other.NewSigner(priv)
	twin := *p.from
	twin.SecretTree = secrettree.New(p.suite, bytes.Repeat([]byte{3}, p.suite.Nh()), 4)
	forged, err := twin.Protect(forger, wire.WireFormatPrivateMessage, p.content(wire.ContentTypeApplication, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.to.Unprotect(forged, p.keys); !errors.Is(err, ErrSignature) {
		t.Fatalf("forgery: %v, want ErrSignature", err)
	}
	if _, err := p.to.Unprotect(genuine, p.keys); err != nil {
		t.Fatalf("genuine message after a forgery: %v", err)
	}
	if _, err := p.to.Unprotect(genuine, p.keys); !errors.Is(err, secrettree.ErrGenerationConsumed) {
		t.Fatalf("replay: %v, want ErrGenerationConsumed", err)
	}
}

func TestEpochOutOfOrderWithinWindowAndTooFarAhead(t *testing.T) {
	p := newPair(t, 1)
	p.to.SecretTree = secrettree.NewWithConfig(p.suite, bytes.Repeat([]byte{3}, p.suite.Nh()), 4,
		secrettree.Config{MaxForwardDistance: 8, MaxSkipped: 8})
	var msgs []*wire.MLSMessage
	for range 12 {
		m, err := p.from.Protect(p.signer, wire.WireFormatPrivateMessage, p.content(wire.ContentTypeApplication, 2), nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	for _, i := range []int{3, 0, 2, 1} {
		if _, err := p.to.Unprotect(msgs[i], p.keys); err != nil {
			t.Fatalf("message %d out of order: %v", i, err)
		}
	}
	if _, err := p.to.Unprotect(msgs[11], p.keys); err != nil {
		t.Fatalf("message 11 (7 ahead): %v", err)
	}
	p2 := newPair(t, 1)
	p2.to.SecretTree = secrettree.NewWithConfig(p.suite, bytes.Repeat([]byte{3}, p.suite.Nh()), 4,
		secrettree.Config{MaxForwardDistance: 8, MaxSkipped: 8})
	if _, err := p2.to.Unprotect(msgs[11], p.keys); !errors.Is(err, secrettree.ErrGenerationTooFar) {
		t.Fatalf("message 11 as the first: %v, want ErrGenerationTooFar", err)
	}
}

func TestPaddingPolicy(t *testing.T) {
	p := newPair(t, 1)
	p.from.Padding = PadToMultiple(64)
	sizes := map[int]bool{}
	for _, n := range []int{1, 10, 20} {
		c := p.content(wire.ContentTypeApplication, 2)
		c.ApplicationData = bytes.Repeat([]byte{'x'}, n)
		m, err := p.from.Protect(p.signer, wire.WireFormatPrivateMessage, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		ct := len(m.PrivateMessage.Ciphertext) - 16 // AES-GCM tag
		if ct%64 != 0 {
			t.Errorf("padded plaintext of %d bytes of data is %d bytes, not a multiple of 64", n, ct)
		}
		sizes[ct] = true
		ac, err := p.to.Unprotect(m, p.keys)
		if err != nil || !bytes.Equal(ac.Content.ApplicationData, c.ApplicationData) {
			t.Fatalf("padded message: %v", err)
		}
	}
	if len(sizes) != 1 {
		t.Errorf("lengths 1, 10 and 20 padded to different sizes %v", sizes)
	}
	p.from.Padding = func(int) int { return MaxPadding + 1 }
	if _, err := p.from.Protect(p.signer, wire.WireFormatPrivateMessage, p.content(wire.ContentTypeApplication, 2), nil); !errors.Is(err, ErrPadding) {
		t.Errorf("oversized padding: %v, want ErrPadding", err)
	}
}

func TestProtectRefusesCommitWithoutConfirmationTagAndNonMemberPrivateSender(t *testing.T) {
	p := newPair(t, 1)
	for _, wf := range []wire.WireFormat{wire.WireFormatPublicMessage, wire.WireFormatPrivateMessage} {
		if _, err := p.from.Protect(p.signer, wf, p.content(wire.ContentTypeCommit, 2), nil); err == nil {
			t.Errorf("wire format %d: commit without confirmation tag protected", wf)
		}
	}
	c := p.content(wire.ContentTypeProposal, 0)
	c.Sender = wire.Sender{SenderType: wire.SenderTypeExternal}
	if _, err := p.from.Protect(p.signer, wire.WireFormatPrivateMessage, c, nil); !errors.Is(err, ErrSender) {
		t.Errorf("external sender in a PrivateMessage: %v, want ErrSender", err)
	}
	m, err := p.from.Protect(p.signer, wire.WireFormatPublicMessage, c, nil)
	if err != nil {
		t.Fatalf("external proposal as PublicMessage: %v", err)
	}
	if m.PublicMessage.MembershipTag != nil {
		t.Error("external sender's PublicMessage carries a membership tag")
	}
	if _, err := p.to.Unprotect(reencode(t, m), p.keys); err != nil {
		t.Errorf("external proposal: %v", err)
	}
}

func BenchmarkApplicationMessage1KiB(b *testing.B) {
	for _, id := range []ciphersuite.ID{1, 2, 3} {
		b.Run(fmt.Sprintf("suite=%#04x", id), func(b *testing.B) {
			p := newPair(b, id)
			c := p.content(wire.ContentTypeApplication, 2)
			c.ApplicationData = bytes.Repeat([]byte{'x'}, 1024)
			b.SetBytes(1024)
			b.ReportAllocs()
			for b.Loop() {
				m, err := p.from.Protect(p.signer, wire.WireFormatPrivateMessage, c, nil)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.to.Unprotect(m, p.keys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
