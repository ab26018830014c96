package mls

import (
	"fmt"
	"slices"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/keyschedule"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// Proposal is a proposal to include by value in a commit or to send by
// reference; build it with AddProposal, RemoveProposal, PSKProposal,
// GroupContextExtensionsProposal or ReInitProposal.
type Proposal struct{ p wire.Proposal }

// AddProposal proposes adding the member of an encoded KeyPackage MLSMessage
// (RFC 9420 §12.1.1).
func AddProposal(keyPackage []byte) (*Proposal, error) {
	m, err := decodeMessage(keyPackage)
	if err != nil {
		return nil, err
	}
	if m.WireFormat != wire.WireFormatKeyPackage {
		return nil, fmt.Errorf("%w: not a KeyPackage", ErrInvalidProposal)
	}
	return &Proposal{wire.Proposal{ProposalType: wire.ProposalTypeAdd, Add: &wire.Add{KeyPackage: *m.KeyPackage}}}, nil
}

// RemoveProposal proposes removing the member at leaf (RFC 9420 §12.1.3).
func RemoveProposal(leaf uint32) *Proposal {
	return &Proposal{wire.Proposal{ProposalType: wire.ProposalTypeRemove, Remove: &wire.Remove{Removed: leaf}}}
}

// ExternalPSKProposal proposes injecting the external PSK id (RFC 9420 §12.1.4).
func (g *Group) ExternalPSKProposal(id []byte) *Proposal {
	return &Proposal{wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
		PSKType: wire.PSKTypeExternal, ID: id, Nonce: randomBytes(g.suite.Nh())}}}}
}

// ResumptionPSKProposal proposes injecting the resumption PSK of a retained
// past epoch of this group (RFC 9420 §12.1.4).
func (g *Group) ResumptionPSKProposal(epoch uint64) *Proposal {
	return &Proposal{wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
		PSKType: wire.PSKTypeResumption, Usage: wire.ResumptionPSKUsageApplication, GroupID: g.ctx.GroupID, PSKEpoch: epoch, Nonce: randomBytes(g.suite.Nh())}}}}
}

// GroupContextExtensionsProposal proposes replacing the GroupContext
// extensions (RFC 9420 §12.1.7).
func GroupContextExtensionsProposal(exts []wire.Extension) *Proposal {
	return &Proposal{wire.Proposal{ProposalType: wire.ProposalTypeGroupContextExtensions, GroupContextExtensions: &wire.GroupContextExtensions{Extensions: exts}}}
}

// ReInitProposal proposes reinitializing the group (RFC 9420 §12.1.5).
func ReInitProposal(groupID []byte, suite CipherSuite, exts []wire.Extension) *Proposal {
	return &Proposal{wire.Proposal{ProposalType: wire.ProposalTypeReInit, ReInit: &wire.ReInit{GroupID: groupID, Version: wire.ProtocolVersionMLS10, CipherSuite: suite, Extensions: exts}}}
}

// Propose sends p by reference (RFC 9420 §12.1): it returns the encoded
// MLSMessage (a PublicMessage, or a PrivateMessage if private) and stores the
// proposal so that the own next Commit includes it.
func (g *Group) Propose(p *Proposal, private bool) ([]byte, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	wf := wire.WireFormatPublicMessage
	if private {
		wf = wire.WireFormatPrivateMessage
	}
	prop := p.p
	fc := &wire.FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: g.LeafIndex()},
		ContentType: wire.ContentTypeProposal, Proposal: &prop}
	ac, err := g.signContent(wf, fc)
	if err != nil {
		return nil, fmt.Errorf("mls: propose: %w", err)
	}
	pol, err := g.policy()
	if err != nil {
		return nil, err
	}
	if err := g.checkProposal(&prop, fc.Sender, pol); err != nil {
		return nil, fmt.Errorf("mls: propose: %w", err)
	}
	ref, err := g.proposalRef(ac)
	if err != nil {
		return nil, err
	}
	out, err := g.protect(ac, 0)
	if err != nil {
		return nil, fmt.Errorf("mls: propose: %w", err)
	}
	g.pending = append(g.pending, &pendingProposal{ref: ref, proposal: &prop, sender: fc.Sender})
	return out, nil
}

// ProposeUpdate proposes a fresh leaf encryption key for the own leaf
// (RFC 9420 §12.1.2); the new private key is used once a commit by another
// member includes it.
func (g *Group) ProposeUpdate(private bool) ([]byte, error) {
	priv, pub, err := g.suite.GenerateKEMKeyPair()
	if err != nil {
		return nil, err
	}
	ln := *g.tree.Leaf(g.LeafIndex())
	ln.EncryptionKey, ln.LeafNodeSource, ln.Lifetime, ln.ParentHash = pub, wire.LeafNodeSourceUpdate, nil, nil
	if err := signLeaf(g.signer, &ln, g.ctx.GroupID, g.LeafIndex()); err != nil {
		return nil, err
	}
	out, err := g.Propose(&Proposal{wire.Proposal{ProposalType: wire.ProposalTypeUpdate, Update: &wire.Update{LeafNode: ln}}}, private)
	if err != nil {
		return nil, err
	}
	g.pendingUpdates = append(g.pendingUpdates, pendingUpdate{pub: pub, priv: priv})
	return out, nil
}

type pendingUpdate struct{ pub, priv []byte }

// CommitOptions tunes Commit.
type CommitOptions struct {
	// Proposals are included by value, after the stored proposals.
	Proposals []*Proposal
	// ForcePath includes an UpdatePath even when no proposal requires one
	// (a self-update for post-compromise security).
	ForcePath bool
	// InlineTree puts the ratchet_tree extension in the GroupInfo (in the
	// Welcome and the returned GroupInfo); otherwise joiners need the tree
	// out of band.
	InlineTree bool
	// ExternalPub adds the external_pub extension to the returned GroupInfo
	// so that new devices can join by external commit (RFC 9420 §12.4.3.2).
	ExternalPub bool
	// Private sends the commit as a PrivateMessage.
	Private bool
}

// CommitOutput is what Commit produces.
type CommitOutput struct {
	// Commit is the encoded MLSMessage to send to the group.
	Commit []byte
	// Welcome is the encoded Welcome MLSMessage for added members, or nil.
	Welcome []byte
	// GroupInfo is the encoded GroupInfo MLSMessage of the new epoch.
	GroupInfo []byte
	// RatchetTree is the encoded ratchet tree of the new epoch when
	// InlineTree was asked. Otherwise joiners need the tree out of band:
	// after merging the commit, Group.RatchetTree returns it.
	RatchetTree []byte
}

// Commit creates a commit of all stored proposals (except the own Update
// and Remove proposals, which a committer cannot commit) plus opts.Proposals
// by value (RFC 9420 §12.4). The new epoch is staged, not applied: call
// MergePendingCommit once the delivery service accepted the commit (or feed
// the commit back to ProcessMessage), or DiscardPendingCommit when another
// member's commit won the epoch.
func (g *Group) Commit(opts *CommitOptions) (*CommitOutput, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &CommitOptions{}
	}
	me := g.LeafIndex()
	self := wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: me}
	commit := &wire.Commit{}
	ps := &proposalSet{}
	var byValue []bool
	for _, p := range g.pending {
		if p.sender.SenderType == wire.SenderTypeMember && p.sender.LeafIndex == me && p.proposal.ProposalType == wire.ProposalTypeUpdate {
			continue
		}
		if p.proposal.ProposalType == wire.ProposalTypeRemove && p.proposal.Remove.Removed == me {
			continue
		}
		commit.Proposals = append(commit.Proposals, wire.ProposalOrRef{Type: wire.ProposalOrRefTypeReference, Reference: p.ref})
		ps.items = append(ps.items, p)
		byValue = append(byValue, false)
	}
	for _, p := range opts.Proposals {
		prop := p.p
		commit.Proposals = append(commit.Proposals, wire.ProposalOrRef{Type: wire.ProposalOrRefTypeProposal, Proposal: &prop})
		ps.items = append(ps.items, &pendingProposal{proposal: &prop, sender: self})
		byValue = append(byValue, true)
	}
	pol, err := g.policy()
	if err != nil {
		return nil, err
	}
	if err := g.validateList(ps, self, byValue, pol); err != nil && !g.test.noValidate {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	a, err := g.apply(ps)
	if err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	ctx := g.ctx
	ctx.Epoch++
	ctx.Extensions = a.extensions
	commitSecret := make([]byte, g.suite.Nh())
	keys := g.keys.Clone()
	var path *tree.PathResult
	if (opts.ForcePath || pathRequired(ps)) && !g.test.noPath {
		if a.tree.Leaf(me) == nil {
			return nil, fmt.Errorf("mls: commit: %w: the committer's leaf is removed", ErrInvalidCommit)
		}
		tmpl := *a.tree.Leaf(me)
		path, err = a.tree.CreateUpdatePath(tree.PathParams{
			Leaf: me, LeafNode: &tmpl, Signer: g.signer, GroupID: g.ctx.GroupID, Exclude: a.added,
			GroupContext: func(th []byte) ([]byte, error) {
				c := ctx
				c.TreeHash = th
				return codec.Marshal(&c)
			},
		})
		if err != nil {
			return nil, fmt.Errorf("mls: commit: %w", err)
		}
		commit.Path, keys, commitSecret = path.Path, path.Keys, path.CommitSecret
	} else {
		keys.Prune(a.tree)
	}
	if ctx.TreeHash, err = a.tree.RootHash(); err != nil {
		return nil, err
	}
	wf := wire.WireFormatPublicMessage
	if opts.Private {
		wf = wire.WireFormatPrivateMessage
	}
	ac, err := g.signContent(wf, &wire.FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: self, ContentType: wire.ContentTypeCommit, Commit: commit})
	if err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
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
	psk, err := g.pskSecret(a.psks)
	if err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	e, err := keyschedule.Derive(g.suite, g.secrets.init, commitSecret, psk, gc)
	if err != nil {
		return nil, err
	}
	ac.Auth.ConfirmationTag = keyschedule.ConfirmationTag(g.suite, e.ConfirmationKey, ctx.ConfirmedTranscriptHash)
	msg, err := g.protect(ac, 0)
	if err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	sc := &stagedCommit{ctx: ctx, tree: a.tree, keys: keys, epoch: e, reinit: a.reinit, message: msg,
		interim: keyschedule.InterimTranscriptHash(g.suite, ctx.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag), confTag: ac.Auth.ConfirmationTag,
		result: &Result{Kind: ResultCommit, SenderType: uint8(wire.SenderTypeMember), Sender: me, Added: a.added, Removed: a.removed}}
	out := &CommitOutput{Commit: msg}
	if opts.InlineTree {
		if out.RatchetTree, err = a.tree.Encode(); err != nil {
			return nil, err
		}
	}
	// GroupInfo of the new epoch (RFC 9420 §12.4.3), signed by the committer.
	gi := &wire.GroupInfo{GroupContext: ctx, ConfirmationTag: ac.Auth.ConfirmationTag, Signer: me}
	if opts.InlineTree {
		gi.Extensions = append(gi.Extensions, wire.Extension{ExtensionType: wire.ExtensionTypeRatchetTree, ExtensionData: out.RatchetTree})
	}
	if len(a.added) > 0 {
		if out.Welcome, err = g.welcome(sc, gi, e, a, path); err != nil {
			return nil, fmt.Errorf("mls: commit: %w", err)
		}
	}
	if opts.ExternalPub {
		_, pub, err := keyschedule.ExternalKeyPair(g.suite, e.ExternalSecret)
		if err != nil {
			return nil, err
		}
		ext, err := wire.NewExtension(wire.ExtensionTypeExternalPub, &wire.ExternalPub{ExternalPub: pub})
		if err != nil {
			return nil, err
		}
		gi.Extensions = append(gi.Extensions, ext)
	}
	if err := g.signGroupInfo(gi); err != nil {
		return nil, err
	}
	if out.GroupInfo, err = encodeMessage(&wire.MLSMessage{WireFormat: wire.WireFormatGroupInfo, GroupInfo: gi}); err != nil {
		return nil, err
	}
	g.staged = sc
	return out, nil
}

func (g *Group) signGroupInfo(gi *wire.GroupInfo) error {
	tbs, err := gi.TBS()
	if err != nil {
		return err
	}
	gi.Signature, err = g.signer.SignWithLabel("GroupInfoTBS", tbs)
	return err
}

// welcome encrypts the GroupInfo and each new member's GroupSecrets
// (RFC 9420 §12.4.3.1).
func (g *Group) welcome(sc *stagedCommit, gi *wire.GroupInfo, e *keyschedule.Epoch, a *applied, path *tree.PathResult) ([]byte, error) {
	wgi := *gi
	wgi.Extensions = slices.Clone(gi.Extensions)
	if err := g.signGroupInfo(&wgi); err != nil {
		return nil, err
	}
	gib, err := codec.Marshal(&wgi)
	if err != nil {
		return nil, err
	}
	key, nonce, err := keyschedule.WelcomeKeyNonce(g.suite, e.WelcomeSecret)
	if err != nil {
		return nil, err
	}
	w := &wire.Welcome{CipherSuite: g.suite.ID()}
	if w.EncryptedGroupInfo, err = g.suite.Seal(key, nonce, nil, gib); err != nil {
		return nil, err
	}
	for i, leaf := range a.added {
		kp := a.addedKPs[i]
		gs := &wire.GroupSecrets{JoinerSecret: e.JoinerSecret, PSKs: a.psks}
		if path != nil {
			if ps := path.PathSecretFor(leaf); ps != nil {
				gs.PathSecret = &wire.PathSecret{PathSecret: ps}
			}
		}
		gsb, err := codec.Marshal(gs)
		if err != nil {
			return nil, err
		}
		ref, err := keyPackageRef(g.suite, kp)
		if err != nil {
			return nil, err
		}
		kem, ct, err := g.suite.EncryptWithLabel(kp.InitKey, "Welcome", w.EncryptedGroupInfo, gsb)
		if err != nil {
			return nil, err
		}
		w.Secrets = append(w.Secrets, wire.EncryptedGroupSecrets{NewMember: ref, EncryptedGroupSecrets: wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}})
	}
	return encodeMessage(&wire.MLSMessage{WireFormat: wire.WireFormatWelcome, Welcome: w})
}

// MergePendingCommit applies the own commit created by Commit, moving the
// group to the new epoch.
func (g *Group) MergePendingCommit() error {
	if g.staged == nil {
		return ErrNoPendingCommit
	}
	g.merge(g.staged)
	g.pendingUpdates = nil
	return nil
}

// DiscardPendingCommit forgets the own staged commit (another member's
// commit won the epoch; process it with ProcessMessage).
func (g *Group) DiscardPendingCommit() { g.staged = nil }

// RatchetTree returns the encoded ratchet tree of the current epoch
// (RFC 9420 §12.4.3.3), for joiners when GroupInfos do not carry it.
func (g *Group) RatchetTree() ([]byte, error) { return g.tree.Encode() }

// GroupInfo returns a signed GroupInfo of the current epoch as an encoded
// MLSMessage (RFC 9420 §12.4.3): with inlineTree it carries the
// ratchet_tree extension, with externalPub the external_pub extension that
// lets new devices join by external commit (JoinExternal).
func (g *Group) GroupInfo(inlineTree, externalPub bool) ([]byte, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	gi := &wire.GroupInfo{GroupContext: g.ctx, ConfirmationTag: g.confTag, Signer: g.LeafIndex()}
	if inlineTree {
		rt, err := g.tree.Encode()
		if err != nil {
			return nil, err
		}
		gi.Extensions = append(gi.Extensions, wire.Extension{ExtensionType: wire.ExtensionTypeRatchetTree, ExtensionData: rt})
	}
	if externalPub {
		_, pub, err := keyschedule.ExternalKeyPair(g.suite, g.secrets.external)
		if err != nil {
			return nil, err
		}
		ext, err := wire.NewExtension(wire.ExtensionTypeExternalPub, &wire.ExternalPub{ExternalPub: pub})
		if err != nil {
			return nil, err
		}
		gi.Extensions = append(gi.Extensions, ext)
	}
	if err := g.signGroupInfo(gi); err != nil {
		return nil, err
	}
	return encodeMessage(&wire.MLSMessage{WireFormat: wire.WireFormatGroupInfo, GroupInfo: gi})
}

// ProposeAdd proposes adding the member of an encoded KeyPackage by
// reference (RFC 9420 §12.1.1); see Propose.
func (g *Group) ProposeAdd(keyPackage []byte, private bool) ([]byte, error) {
	p, err := AddProposal(keyPackage)
	if err != nil {
		return nil, err
	}
	return g.Propose(p, private)
}

// ProposeRemove proposes removing the member at leaf by reference
// (RFC 9420 §12.1.3); see Propose.
func (g *Group) ProposeRemove(leaf uint32, private bool) ([]byte, error) {
	return g.Propose(RemoveProposal(leaf), private)
}

// ProposeExternalPSK proposes injecting an external PSK by reference
// (RFC 9420 §12.1.4); see Propose.
func (g *Group) ProposeExternalPSK(id []byte, private bool) ([]byte, error) {
	return g.Propose(g.ExternalPSKProposal(id), private)
}

// ProposeGroupContextExtensions proposes new GroupContext extensions by
// reference (RFC 9420 §12.1.7); see Propose.
func (g *Group) ProposeGroupContextExtensions(exts []Extension, private bool) ([]byte, error) {
	return g.Propose(GroupContextExtensionsProposal(exts), private)
}

// ProposeReInit proposes reinitializing the group with a new group id,
// suite and extensions by reference (RFC 9420 §12.1.5); see Propose.
func (g *Group) ProposeReInit(groupID []byte, suite CipherSuite, exts []Extension, private bool) ([]byte, error) {
	return g.Propose(ReInitProposal(groupID, suite, exts), private)
}

// ReInitGroup creates the group that replaces g once a commit with a ReInit
// proposal was applied (RFC 9420 §11.2): same member credential and
// signature key, the ReInit's group id, suite and extensions, and a first
// commit that adds keyPackages (the other members' new KeyPackages) and
// injects g's last resumption PSK with usage reinit. The new group's commit
// is staged like any Commit; joiners call JoinReInit with their copy of g
// (or supply g's resumption PSK through Config.ResumptionPSK, see
// Group.ResumptionPSK). A ReInit to another signature scheme needs
// ReInitGroupWithKey.
func (g *Group) ReInitGroup(keyPackages [][]byte, opts *CommitOptions) (*Group, *CommitOutput, error) {
	return g.ReInitGroupWithKey(g.sigKey, keyPackages, opts)
}
