package mls

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/keyschedule"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// ErrProposalNotSeen means a commit references a proposal (by its
// ProposalRef, RFC 9420 §12.4) that the public group never stored, e.g.
// because it was sent as a PrivateMessage the observer cannot read.
var ErrProposalNotSeen = errors.New("mls: commit references a proposal the observer has not seen")

// PublicGroup is the view of a group that a party without any group secret
// has — a delivery service or a room's hub (RFC 9420 §1, §16.4: the
// delivery service sees PublicMessage handshake messages and the public
// group state). It starts from a GroupInfo and its ratchet tree and follows
// the group across epochs by applying PublicMessage commits to the public
// ratchet tree, the GroupContext and the transcript hashes.
//
// What it verifies is what a non-member can verify (RFC 9420 §6.1, §6.2):
// the sender's signature over FramedContentTBS, which includes the current
// GroupContext, with the sender leaf's signature key from the tree (or the
// external sender's, or the joiner's for external commits); the proposal
// list rules of §12.2; every new leaf and KeyPackage (§7.3, §10.1, with the
// Config's CredentialValidator); the UpdatePath's public keys and parent
// hashes (§7.9). It cannot check the membership tag (membership_key) or the
// confirmation tag (confirmation_key), so it accepts a commit that a member
// with the right signature key produced even if the commit's secrets are
// wrong; members then reject it. A PublicGroup is not safe for concurrent
// use.
type PublicGroup struct {
	g *Group // cfg, suite, ctx, tree, interim, confTag, pending; no keys, no secrets
}

// NewPublicGroup creates a public group from an encoded GroupInfo MLSMessage
// and, if the GroupInfo has no ratchet_tree extension, the encoded ratchet
// tree. It verifies the tree (tree hash against the GroupContext, parent
// hashes, every leaf with cfg's CredentialValidator) and the GroupInfo
// signature by its signer leaf (RFC 9420 §12.4.3.1). The GroupInfo's
// confirmation tag cannot be verified without group secrets: a signer that
// lies in it only makes the observer refuse the next epoch's messages.
// Errors wrap ErrInvalidWelcome.
func NewPublicGroup(cfg *Config, groupInfo, ratchetTree []byte) (*PublicGroup, error) {
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
	if g.tree, err = g.verifyGroupInfo(gi, ratchetTree); err != nil {
		return nil, err
	}
	g.ctx = gi.GroupContext
	g.interim = keyschedule.InterimTranscriptHash(s, g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)
	g.confTag = gi.ConfirmationTag
	return &PublicGroup{g: g}, nil
}

// GroupID returns the group's identifier.
func (p *PublicGroup) GroupID() []byte { return bytes.Clone(p.g.ctx.GroupID) }

// Epoch returns the current epoch number.
func (p *PublicGroup) Epoch() uint64 { return p.g.ctx.Epoch }

// CipherSuite returns the group's cipher suite.
func (p *PublicGroup) CipherSuite() CipherSuite { return p.g.suite.ID() }

// Extensions returns the current GroupContext extensions.
func (p *PublicGroup) Extensions() []Extension { return p.g.ctx.Extensions }

// Members returns the group's members in leaf order.
func (p *PublicGroup) Members() []Member { return p.g.Members() }

// Member returns the member at leaf, or false if the leaf is blank or out
// of range.
func (p *PublicGroup) Member(leaf uint32) (Member, bool) {
	if leaf >= p.g.tree.LeafCount() || p.g.tree.Leaf(leaf) == nil {
		return Member{}, false
	}
	ln := p.g.tree.Leaf(leaf)
	return Member{LeafIndex: leaf, Credential: ln.Credential, SignatureKey: bytes.Clone(ln.SignatureKey)}, true
}

// RatchetTree returns the encoded ratchet tree of the current epoch, e.g.
// to hand to a joiner whose Welcome has no inline tree.
func (p *PublicGroup) RatchetTree() ([]byte, error) { return p.g.tree.Encode() }

// ReInit returns the ReInit proposal a commit applied (RFC 9420 §11.2), or
// nil; a reinitialized group accepts no further messages.
func (p *PublicGroup) ReInit() *wire.ReInit { return p.g.reinit }

// ProposalInfo describes one proposal of a commit, or a stored proposal, as
// a non-member sees it.
type ProposalInfo struct {
	// Type is the proposal type (RFC 9420 §17.4): 1 add, 2 update, 3
	// remove, 4 psk, 5 reinit, 6 external_init, 7 group_context_extensions.
	Type uint16
	// ByReference is set for proposals a commit names by ProposalRef.
	ByReference bool
	// SenderType (RFC 9420 §6: 1 member, 2 external, 3 new_member_proposal,
	// 4 new_member_commit) and Sender, the sender's leaf index for members
	// or its index in external_senders for external senders.
	SenderType uint8
	Sender     uint32
	// SenderCredential is the credential of a member sender's leaf (before
	// the commit), or of the joiner for new member senders.
	SenderCredential *Credential
	// Added is the credential of an Add's KeyPackage.
	Added *Credential
	// Removed is the leaf an Remove removes and RemovedCredential its
	// credential.
	Removed           uint32
	RemovedCredential *Credential
	// Updated is the credential of an Update's new leaf.
	Updated *Credential
	// Extensions are the new GroupContext extensions of a
	// GroupContextExtensions proposal.
	Extensions []Extension
}

// PublicCommit is a verified commit staged against a PublicGroup: what the
// commit does, and the next epoch's public state, installed by Merge.
type PublicCommit struct {
	// Epoch is the epoch the commit was sent in; Merge moves to Epoch+1.
	Epoch uint64
	// Committer is the committer's leaf index (for an external commit, the
	// joiner's new leaf), External whether it is an external commit
	// (new_member_commit, RFC 9420 §12.4.3.2).
	Committer uint32
	External  bool
	// CommitterCredential is the committer's credential before the commit
	// (the joiner's for an external commit).
	CommitterCredential Credential
	// PathCredential is the credential of the committer's leaf in the
	// UpdatePath, or nil without a path.
	PathCredential *Credential
	// Proposals are the commit's proposals in order.
	Proposals []ProposalInfo
	// OldExtensions and Extensions are the GroupContext extensions before
	// and after the commit.
	OldExtensions, Extensions []Extension
	// Members are the members after the commit, in leaf order; Added and
	// Removed the leaves the commit added (including an external joiner)
	// and removed.
	Members        []Member
	Added, Removed []uint32

	next *publicEpoch
}

// publicEpoch is the public state of an epoch.
type publicEpoch struct {
	ctx     wire.GroupContext
	tree    *tree.Tree
	interim []byte
	confTag []byte
	reinit  *wire.ReInit
}

// verify authenticates a PublicMessage of the current epoch as a
// non-member can (RFC 9420 §6.1): group, epoch, content type, and the
// sender's signature over FramedContentTBS with the current GroupContext.
func (p *PublicGroup) verify(data []byte) (*wire.AuthenticatedContent, error) {
	g := p.g
	if g.reinit != nil {
		return nil, fmt.Errorf("mls: group was reinitialized")
	}
	m, err := decodeMessage(data)
	if err != nil {
		return nil, err
	}
	if m.WireFormat != wire.WireFormatPublicMessage {
		return nil, fmt.Errorf("%w: wire format %d is not a PublicMessage", ErrInvalidMessage, m.WireFormat)
	}
	pm := m.PublicMessage
	if !bytes.Equal(pm.Content.GroupID, g.ctx.GroupID) {
		return nil, ErrWrongGroup
	}
	if pm.Content.Epoch != g.ctx.Epoch {
		return nil, fmt.Errorf("%w: epoch %d, group at %d", ErrWrongEpoch, pm.Content.Epoch, g.ctx.Epoch)
	}
	if pm.Content.ContentType == wire.ContentTypeApplication {
		return nil, fmt.Errorf("%w: application data in a PublicMessage", ErrInvalidMessage)
	}
	if pm.Content.Sender.SenderType != wire.SenderTypeMember && pm.MembershipTag != nil {
		return nil, fmt.Errorf("%w: membership tag from a non-member", ErrInvalidMessage)
	}
	ac := pm.AuthenticatedContent()
	key, err := g.senderSignatureKey(&ac.Content)
	if err != nil {
		return nil, err
	}
	tbs, err := ac.TBS(&g.ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if err := g.suite.VerifyWithLabel(key, "FramedContentTBS", tbs, ac.Auth.Signature); err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrInvalidMessage, err)
	}
	return ac, nil
}

// VerifyProposal verifies a PublicMessage proposal of the current epoch
// (signature, and the proposal's validity, RFC 9420 §12.1) without storing
// it, and returns what it does.
func (p *PublicGroup) VerifyProposal(data []byte) (*ProposalInfo, error) {
	ac, err := p.verifyProposal(data)
	if err != nil {
		return nil, err
	}
	info := p.describe(&pendingProposal{proposal: ac.Content.Proposal, sender: ac.Content.Sender}, true)
	return &info, nil
}

func (p *PublicGroup) verifyProposal(data []byte) (*wire.AuthenticatedContent, error) {
	ac, err := p.verify(data)
	if err != nil {
		return nil, err
	}
	if ac.Content.ContentType != wire.ContentTypeProposal {
		return nil, fmt.Errorf("%w: content type %d is not a proposal", ErrInvalidMessage, ac.Content.ContentType)
	}
	pol, err := p.g.policy()
	if err != nil {
		return nil, err
	}
	if err := p.g.checkProposal(ac.Content.Proposal, ac.Content.Sender, pol); err != nil {
		return nil, err
	}
	return ac, nil
}

// StoreProposal verifies a PublicMessage proposal as VerifyProposal does
// and stores it so that commits of this epoch may reference it.
func (p *PublicGroup) StoreProposal(data []byte) (*ProposalInfo, error) {
	ac, err := p.verifyProposal(data)
	if err != nil {
		return nil, err
	}
	if err := p.g.storeProposal(ac); err != nil {
		return nil, err
	}
	info := p.describe(&pendingProposal{proposal: ac.Content.Proposal, sender: ac.Content.Sender}, true)
	return &info, nil
}

// StageCommit verifies a PublicMessage commit of the current epoch and
// computes the next epoch's public state without installing it: the
// signature (RFC 9420 §6.1), the referenced proposals (which must have been
// stored with StoreProposal, else ErrProposalNotSeen), the proposal list
// (§12.2), the new leaves and the UpdatePath's public keys and parent
// hashes (§12.4.2), the new tree hash and confirmed transcript hash. Call
// Merge to move to the next epoch. Errors wrap ErrWrongGroup,
// ErrWrongEpoch, ErrInvalidMessage, ErrInvalidCommit or ErrInvalidProposal.
func (p *PublicGroup) StageCommit(data []byte) (*PublicCommit, error) {
	g := p.g
	ac, err := p.verify(data)
	if err != nil {
		return nil, err
	}
	if ac.Content.ContentType != wire.ContentTypeCommit {
		return nil, fmt.Errorf("%w: content type %d is not a commit", ErrInvalidMessage, ac.Content.ContentType)
	}
	c, sender := ac.Content.Commit, ac.Content.Sender
	if sender.SenderType != wire.SenderTypeMember && sender.SenderType != wire.SenderTypeNewMemberCommit {
		return nil, fmt.Errorf("%w: sender type %d", ErrInvalidCommit, sender.SenderType)
	}
	for _, por := range c.Proposals {
		if por.Type == wire.ProposalOrRefTypeReference && !p.hasProposal(por.Reference) {
			return nil, fmt.Errorf("%w: %w: reference %x", ErrInvalidCommit, ErrProposalNotSeen, por.Reference)
		}
	}
	ps, byValue, err := g.resolveProposals(c, sender)
	if err != nil {
		return nil, err
	}
	pol, err := g.policy()
	if err != nil {
		return nil, err
	}
	if err := g.validateList(ps, sender, byValue, pol); err != nil {
		return nil, err
	}
	if pathRequired(ps) && c.Path == nil {
		return nil, fmt.Errorf("%w: path required", ErrInvalidCommit)
	}
	a, err := g.apply(ps)
	if err != nil {
		return nil, err
	}
	if err := checkAllCapabilities(g, a); err != nil {
		return nil, err
	}
	newPol, err := g.cfg.policy(a.extensions)
	if err != nil {
		return nil, err
	}
	pc := &PublicCommit{Epoch: g.ctx.Epoch, Committer: sender.LeafIndex, External: sender.SenderType == wire.SenderTypeNewMemberCommit,
		OldExtensions: g.ctx.Extensions, Extensions: a.extensions, Added: a.added, Removed: a.removed}
	for i, it := range ps.items {
		pc.Proposals = append(pc.Proposals, p.describe(it, !byValue[i]))
	}
	if pc.External {
		pc.Committer = a.tree.NextLeaf()
		pc.CommitterCredential = c.Path.LeafNode.Credential
		if err := p.addJoiner(a.tree, ps, byValue, &c.Path.LeafNode, pc.Committer, newPol); err != nil {
			return nil, err
		}
		pc.Added = append(pc.Added, pc.Committer)
	} else {
		pc.CommitterCredential = g.tree.Leaf(sender.LeafIndex).Credential
	}
	if c.Path != nil {
		if !pc.External {
			if err := a.tree.ValidateLeafNode(&c.Path.LeafNode, tree.LeafCheck{Source: wire.LeafNodeSourceCommit, GroupID: g.ctx.GroupID, LeafIndex: pc.Committer}, newPol); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
			}
		}
		if err := a.tree.MergeUpdatePath(pc.Committer, c.Path); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		// Every member must find its ciphertext (RFC 9420 §12.4.2); the
		// observer checks the counts it can check without keys.
		if err := a.tree.CheckPathCiphertexts(pc.Committer, c.Path, a.added); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		cred := c.Path.LeafNode.Credential
		pc.PathCredential = &cred
	}
	next := &publicEpoch{ctx: g.ctx, tree: a.tree, reinit: a.reinit, confTag: ac.Auth.ConfirmationTag}
	next.ctx.Epoch++
	next.ctx.Extensions = a.extensions
	if next.ctx.TreeHash, err = a.tree.RootHash(); err != nil {
		return nil, err
	}
	// RFC 9420 §8.2: the transcript hashes need no secret.
	in, err := ac.ConfirmedTranscriptHashInput()
	if err != nil {
		return nil, err
	}
	next.ctx.ConfirmedTranscriptHash = keyschedule.ConfirmedTranscriptHash(g.suite, g.interim, in)
	next.interim = keyschedule.InterimTranscriptHash(g.suite, next.ctx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag)
	pc.next = next
	for _, i := range a.tree.Members() {
		ln := a.tree.Leaf(i)
		pc.Members = append(pc.Members, Member{LeafIndex: i, Credential: ln.Credential, SignatureKey: bytes.Clone(ln.SignatureKey)})
	}
	return pc, nil
}

// addJoiner validates an external joiner's leaf and adds it to t (RFC 9420
// §12.4.3.2); a resync Remove by value must remove a leaf of the joiner's
// own identity.
func (p *PublicGroup) addJoiner(t *tree.Tree, ps *proposalSet, byValue []bool, ln *wire.LeafNode, leaf uint32, pol *tree.Policy) error {
	if err := t.ValidateLeafNode(ln, tree.LeafCheck{Source: wire.LeafNodeSourceCommit, GroupID: p.g.ctx.GroupID, LeafIndex: leaf}, pol); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	joiner := *ln
	if _, err := t.AddLeaf(&joiner); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	for i, it := range ps.items {
		if byValue[i] && it.proposal.ProposalType == wire.ProposalTypeRemove {
			old := p.g.tree.Leaf(it.proposal.Remove.Removed).Credential
			if old.CredentialType != ln.Credential.CredentialType || !bytes.Equal(old.Identity, ln.Credential.Identity) {
				return fmt.Errorf("%w: external commit removes another member", ErrInvalidCommit)
			}
		}
	}
	return nil
}

// ProcessCommit is StageCommit followed by Merge.
func (p *PublicGroup) ProcessCommit(data []byte) (*PublicCommit, error) {
	pc, err := p.StageCommit(data)
	if err != nil {
		return nil, err
	}
	if err := p.Merge(pc); err != nil {
		return nil, err
	}
	return pc, nil
}

// Merge installs a staged commit's epoch. It fails with ErrWrongEpoch if
// the group moved on since the commit was staged.
func (p *PublicGroup) Merge(pc *PublicCommit) error {
	g := p.g
	if pc == nil || pc.next == nil {
		return ErrNoPendingCommit
	}
	if pc.Epoch != g.ctx.Epoch {
		return fmt.Errorf("%w: commit staged at epoch %d, group at %d", ErrWrongEpoch, pc.Epoch, g.ctx.Epoch)
	}
	n := pc.next
	g.ctx, g.tree, g.interim, g.confTag, g.reinit = n.ctx, n.tree, n.interim, n.confTag, n.reinit
	g.pending = nil
	pc.next = nil
	return nil
}

func (p *PublicGroup) hasProposal(ref []byte) bool {
	for _, pp := range p.g.pending {
		if bytes.Equal(pp.ref, ref) {
			return true
		}
	}
	return false
}

// describe summarizes a proposal against the current state.
func (p *PublicGroup) describe(it *pendingProposal, byRef bool) ProposalInfo {
	t := p.g.tree
	pr := it.proposal
	info := ProposalInfo{Type: uint16(pr.ProposalType), ByReference: byRef, SenderType: uint8(it.sender.SenderType), Sender: it.sender.LeafIndex}
	switch it.sender.SenderType {
	case wire.SenderTypeMember:
		if ln := t.Leaf(it.sender.LeafIndex); it.sender.LeafIndex < t.LeafCount() && ln != nil {
			c := ln.Credential
			info.SenderCredential = &c
		}
	case wire.SenderTypeExternal:
		info.Sender = it.sender.SenderIndex
	case wire.SenderTypeNewMemberProposal:
		c := pr.Add.KeyPackage.LeafNode.Credential
		info.SenderCredential = &c
	}
	switch pr.ProposalType {
	case wire.ProposalTypeAdd:
		c := pr.Add.KeyPackage.LeafNode.Credential
		info.Added = &c
	case wire.ProposalTypeUpdate:
		c := pr.Update.LeafNode.Credential
		info.Updated = &c
	case wire.ProposalTypeRemove:
		info.Removed = pr.Remove.Removed
		if ln := t.Leaf(info.Removed); info.Removed < t.LeafCount() && ln != nil {
			c := ln.Credential
			info.RemovedCredential = &c
		}
	case wire.ProposalTypeGroupContextExtensions:
		info.Extensions = pr.GroupContextExtensions.Extensions
	}
	return info
}

// publicStateVersion is the version of PublicGroup.Marshal's encoding.
const publicStateVersion = 1

// Marshal encodes the public group state so a hub can persist it: the
// GroupContext, the ratchet tree, the transcript hash state, the stored
// proposals and a completed ReInit. It holds no secret.
func (p *PublicGroup) Marshal() ([]byte, error) {
	g := p.g
	var w codec.Writer
	w.WriteUint8(publicStateVersion)
	g.ctx.MarshalMLS(&w)
	g.tree.MarshalMLS(&w)
	w.WriteOpaque(g.interim)
	w.WriteOpaque(g.confTag)
	w.WriteVector(func(w *codec.Writer) {
		for _, pp := range g.pending {
			w.WriteOpaque(pp.ref)
			pp.proposal.MarshalMLS(w)
			pp.sender.MarshalMLS(w)
		}
	})
	w.WriteOptional(g.reinit != nil, func(w *codec.Writer) { g.reinit.MarshalMLS(w) })
	return w.Bytes()
}

// UnmarshalPublicGroup loads a state written by PublicGroup.Marshal; the
// tree must match the GroupContext's tree hash. Errors wrap ErrInvalidState.
func UnmarshalPublicGroup(cfg *Config, data []byte) (pg *PublicGroup, err error) {
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrInvalidState, len(data))
	}
	if cfg == nil {
		cfg = &Config{}
	}
	defer func() {
		if err != nil {
			pg, err = nil, fmt.Errorf("%w: %w", ErrInvalidState, err)
		}
	}()
	r := codec.NewReader(data)
	v, err := r.ReadUint8()
	if err != nil {
		return nil, err
	}
	if v != publicStateVersion {
		return nil, fmt.Errorf("public state version %d", v)
	}
	g := &Group{cfg: cfg}
	if err := g.ctx.UnmarshalMLS(r); err != nil {
		return nil, err
	}
	if g.suite, err = lookup(g.ctx.CipherSuite); err != nil {
		return nil, err
	}
	var rt wire.RatchetTree
	if err := rt.UnmarshalMLS(r); err != nil {
		return nil, err
	}
	if g.tree, err = tree.FromRatchetTree(g.suite, rt); err != nil {
		return nil, err
	}
	th, err := g.tree.RootHash()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(th, g.ctx.TreeHash) {
		return nil, fmt.Errorf("tree hash does not match the group context")
	}
	if g.interim, err = r.ReadOpaque(); err != nil {
		return nil, err
	}
	if g.confTag, err = r.ReadOpaque(); err != nil {
		return nil, err
	}
	if len(g.interim) != g.suite.Nh() {
		return nil, fmt.Errorf("interim transcript hash of %d bytes", len(g.interim))
	}
	err = r.ReadVector(func(r *codec.Reader) error {
		pp := &pendingProposal{proposal: &wire.Proposal{}}
		var err error
		if pp.ref, err = r.ReadOpaque(); err != nil {
			return err
		}
		if err := pp.proposal.UnmarshalMLS(r); err != nil {
			return err
		}
		if err := pp.sender.UnmarshalMLS(r); err != nil {
			return err
		}
		g.pending = append(g.pending, pp)
		return nil
	})
	if err != nil {
		return nil, err
	}
	hasReinit, err := r.ReadOptional()
	if err != nil {
		return nil, err
	}
	if hasReinit {
		g.reinit = &wire.ReInit{}
		if err := g.reinit.UnmarshalMLS(r); err != nil {
			return nil, err
		}
	}
	if err := r.Finish(); err != nil {
		return nil, err
	}
	return &PublicGroup{g: g}, nil
}
