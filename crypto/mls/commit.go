package mls

import (
	"bytes"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/keyschedule"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// ResultKind says what ProcessMessage did with a message.
type ResultKind int

// Result kinds.
const (
	// ResultApplication: Result.ApplicationData holds decrypted data.
	ResultApplication ResultKind = iota + 1
	// ResultProposal: the proposal was stored for a later commit.
	ResultProposal
	// ResultCommit: the commit was applied; the group is in a new epoch.
	ResultCommit
)

// Result is the outcome of ProcessMessage.
type Result struct {
	Kind ResultKind
	// Sender is the sender's leaf index (member senders), or the
	// external_senders index for external senders; SenderType tells which.
	Sender     uint32
	SenderType uint8
	// SenderCredential is the credential of a member sender (as it was
	// before a commit it sent was applied).
	SenderCredential *Credential
	// ApplicationData and AuthenticatedData of an application message.
	ApplicationData   []byte
	AuthenticatedData []byte
	// ProposalType of a stored proposal.
	ProposalType uint16
	// Added and Removed leaf indexes of an applied commit.
	Added, Removed []uint32
}

// ProcessMessage authenticates and handles an encoded MLSMessage of the
// group: application data is decrypted, proposals are stored for a later
// commit, and commits are validated (RFC 9420 §12.2) and applied (§12.4.2).
// A commit sent by the own member is merged only if it is the pending one
// created by Commit; other messages the own member sent cannot be processed
// again (its ratchet keys are used up), so the application skips its own
// echoes. Messages of other epochs fail with ErrWrongEpoch.
func (g *Group) ProcessMessage(data []byte) (*Result, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	m, err := decodeMessage(data)
	if err != nil {
		return nil, err
	}
	if m.WireFormat == wire.WireFormatPublicMessage && m.PublicMessage.Content.ContentType == wire.ContentTypeCommit &&
		m.PublicMessage.Content.Sender.SenderType == wire.SenderTypeMember && m.PublicMessage.Content.Sender.LeafIndex == g.keys.LeafIndex() {
		if g.staged != nil && bytes.Equal(g.staged.message, data) {
			res := g.staged.result
			if err := g.MergePendingCommit(); err != nil {
				return nil, err
			}
			return res, nil
		}
		return nil, fmt.Errorf("%w: own commit that is not pending", ErrInvalidMessage)
	}
	if g.staged != nil && bytes.Equal(g.staged.message, data) {
		res := g.staged.result
		if err := g.MergePendingCommit(); err != nil {
			return nil, err
		}
		return res, nil
	}
	if res, ok, err := g.processPastEpoch(m); ok {
		return res, err
	}
	ac, err := g.unprotect(m)
	if err != nil {
		return nil, err
	}
	res := &Result{SenderType: uint8(ac.Content.Sender.SenderType), Sender: ac.Content.Sender.LeafIndex}
	if ac.Content.Sender.SenderType == wire.SenderTypeExternal {
		res.Sender = ac.Content.Sender.SenderIndex
	}
	if ac.Content.Sender.SenderType == wire.SenderTypeMember {
		c := g.tree.Leaf(ac.Content.Sender.LeafIndex).Credential
		res.SenderCredential = &c
	}
	switch ac.Content.ContentType {
	case wire.ContentTypeApplication:
		res.Kind, res.ApplicationData, res.AuthenticatedData = ResultApplication, ac.Content.ApplicationData, ac.Content.AuthenticatedData
		return res, nil
	case wire.ContentTypeProposal:
		if err := g.storeProposal(ac); err != nil {
			return nil, err
		}
		res.Kind, res.ProposalType = ResultProposal, uint16(ac.Content.Proposal.ProposalType)
		return res, nil
	case wire.ContentTypeCommit:
		sc, err := g.processCommit(ac)
		if err != nil {
			return nil, err
		}
		g.merge(sc)
		return sc.result, nil
	}
	return nil, fmt.Errorf("%w: content type %d", ErrInvalidMessage, ac.Content.ContentType)
}

func (g *Group) storeProposal(ac *wire.AuthenticatedContent) error {
	pol, err := g.policy()
	if err != nil {
		return err
	}
	if err := g.checkProposal(ac.Content.Proposal, ac.Content.Sender, pol); err != nil {
		return err
	}
	ref, err := g.proposalRef(ac)
	if err != nil {
		return err
	}
	for _, p := range g.pending {
		if bytes.Equal(p.ref, ref) {
			return nil // already stored (e.g. the own proposal echoed back)
		}
	}
	g.pending = append(g.pending, &pendingProposal{ref: ref, proposal: ac.Content.Proposal, sender: ac.Content.Sender})
	return nil
}

// stagedCommit is a fully computed next epoch.
type stagedCommit struct {
	ctx       wire.GroupContext
	tree      *tree.Tree
	keys      *tree.PathKeys
	epoch     *keyschedule.Epoch
	interim   []byte
	confTag   []byte
	reinit    *wire.ReInit
	removedMe bool
	result    *Result
	message   []byte
}

// merge installs a staged commit as the current epoch; the previous epoch's
// secrets are dropped (RFC 9420 §9.2 forward secrecy).
func (g *Group) merge(sc *stagedCommit) {
	if sc.removedMe {
		g.removed = true
		g.eraseEpoch()
		g.staged, g.pending, g.keys = nil, nil, nil
		return
	}
	g.retainEpoch()
	g.ctx, g.tree, g.keys, g.interim, g.confTag = sc.ctx, sc.tree, sc.keys, sc.interim, sc.confTag
	g.setEpoch(sc.epoch)
	g.staged = nil
	if sc.reinit != nil {
		g.reinit = sc.reinit
	}
}

// resolveProposals turns a commit's proposal list into proposals with
// senders (RFC 9420 §12.4.2): references must name stored proposals of this
// epoch.
func (g *Group) resolveProposals(c *wire.Commit, committer wire.Sender) (*proposalSet, []bool, error) {
	ps := &proposalSet{}
	byValue := make([]bool, 0, len(c.Proposals))
	for _, por := range c.Proposals {
		switch por.Type {
		case wire.ProposalOrRefTypeProposal:
			ps.items = append(ps.items, &pendingProposal{proposal: por.Proposal, sender: committer})
			byValue = append(byValue, true)
		case wire.ProposalOrRefTypeReference:
			var found *pendingProposal
			for _, p := range g.pending {
				if bytes.Equal(p.ref, por.Reference) {
					found = p
					break
				}
			}
			if found == nil {
				return nil, nil, fmt.Errorf("%w: unknown proposal reference %x", ErrInvalidCommit, por.Reference)
			}
			ps.items = append(ps.items, found)
			byValue = append(byValue, false)
		default:
			return nil, nil, fmt.Errorf("%w: proposal or ref type %d", ErrInvalidCommit, por.Type)
		}
	}
	return ps, byValue, nil
}

// processCommit validates and computes the next epoch from a received commit
// (RFC 9420 §12.4.2).
func (g *Group) processCommit(ac *wire.AuthenticatedContent) (*stagedCommit, error) {
	c := ac.Content.Commit
	sender := ac.Content.Sender
	if sender.SenderType != wire.SenderTypeMember && sender.SenderType != wire.SenderTypeNewMemberCommit {
		return nil, fmt.Errorf("%w: sender type %d", ErrInvalidCommit, sender.SenderType)
	}
	if ac.WireFormat == wire.WireFormatPrivateMessage && sender.SenderType != wire.SenderTypeMember {
		return nil, fmt.Errorf("%w: external commit in a PrivateMessage", ErrInvalidCommit)
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
	committer := sender.LeafIndex
	newPol, err := g.cfg.policy(a.extensions)
	if err != nil {
		return nil, err
	}
	// After a GroupContextExtensions proposal, all leaves must meet the new
	// requirements (RFC 9420 §12.1.7) — including those added now.
	if err := checkAllCapabilities(g, a); err != nil {
		return nil, err
	}
	sc := &stagedCommit{reinit: a.reinit}
	sc.result = &Result{Kind: ResultCommit, SenderType: uint8(sender.SenderType), Sender: committer, Added: a.added, Removed: a.removed}
	ctx := g.ctx
	ctx.Epoch++
	ctx.Extensions = a.extensions
	commitSecret := make([]byte, g.suite.Nh())
	me := g.keys.LeafIndex()
	keys := g.keys
	if sender.SenderType == wire.SenderTypeNewMemberCommit {
		committer = a.tree.NextLeaf()
		sc.result.Sender = committer
		if err := a.tree.ValidateLeafNode(&c.Path.LeafNode, tree.LeafCheck{Source: wire.LeafNodeSourceCommit, GroupID: g.ctx.GroupID, LeafIndex: committer}, newPol); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		ln := c.Path.LeafNode
		if _, err := a.tree.AddLeaf(&ln); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		sc.result.Added = append(sc.result.Added, committer)
		// A resync Remove (by value) must remove the joiner's own old leaf:
		// the new leaf must be acceptable as an Update of it (§12.4.3.2).
		for i, it := range ps.items {
			if !byValue[i] || it.proposal.ProposalType != wire.ProposalTypeRemove {
				continue
			}
			old := g.tree.Leaf(it.proposal.Remove.Removed)
			if !bytes.Equal(old.Credential.Identity, ln.Credential.Identity) || old.Credential.CredentialType != ln.Credential.CredentialType {
				return nil, fmt.Errorf("%w: external commit removes another member", ErrInvalidCommit)
			}
		}
	}
	for _, r := range a.removed {
		if r == me {
			sc.removedMe = true
		}
	}
	if !sc.removedMe {
		// The own leaf may have been replaced by the own Update proposal.
		keys = g.keys.Clone()
		if ln := a.tree.Leaf(me); ln != nil && !bytes.Equal(ln.EncryptionKey, g.tree.Leaf(me).EncryptionKey) {
			for _, u := range g.pendingUpdates {
				if bytes.Equal(u.pub, ln.EncryptionKey) {
					keys.SetLeafKey(u.priv, u.pub)
				}
			}
		}
	}
	if c.Path != nil {
		if sender.SenderType == wire.SenderTypeMember {
			if err := a.tree.ValidateLeafNode(&c.Path.LeafNode, tree.LeafCheck{Source: wire.LeafNodeSourceCommit, GroupID: g.ctx.GroupID, LeafIndex: committer}, newPol); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
			}
		}
		if err := a.tree.MergeUpdatePath(committer, c.Path); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
		if ctx.TreeHash, err = a.tree.RootHash(); err != nil {
			return nil, err
		}
		if !sc.removedMe {
			pgc, err := codec.Marshal(&ctx)
			if err != nil {
				return nil, err
			}
			keys.Prune(a.tree)
			dp, err := keys.DecryptUpdatePath(a.tree, committer, c.Path, a.added, pgc)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
			}
			keys, commitSecret = dp.Keys, dp.CommitSecret
		}
	} else {
		if ctx.TreeHash, err = a.tree.RootHash(); err != nil {
			return nil, err
		}
		if !sc.removedMe {
			keys.Prune(a.tree)
		}
	}
	if sc.removedMe {
		// A removed member cannot follow the new epoch (RFC 9420 §12.1.3).
		sc.ctx, sc.tree, sc.keys, sc.interim = g.ctx, g.tree, g.keys, g.interim
		sc.epoch = &keyschedule.Epoch{}
		return sc, nil
	}
	in, err := ac.ConfirmedTranscriptHashInput()
	if err != nil {
		return nil, err
	}
	ctx.ConfirmedTranscriptHash = keyschedule.ConfirmedTranscriptHash(g.suite, g.interim, in)
	gc, err := codec.Marshal(&ctx)
	if err != nil {
		return nil, err
	}
	initSecret := g.secrets.init
	if sender.SenderType == wire.SenderTypeNewMemberCommit {
		// §8.3: the joiner's HPKE export to the external key pair.
		priv, _, err := keyschedule.ExternalKeyPair(g.suite, g.secrets.external)
		if err != nil {
			return nil, err
		}
		if initSecret, err = g.suite.ExportReceiver(priv, a.extInit, nil, []byte("MLS 1.0 external init secret"), g.suite.Nh()); err != nil {
			return nil, fmt.Errorf("%w: external init: %w", ErrInvalidCommit, err)
		}
	}
	psk, err := g.pskSecret(a.psks)
	if err != nil {
		return nil, err
	}
	e, err := keyschedule.Derive(g.suite, initSecret, commitSecret, psk, gc)
	if err != nil {
		return nil, err
	}
	// §6.1: the confirmation tag proves the committer knows the new epoch.
	if !hmacEqual(keyschedule.ConfirmationTag(g.suite, e.ConfirmationKey, ctx.ConfirmedTranscriptHash), ac.Auth.ConfirmationTag) {
		return nil, fmt.Errorf("%w: confirmation tag", ErrInvalidCommit)
	}
	sc.ctx, sc.tree, sc.keys, sc.epoch = ctx, a.tree, keys, e
	sc.interim = keyschedule.InterimTranscriptHash(g.suite, ctx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag)
	sc.confTag = ac.Auth.ConfirmationTag
	return sc, nil
}

func checkAllCapabilities(g *Group, a *applied) error {
	if bytes.Equal(mustMarshalExts(a.extensions), mustMarshalExts(g.ctx.Extensions)) {
		return nil
	}
	for _, i := range a.tree.Members() {
		if err := g.checkCapabilities(a.tree.Leaf(i), a.extensions); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
	}
	return nil
}

func mustMarshalExts(es []wire.Extension) []byte {
	var w codec.Writer
	wire.WriteExtensions(&w, es)
	b, _ := w.Bytes()
	return b
}
