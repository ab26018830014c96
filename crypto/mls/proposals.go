package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/keyschedule"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// proposalRef is RefHash("MLS 1.0 Proposal Reference", AuthenticatedContent)
// (RFC 9420 §5.2).
func (g *Group) proposalRef(ac *wire.AuthenticatedContent) ([]byte, error) {
	b, err := codec.Marshal(ac)
	if err != nil {
		return nil, err
	}
	return g.suite.RefHash("MLS 1.0 Proposal Reference", b), nil
}

// senderMayPropose enforces which sender types may send which proposal types
// (RFC 9420 §12.1.8, §17.4 "External" column, §12.1.8 new_member_proposal).
func senderMayPropose(s wire.SenderType, t wire.ProposalType) bool {
	switch s {
	case wire.SenderTypeMember:
		return t != wire.ProposalTypeExternalInit
	case wire.SenderTypeExternal:
		return t == wire.ProposalTypeAdd || t == wire.ProposalTypeRemove || t == wire.ProposalTypePSK ||
			t == wire.ProposalTypeReInit || t == wire.ProposalTypeGroupContextExtensions
	case wire.SenderTypeNewMemberProposal:
		return t == wire.ProposalTypeAdd
	case wire.SenderTypeNewMemberCommit:
		// By value in an external commit (RFC 9420 §12.4.3.2).
		return t == wire.ProposalTypeExternalInit || t == wire.ProposalTypeRemove || t == wire.ProposalTypePSK
	}
	return false
}

// checkProposal validates one proposal on its own against the current state
// (RFC 9420 §12.1, §12.2 per-proposal rules).
func (g *Group) checkProposal(p *wire.Proposal, sender wire.Sender, pol *tree.Policy) error {
	if !senderMayPropose(sender.SenderType, p.ProposalType) {
		return fmt.Errorf("%w: sender type %d may not propose type %d", ErrInvalidProposal, sender.SenderType, p.ProposalType)
	}
	switch p.ProposalType {
	case wire.ProposalTypeAdd:
		// §12.1.1: the KeyPackage must be valid (§10.1).
		if err := g.tree.ValidateAdd(&p.Add.KeyPackage, pol); err != nil {
			return fmt.Errorf("%w: add: %w", ErrInvalidProposal, err)
		}
		if err := g.checkCapabilities(&p.Add.KeyPackage.LeafNode, g.ctx.Extensions); err != nil {
			return err
		}
	case wire.ProposalTypeUpdate:
		// §12.1.2: valid leaf for the update source at the sender's leaf.
		if sender.SenderType != wire.SenderTypeMember {
			return fmt.Errorf("%w: update from a non-member", ErrInvalidProposal)
		}
		if err := g.tree.ValidateLeafNode(&p.Update.LeafNode, tree.LeafCheck{Source: wire.LeafNodeSourceUpdate, GroupID: g.ctx.GroupID, LeafIndex: sender.LeafIndex}, pol); err != nil {
			return fmt.Errorf("%w: update: %w", ErrInvalidProposal, err)
		}
	case wire.ProposalTypeRemove:
		// §12.1.3: the removed leaf must be a member.
		r := p.Remove.Removed
		if r >= g.tree.LeafCount() || g.tree.Leaf(r) == nil {
			return fmt.Errorf("%w: remove of blank leaf %d", ErrInvalidProposal, r)
		}
	case wire.ProposalTypePSK:
		// §8.4, §12.1.4: external or resumption with usage application, and
		// a fresh nonce of length Nh.
		id := &p.PreSharedKey.PSK
		if len(id.Nonce) != g.suite.Nh() {
			return fmt.Errorf("%w: psk nonce of %d bytes", ErrInvalidProposal, len(id.Nonce))
		}
		switch id.PSKType {
		case wire.PSKTypeExternal:
		case wire.PSKTypeResumption:
			// reinit and branch PSKs belong only in the first commit of
			// the new group (RFC 9420 §11.2, §11.3).
			firstOfNew := g.ctx.Epoch == 0 && sender.SenderType == wire.SenderTypeMember &&
				(id.Usage == wire.ResumptionPSKUsageReInit || id.Usage == wire.ResumptionPSKUsageBranch)
			if id.Usage != wire.ResumptionPSKUsageApplication && !firstOfNew {
				return fmt.Errorf("%w: resumption psk usage %d in a PreSharedKey proposal", ErrInvalidProposal, id.Usage)
			}
		default:
			return fmt.Errorf("%w: psk type %d", ErrInvalidProposal, id.PSKType)
		}
	case wire.ProposalTypeReInit:
		// §12.1.5: version must not be lower than the current one.
		if p.ReInit.Version < g.ctx.Version {
			return fmt.Errorf("%w: reinit to an older version", ErrInvalidProposal)
		}
	case wire.ProposalTypeExternalInit:
		// Only valid by value in an external commit; checked there.
	case wire.ProposalTypeGroupContextExtensions:
		// §12.1.7: every member must support every extension, and the
		// required capabilities must be met by every member.
		for _, i := range g.tree.Members() {
			if err := g.checkCapabilities(g.tree.Leaf(i), p.GroupContextExtensions.Extensions); err != nil {
				return err
			}
		}
		if _, err := tree.ParseRequiredCapabilities(p.GroupContextExtensions.Extensions); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
		var es wire.ExternalSenders
		if _, err := wire.DecodeExtension(p.GroupContextExtensions.Extensions, wire.ExtensionTypeExternalSenders, &es); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	default:
		return fmt.Errorf("%w: unsupported proposal type %d", ErrInvalidProposal, p.ProposalType)
	}
	return nil
}

// checkCapabilities checks that leaf supports every non-default extension in
// exts and the required_capabilities among them (RFC 9420 §11.1, §12.1.7).
func (g *Group) checkCapabilities(ln *wire.LeafNode, exts []wire.Extension) error {
	for _, e := range exts {
		if e.ExtensionType >= 1 && e.ExtensionType <= 5 {
			continue
		}
		if !slices.Contains(ln.Capabilities.Extensions, e.ExtensionType) {
			return fmt.Errorf("%w: a member does not support extension %#04x", ErrInvalidProposal, uint16(e.ExtensionType))
		}
	}
	rc, err := tree.ParseRequiredCapabilities(exts)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
	}
	if rc == nil {
		return nil
	}
	for _, t := range rc.ExtensionTypes {
		if t > 5 && !slices.Contains(ln.Capabilities.Extensions, wire.ExtensionType(t)) {
			return fmt.Errorf("%w: a member lacks required extension %#04x", ErrInvalidProposal, t)
		}
	}
	for _, t := range rc.ProposalTypes {
		if t > 7 && !slices.Contains(ln.Capabilities.Proposals, wire.ProposalType(t)) {
			return fmt.Errorf("%w: a member lacks required proposal %#04x", ErrInvalidProposal, t)
		}
	}
	for _, t := range rc.CredentialTypes {
		if !slices.Contains(ln.Capabilities.Credentials, wire.CredentialType(t)) {
			return fmt.Errorf("%w: a member lacks required credential %#04x", ErrInvalidProposal, t)
		}
	}
	return nil
}

// addValidAfterRemoves validates an Add against the tree with the list's
// Removes applied.
func (g *Group) addValidAfterRemoves(ps *proposalSet, add *wire.Proposal, pol *tree.Policy) bool {
	t := g.tree.Clone()
	removed := false
	for _, it := range ps.items {
		if it.proposal.ProposalType == wire.ProposalTypeRemove {
			if t.RemoveLeaf(it.proposal.Remove.Removed) != nil {
				return false
			}
			removed = true
		}
	}
	return removed && t.ValidateAdd(&add.Add.KeyPackage, pol) == nil
}

// proposalSet is a commit's resolved proposal list.
type proposalSet struct {
	items []*pendingProposal
}

// validateList applies the proposal-list rules of RFC 9420 §12.2 for a
// commit by committer; external marks a new_member_commit (§12.4.3.2).
func (g *Group) validateList(ps *proposalSet, committer wire.Sender, byValue []bool, pol *tree.Policy) error {
	external := committer.SenderType == wire.SenderTypeNewMemberCommit
	var nGCE, nReInit, nExtInit int
	updated := map[uint32]bool{}
	removed := map[uint32]bool{}
	addSig := map[string]bool{}
	addKP := map[string]bool{}
	psks := map[string]bool{}
	for i, it := range ps.items {
		p := it.proposal
		if err := g.checkProposal(p, it.sender, pol); err != nil {
			// §12.2: an Add of a client already in the group is valid if
			// the same list removes that client (e.g. a re-added device).
			if p.ProposalType != wire.ProposalTypeAdd || !errors.Is(err, tree.ErrDuplicateKey) || !g.addValidAfterRemoves(ps, p, pol) {
				return fmt.Errorf("%w: %w", ErrInvalidCommit, err)
			}
		}
		switch p.ProposalType {
		case wire.ProposalTypeAdd:
			kp := &p.Add.KeyPackage
			if addSig[string(kp.LeafNode.SignatureKey)] {
				return fmt.Errorf("%w: two Adds with the same signature key", ErrInvalidCommit)
			}
			addSig[string(kp.LeafNode.SignatureKey)] = true
			enc := string(kp.LeafNode.EncryptionKey)
			if addKP[enc] || addKP[string(kp.InitKey)] {
				return fmt.Errorf("%w: two Adds share a key", ErrInvalidCommit)
			}
			addKP[enc], addKP[string(kp.InitKey)] = true, true
		case wire.ProposalTypeUpdate:
			l := it.sender.LeafIndex
			if external || byValue[i] {
				return fmt.Errorf("%w: Update by value or in an external commit", ErrInvalidCommit)
			}
			if committer.SenderType == wire.SenderTypeMember && l == committer.LeafIndex {
				return fmt.Errorf("%w: committer's own Update", ErrInvalidCommit)
			}
			if updated[l] || removed[l] {
				return fmt.Errorf("%w: leaf %d updated or removed twice", ErrInvalidCommit, l)
			}
			updated[l] = true
		case wire.ProposalTypeRemove:
			l := p.Remove.Removed
			if committer.SenderType == wire.SenderTypeMember && l == committer.LeafIndex {
				return fmt.Errorf("%w: committer removes itself", ErrInvalidCommit)
			}
			if updated[l] || removed[l] {
				return fmt.Errorf("%w: leaf %d updated or removed twice", ErrInvalidCommit, l)
			}
			removed[l] = true
		case wire.ProposalTypePSK:
			id := &p.PreSharedKey.PSK
			key := fmt.Sprintf("%d|%x|%d|%x|%d", id.PSKType, id.ID, id.Usage, id.GroupID, id.PSKEpoch)
			if psks[key] {
				return fmt.Errorf("%w: duplicate PSK", ErrInvalidCommit)
			}
			psks[key] = true
		case wire.ProposalTypeReInit:
			nReInit++
		case wire.ProposalTypeExternalInit:
			nExtInit++
			if !external || !byValue[i] {
				return fmt.Errorf("%w: ExternalInit outside an external commit", ErrInvalidCommit)
			}
		case wire.ProposalTypeGroupContextExtensions:
			nGCE++
		}
	}
	// A leaf cannot be both added and already present with the same key is
	// covered by ValidateAdd; now the list-wide rules.
	if nGCE > 1 {
		return fmt.Errorf("%w: more than one GroupContextExtensions", ErrInvalidCommit)
	}
	if nReInit > 0 && len(ps.items) != 1 {
		return fmt.Errorf("%w: ReInit must be the only proposal", ErrInvalidCommit)
	}
	if external {
		if nExtInit != 1 {
			return fmt.Errorf("%w: external commit needs exactly one ExternalInit", ErrInvalidCommit)
		}
		// §12.4.3.2: by value only ExternalInit, at most one (resync)
		// Remove and PSKs; by reference anything but ExternalInit (checked
		// above) and Update (the joiner has no leaf to be updated by).
		nRemove := 0
		for i, it := range ps.items {
			t := it.proposal.ProposalType
			if !byValue[i] {
				if t == wire.ProposalTypeUpdate {
					return fmt.Errorf("%w: Update in an external commit", ErrInvalidCommit)
				}
				continue
			}
			switch t {
			case wire.ProposalTypeExternalInit, wire.ProposalTypePSK:
			case wire.ProposalTypeRemove:
				nRemove++
			default:
				return fmt.Errorf("%w: proposal type %d by value in an external commit", ErrInvalidCommit, t)
			}
		}
		if nRemove > 1 {
			return fmt.Errorf("%w: external commit removes more than one member by value", ErrInvalidCommit)
		}
	}
	return nil
}

// pathRequired reports whether the proposal list requires an UpdatePath
// (RFC 9420 §12.4: empty, or any Update, Remove, ExternalInit or
// GroupContextExtensions, or an unknown type).
func pathRequired(ps *proposalSet) bool {
	if len(ps.items) == 0 {
		return true
	}
	for _, it := range ps.items {
		switch it.proposal.ProposalType {
		case wire.ProposalTypeAdd, wire.ProposalTypePSK, wire.ProposalTypeReInit:
		default:
			return true
		}
	}
	return false
}

// applied is the result of applying a proposal list to a copy of the tree
// (RFC 9420 §12.3).
type applied struct {
	tree       *tree.Tree
	extensions []wire.Extension
	added      []uint32
	addedKPs   []*wire.KeyPackage
	removed    []uint32
	psks       []wire.PreSharedKeyID
	extInit    []byte
	reinit     *wire.ReInit
}

// apply applies the proposals in the RFC order: GroupContextExtensions,
// Update, Remove, Add, then PSK collection (RFC 9420 §12.3).
func (g *Group) apply(ps *proposalSet) (*applied, error) {
	a := &applied{tree: g.tree.Clone(), extensions: g.ctx.Extensions}
	for _, it := range ps.items {
		switch p := it.proposal; p.ProposalType {
		case wire.ProposalTypeGroupContextExtensions:
			a.extensions = p.GroupContextExtensions.Extensions
		case wire.ProposalTypeReInit:
			a.reinit = p.ReInit
		case wire.ProposalTypeExternalInit:
			a.extInit = p.ExternalInit.KEMOutput
		}
	}
	for _, it := range ps.items {
		if it.proposal.ProposalType == wire.ProposalTypeUpdate {
			ln := it.proposal.Update.LeafNode
			if err := a.tree.UpdateLeaf(it.sender.LeafIndex, &ln); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
			}
		}
	}
	for _, it := range ps.items {
		if it.proposal.ProposalType == wire.ProposalTypeRemove {
			r := it.proposal.Remove.Removed
			if err := a.tree.RemoveLeaf(r); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
			}
			a.removed = append(a.removed, r)
		}
	}
	for _, it := range ps.items {
		if it.proposal.ProposalType == wire.ProposalTypeAdd {
			kp := &it.proposal.Add.KeyPackage
			ln := kp.LeafNode
			i, err := a.tree.AddLeaf(&ln)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
			}
			a.added = append(a.added, i)
			a.addedKPs = append(a.addedKPs, kp)
		}
	}
	for _, it := range ps.items {
		if it.proposal.ProposalType == wire.ProposalTypePSK {
			a.psks = append(a.psks, it.proposal.PreSharedKey.PSK)
		}
	}
	return a, nil
}

// pskSecret resolves PSK ids (external from the application's store,
// resumption from retained epochs) and combines them (RFC 9420 §8.4).
func (g *Group) pskSecret(ids []wire.PreSharedKeyID) ([]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	psks := make([]keyschedule.PSK, len(ids))
	for i := range ids {
		id := &ids[i]
		var secret []byte
		switch id.PSKType {
		case wire.PSKTypeExternal:
			var ok bool
			if g.cfg != nil && g.cfg.ExternalPSK != nil {
				secret, ok = g.cfg.ExternalPSK(id.ID)
			}
			if !ok {
				return nil, fmt.Errorf("%w: external psk %x", ErrUnknownPSK, id.ID)
			}
		case wire.PSKTypeResumption:
			var ok bool
			if bytes.Equal(id.GroupID, g.ctx.GroupID) {
				secret, ok = g.resumption[id.PSKEpoch]
			}
			if !ok {
				secret, ok = g.priorPSKs[fmt.Sprintf("%x/%d", id.GroupID, id.PSKEpoch)]
			}
			if !ok && g.cfg != nil && g.cfg.ResumptionPSK != nil {
				secret, ok = g.cfg.ResumptionPSK(id.GroupID, id.PSKEpoch)
			}
			if !ok {
				return nil, fmt.Errorf("%w: resumption psk of epoch %d", ErrUnknownPSK, id.PSKEpoch)
			}
		default:
			return nil, fmt.Errorf("%w: psk type %d", ErrUnknownPSK, id.PSKType)
		}
		enc, err := codec.Marshal(id)
		if err != nil {
			return nil, err
		}
		psks[i] = keyschedule.PSK{ID: enc, Secret: secret}
	}
	return keyschedule.PSKSecret(g.suite, psks)
}
