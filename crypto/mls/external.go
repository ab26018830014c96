package mls

import (
	"bytes"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/keyschedule"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// ExternalSender is a party outside the group allowed to send proposals,
// such as a delivery service hub (RFC 9420 §12.1.8.1).
type ExternalSender = wire.ExternalSender

// ExternalSendersExtension encodes the external_senders GroupContext
// extension (RFC 9420 §12.1.8.1); an external sender's index in senders is
// the SenderIndex of its proposals.
func ExternalSendersExtension(senders []ExternalSender) (wire.Extension, error) {
	es := wire.ExternalSenders(senders)
	return wire.NewExtension(wire.ExtensionTypeExternalSenders, &es)
}

// NewExternalProposal creates a proposal sent by the external sender with
// index senderIndex in the group's external_senders extension, signed with
// its signature key (RFC 9420 §12.1.8.1). Only Add, Remove, PreSharedKey,
// ReInit and GroupContextExtensions are allowed. The result is an encoded
// PublicMessage for the group's current epoch.
func NewExternalProposal(suite CipherSuite, groupID []byte, epoch uint64, senderIndex uint32, signaturePriv []byte, p *Proposal) ([]byte, error) {
	s, err := lookup(suite)
	if err != nil {
		return nil, err
	}
	if !senderMayPropose(wire.SenderTypeExternal, p.p.ProposalType) {
		return nil, fmt.Errorf("%w: an external sender may not propose type %d", ErrInvalidProposal, p.p.ProposalType)
	}
	prop := p.p
	ac := &wire.AuthenticatedContent{WireFormat: wire.WireFormatPublicMessage, Content: wire.FramedContent{
		GroupID: groupID, Epoch: epoch, Sender: wire.Sender{SenderType: wire.SenderTypeExternal, SenderIndex: senderIndex},
		ContentType: wire.ContentTypeProposal, Proposal: &prop}}
	tbs, err := ac.TBS(nil)
	if err != nil {
		return nil, err
	}
	if ac.Auth.Signature, err = s.SignWithLabel(signaturePriv, "FramedContentTBS", tbs); err != nil {
		return nil, err
	}
	return encodeMessage(&wire.MLSMessage{WireFormat: wire.WireFormatPublicMessage, PublicMessage: &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}})
}

// ExternalJoinOptions tunes JoinExternal.
type ExternalJoinOptions struct {
	// RatchetTree is the encoded tree when the GroupInfo has no
	// ratchet_tree extension.
	RatchetTree []byte
	// Leaf sets the joiner leaf's extra capabilities and extensions (its
	// lifetime fields are ignored: commit leaves carry none).
	Leaf *KeyPackageOptions
	// ResyncLeaf, if set, removes the joiner's own old leaf (same
	// credential identity) in the same commit (RFC 9420 §12.4.3.2).
	ResyncLeaf *uint32
	// ExternalPSKs are ids of external PSKs to inject by value (RFC 9420
	// §12.4.3.2); Config.ExternalPSK must know them.
	ExternalPSKs [][]byte
}

// JoinExternal joins a group by external commit (RFC 9420 §12.4.3.2) from
// an encoded GroupInfo MLSMessage carrying the external_pub extension. It
// returns the joined group, already in the new epoch, and the commit to
// send to the group. If the delivery service rejects the commit, discard
// the group and retry with a newer GroupInfo.
func JoinExternal(cfg *Config, groupInfo []byte, cred Credential, signaturePriv []byte, opts *ExternalJoinOptions) (*Group, []byte, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if opts == nil {
		opts = &ExternalJoinOptions{}
	}
	m, err := decodeMessage(groupInfo)
	if err != nil {
		return nil, nil, err
	}
	if m.WireFormat != wire.WireFormatGroupInfo {
		return nil, nil, fmt.Errorf("%w: not a GroupInfo", ErrInvalidWelcome)
	}
	gi := m.GroupInfo
	s, err := lookup(gi.GroupContext.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	g := &Group{cfg: cfg, suite: s, sigKey: signaturePriv}
	if g.signer, err = s.NewSigner(signaturePriv); err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	if g.tree, err = g.verifyGroupInfo(gi, opts.RatchetTree); err != nil {
		return nil, nil, err
	}
	var ep wire.ExternalPub
	if ok, err := wire.DecodeExtension(gi.Extensions, wire.ExtensionTypeExternalPub, &ep); err != nil || !ok {
		return nil, nil, fmt.Errorf("%w: no usable external_pub extension", ErrInvalidWelcome)
	}
	g.ctx = gi.GroupContext
	g.interim = keyschedule.InterimTranscriptHash(s, g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)
	// §8.3: the external init secret is exported from an HPKE context with
	// the group's external public key.
	kem, initSecret, err := s.ExportSender(ep.ExternalPub, nil, []byte("MLS 1.0 external init secret"), s.Nh())
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	self := wire.Sender{SenderType: wire.SenderTypeNewMemberCommit}
	ps := &proposalSet{items: []*pendingProposal{{proposal: &wire.Proposal{ProposalType: wire.ProposalTypeExternalInit, ExternalInit: &wire.ExternalInit{KEMOutput: kem}}, sender: self}}}
	if opts.ResyncLeaf != nil {
		ps.items = append(ps.items, &pendingProposal{proposal: &wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: *opts.ResyncLeaf}}, sender: self})
	}
	for _, id := range opts.ExternalPSKs {
		ps.items = append(ps.items, &pendingProposal{proposal: &wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
			PSKType: wire.PSKTypeExternal, ID: bytes.Clone(id), Nonce: randomBytes(s.Nh())}}}, sender: self})
	}
	commit := &wire.Commit{}
	byValue := make([]bool, len(ps.items))
	for i, it := range ps.items {
		byValue[i] = true
		commit.Proposals = append(commit.Proposals, wire.ProposalOrRef{Type: wire.ProposalOrRefTypeProposal, Proposal: it.proposal})
	}
	pol, err := g.policy()
	if err != nil {
		return nil, nil, err
	}
	if err := g.validateList(ps, self, byValue, pol); err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	a, err := g.apply(ps)
	if err != nil {
		return nil, nil, err
	}
	_, tmpPub, err := s.GenerateKEMKeyPair()
	if err != nil {
		return nil, nil, err
	}
	ln := &wire.LeafNode{EncryptionKey: tmpPub, SignatureKey: g.signer.Public(), Credential: cred,
		Capabilities: defaultCapabilities(s, &cred, opts.Leaf), LeafNodeSource: wire.LeafNodeSourceCommit}
	if opts.Leaf != nil {
		ln.Extensions = opts.Leaf.LeafExtensions
	}
	me, err := a.tree.AddLeaf(ln)
	if err != nil {
		return nil, nil, err
	}
	ctx := g.ctx
	ctx.Epoch++
	ctx.Extensions = a.extensions
	path, err := a.tree.CreateUpdatePath(tree.PathParams{Leaf: me, LeafNode: ln, Signer: g.signer, GroupID: ctx.GroupID,
		GroupContext: func(th []byte) ([]byte, error) {
			c := ctx
			c.TreeHash = th
			return codec.Marshal(&c)
		}})
	if err != nil {
		return nil, nil, fmt.Errorf("mls: external join: %w", err)
	}
	commit.Path = path.Path
	if ctx.TreeHash, err = a.tree.RootHash(); err != nil {
		return nil, nil, err
	}
	ac, err := g.signContent(wire.WireFormatPublicMessage, &wire.FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: self, ContentType: wire.ContentTypeCommit, Commit: commit})
	if err != nil {
		return nil, nil, err
	}
	in, err := ac.ConfirmedTranscriptHashInput()
	if err != nil {
		return nil, nil, err
	}
	ctx.ConfirmedTranscriptHash = keyschedule.ConfirmedTranscriptHash(s, g.interim, in)
	gc, err := codec.Marshal(&ctx)
	if err != nil {
		return nil, nil, err
	}
	psk, err := g.pskSecret(a.psks)
	if err != nil {
		return nil, nil, err
	}
	e, err := keyschedule.Derive(s, initSecret, path.CommitSecret, psk, gc)
	if err != nil {
		return nil, nil, err
	}
	ac.Auth.ConfirmationTag = keyschedule.ConfirmationTag(s, e.ConfirmationKey, ctx.ConfirmedTranscriptHash)
	msg, err := g.protect(ac, 0)
	if err != nil {
		return nil, nil, err
	}
	g.merge(&stagedCommit{ctx: ctx, tree: a.tree, keys: path.Keys, epoch: e,
		interim: keyschedule.InterimTranscriptHash(s, ctx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag), confTag: ac.Auth.ConfirmationTag})
	return g, msg, nil
}
