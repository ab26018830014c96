package mls

import (
	"bytes"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// What parties outside a group need: reading a GroupInfo, proposing to join
// (new_member_proposal), and the external_senders extension's entries.

// ExtensionType identifies an extension (RFC 9420 §17.3).
type ExtensionType = wire.ExtensionType

// GroupInfoDetails is what a verified GroupInfo says about its group.
type GroupInfoDetails struct {
	GroupID     []byte
	Epoch       uint64
	CipherSuite CipherSuite
	// Extensions are the GroupContext extensions.
	Extensions []Extension
	// Members are the group's members in leaf order.
	Members []Member
}

// InspectGroupInfo verifies an encoded GroupInfo MLSMessage — its ratchet
// tree (from the ratchet_tree extension, else ratchetTree) and its
// signature by the signer leaf (RFC 9420 §12.4.3.1) — and returns what it
// says about the group. External senders and new devices use it before
// proposing to or joining a group. Errors wrap ErrInvalidWelcome.
func InspectGroupInfo(cfg *Config, groupInfo, ratchetTree []byte) (*GroupInfoDetails, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	m, err := decodeMessage(groupInfo)
	if err != nil {
		return nil, err
	}
	if m.WireFormat != wire.WireFormatGroupInfo {
		return nil, fmt.Errorf("%w: not a GroupInfo", ErrInvalidWelcome)
	}
	gi := m.GroupInfo
	s, err := lookup(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, err
	}
	g := &Group{cfg: cfg, suite: s}
	t, err := g.verifyGroupInfo(gi, ratchetTree)
	if err != nil {
		return nil, err
	}
	d := &GroupInfoDetails{GroupID: bytes.Clone(gi.GroupContext.GroupID), Epoch: gi.GroupContext.Epoch,
		CipherSuite: s.ID(), Extensions: gi.GroupContext.Extensions}
	for _, i := range t.Members() {
		ln := t.Leaf(i)
		d.Members = append(d.Members, Member{LeafIndex: i, Credential: ln.Credential, SignatureKey: bytes.Clone(ln.SignatureKey)})
	}
	return d, nil
}

// NewMemberAddProposal creates the Add proposal by which the owner of
// keyPackage (an encoded KeyPackage MLSMessage, signed with signaturePriv)
// asks to join the group of groupInfo (an encoded GroupInfo MLSMessage):
// a PublicMessage from a new_member_proposal sender for the GroupInfo's
// epoch (RFC 9420 §12.1.8). A member commits it; the joiner then joins
// from the Welcome with JoinFromWelcome.
func NewMemberAddProposal(groupInfo, keyPackage, signaturePriv []byte) ([]byte, error) {
	gm, err := decodeMessage(groupInfo)
	if err != nil {
		return nil, err
	}
	if gm.WireFormat != wire.WireFormatGroupInfo {
		return nil, fmt.Errorf("%w: not a GroupInfo", ErrInvalidWelcome)
	}
	p, err := AddProposal(keyPackage)
	if err != nil {
		return nil, err
	}
	gc := &gm.GroupInfo.GroupContext
	if p.p.Add.KeyPackage.CipherSuite != gc.CipherSuite {
		return nil, fmt.Errorf("%w: key package of another cipher suite", ErrInvalidProposal)
	}
	s, err := lookup(gc.CipherSuite)
	if err != nil {
		return nil, err
	}
	signer, err := s.NewSigner(signaturePriv)
	if err != nil {
		return nil, fmt.Errorf("mls: new member proposal: %w", err)
	}
	if !bytes.Equal(signer.Public(), p.p.Add.KeyPackage.LeafNode.SignatureKey) {
		return nil, fmt.Errorf("%w: signature key is not the key package's", ErrInvalidProposal)
	}
	prop := p.p
	ac := &wire.AuthenticatedContent{WireFormat: wire.WireFormatPublicMessage, Content: wire.FramedContent{
		GroupID: gc.GroupID, Epoch: gc.Epoch, Sender: wire.Sender{SenderType: wire.SenderTypeNewMemberProposal},
		ContentType: wire.ContentTypeProposal, Proposal: &prop}}
	tbs, err := ac.TBS(nil)
	if err != nil {
		return nil, err
	}
	if ac.Auth.Signature, err = signer.SignWithLabel("FramedContentTBS", tbs); err != nil {
		return nil, fmt.Errorf("mls: new member proposal: %w", err)
	}
	return encodeMessage(&wire.MLSMessage{WireFormat: wire.WireFormatPublicMessage, PublicMessage: &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}})
}

// ExternalSenders returns the entries of the external_senders extension
// among exts (RFC 9420 §12.1.8.1), or nil if there is none.
func ExternalSenders(exts []Extension) ([]ExternalSender, error) {
	var es wire.ExternalSenders
	if _, err := wire.DecodeExtension(exts, wire.ExtensionTypeExternalSenders, &es); err != nil {
		return nil, fmt.Errorf("mls: external senders: %w", err)
	}
	return es, nil
}

// MarshalExternalSender encodes one ExternalSender entry (RFC 9420
// §12.1.8.1): its signature key and credential.
func MarshalExternalSender(e ExternalSender) ([]byte, error) { return codec.Marshal(&e) }

// UnmarshalExternalSender decodes one ExternalSender entry.
func UnmarshalExternalSender(data []byte) (ExternalSender, error) {
	var e ExternalSender
	if err := codec.Unmarshal(data, &e); err != nil {
		return ExternalSender{}, fmt.Errorf("mls: external sender: %w", err)
	}
	return e, nil
}

// PendingRatchetTree returns the encoded ratchet tree of the epoch the own
// staged commit (Commit) leads to, for joiners when the Welcome does not
// carry the tree; ErrNoPendingCommit if there is none.
func (g *Group) PendingRatchetTree() ([]byte, error) {
	if g.staged == nil {
		return nil, ErrNoPendingCommit
	}
	return g.staged.tree.Encode()
}

// NewExternalPSKProposal proposes injecting the external PSK id (RFC 9420
// §12.1.4) in a group of suite, for senders without a Group (external
// senders, NewExternalProposal); members use Group.ExternalPSKProposal.
func NewExternalPSKProposal(suite CipherSuite, id []byte) (*Proposal, error) {
	s, err := lookup(suite)
	if err != nil {
		return nil, err
	}
	return &Proposal{wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
		PSKType: wire.PSKTypeExternal, ID: bytes.Clone(id), Nonce: randomBytes(s.Nh())}}}}, nil
}

// NewResumptionPSKProposal proposes injecting the resumption PSK of epoch
// of group groupID (usage application, RFC 9420 §12.1.4) in a group of
// suite, for senders without a Group; members use
// Group.ResumptionPSKProposal.
func NewResumptionPSKProposal(suite CipherSuite, groupID []byte, epoch uint64) (*Proposal, error) {
	s, err := lookup(suite)
	if err != nil {
		return nil, err
	}
	return &Proposal{wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
		PSKType: wire.PSKTypeResumption, Usage: wire.ResumptionPSKUsageApplication, GroupID: bytes.Clone(groupID), PSKEpoch: epoch, Nonce: randomBytes(s.Nh())}}}}, nil
}
