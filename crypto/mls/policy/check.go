package policy

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// UserIDFunc maps a leaf's credential to the user it belongs to. It must
// only return user ids the application's CredentialValidator vouches for.
type UserIDFunc func(cred *mls.Credential) (string, error)

// BasicUserID takes a basic credential's identity as the user id (tests,
// or deployments whose identities are plain user ids).
func BasicUserID(cred *mls.Credential) (string, error) {
	if cred.CredentialType != mls.CredentialBasic || !validUserID(string(cred.Identity)) {
		return "", fmt.Errorf("%w: credential is not a basic credential with a user id", ErrForbidden)
	}
	return string(cred.Identity), nil
}

// Checker decides whether handshake messages are allowed by a group's room
// policy. The zero value uses BasicUserID.
type Checker struct {
	// UserID maps credentials to user ids; nil means BasicUserID.
	UserID UserIDFunc
}

func (c *Checker) userOf(cred *mls.Credential) (string, error) {
	f := c.UserID
	if f == nil {
		f = BasicUserID
	}
	u, err := f(cred)
	if err != nil {
		return "", fmt.Errorf("%w: credential: %w", ErrForbidden, err)
	}
	return u, nil
}

// CheckCommit decides whether an encoded PublicMessage commit may be
// applied to pg, the public state of the group as the hub knows it. It
// first verifies the commit as a non-member can (mls.PublicGroup.
// StageCommit: signature by the sender leaf's key over the content and the
// current GroupContext, proposals by reference the hub stored, the rules of
// RFC 9420 §12.2, the UpdatePath's public part) — failures there wrap the
// mls errors (ErrWrongEpoch, ErrInvalidMessage, ErrProposalNotSeen, ...) —
// and then applies the room policy of pg's current GroupContext, returning
// an error wrapping ErrForbidden if it refuses. On success it returns the
// staged commit: call pg.Merge with it once the commit is durably sequenced.
func (c *Checker) CheckCommit(pg *mls.PublicGroup, commit []byte) (*mls.PublicCommit, error) {
	pc, err := pg.StageCommit(commit)
	if err != nil {
		return nil, err
	}
	if err := c.Authorize(pc); err != nil {
		return nil, err
	}
	return pc, nil
}

// CheckProposal verifies an encoded PublicMessage proposal against pg and
// the room policy, and only if it is allowed stores it in pg so that a
// later commit may reference it.
func (c *Checker) CheckProposal(pg *mls.PublicGroup, proposal []byte) (*mls.ProposalInfo, error) {
	info, err := pg.VerifyProposal(proposal)
	if err != nil {
		return nil, err
	}
	old, err := FromExtensions(pg.Extensions())
	if err != nil {
		return nil, err
	}
	a := &authorization{c: c, old: old, new: old, oldExts: pg.Extensions(), standalone: true}
	if info.SenderType == uint8(wire.SenderTypeMember) {
		if err := a.proposal(info, ""); err != nil {
			return nil, err
		}
	} else if info.Type == uint16(wire.ProposalTypeGroupContextExtensions) || info.Type == uint16(wire.ProposalTypeReInit) {
		return nil, fmt.Errorf("%w: only participants may propose policy changes", ErrForbidden)
	}
	// Proposals of non-members are authorized when a participant commits
	// them (CheckCommit).
	return pg.StoreProposal(proposal)
}

// authorization is one commit's policy check.
type authorization struct {
	c        *Checker
	old, new *RoomPolicy
	oldExts  []mls.Extension
	// standalone is set for a proposal checked before any commit: whether
	// an added user is listed is checked when it is committed.
	standalone bool
	// committer is the committer's user id.
	committer string
}

// Authorize applies the room policy to a verified, staged commit (RFC 9420
// leaves authorization to the application, §5.3.1, §12.1.8):
//
//   - the committer's user is a participant of the current policy (for an
//     external commit: one with AddOwnClient);
//   - each proposal is authorized by the role of its proposer (member
//     senders) or of the committer (external and new-member senders, whose
//     proposals a participant endorses by committing them);
//   - the UpdatePath and Updates keep each leaf's user;
//   - policy changes are authorized (see the package comment);
//   - after the commit, every member's user is a participant.
func (c *Checker) Authorize(pc *mls.PublicCommit) error {
	old, err := FromExtensions(pc.OldExtensions)
	if err != nil {
		return err
	}
	next, err := FromExtensions(pc.Extensions)
	if err != nil {
		if errors.Is(err, ErrNoPolicy) {
			return fmt.Errorf("%w: the commit removes the room policy", ErrForbidden)
		}
		return err
	}
	a := &authorization{c: c, old: old, new: next, oldExts: pc.OldExtensions}
	if a.committer, err = c.userOf(&pc.CommitterCredential); err != nil {
		return err
	}
	role, ok := old.RoleOf(a.committer)
	if !ok {
		return fmt.Errorf("%w: committer %s is not a participant", ErrForbidden, a.committer)
	}
	if pc.External && !role.Has(AddOwnClient) {
		return fmt.Errorf("%w: %s (%s) may not join its own client", ErrForbidden, a.committer, role.Name)
	}
	if pc.PathCredential != nil {
		u, err := c.userOf(pc.PathCredential)
		if err != nil {
			return err
		}
		if u != a.committer {
			return fmt.Errorf("%w: the committer's path changes its user to %s", ErrForbidden, u)
		}
	}
	for i := range pc.Proposals {
		p := &pc.Proposals[i]
		actor := a.committer
		if p.SenderType == uint8(wire.SenderTypeMember) {
			if actor, err = c.userOf(p.SenderCredential); err != nil {
				return err
			}
		}
		if pc.External && p.SenderType == uint8(wire.SenderTypeNewMemberCommit) && p.Type == uint16(wire.ProposalTypeRemove) {
			// The resync Remove of an external commit removes the
			// joiner's own old leaf (checked by mls): its own client.
			if err := a.own(p, actor); err != nil {
				return err
			}
			continue
		}
		if err := a.proposal(p, actor); err != nil {
			return fmt.Errorf("proposal %d: %w", i, err)
		}
	}
	// Every member must be a participant of the new policy.
	for _, m := range pc.Members {
		u, err := c.userOf(&m.Credential)
		if err != nil {
			return err
		}
		if _, ok := next.RoleOf(u); !ok {
			return fmt.Errorf("%w: member %s (leaf %d) is not a participant of the room policy", ErrForbidden, u, m.LeafIndex)
		}
	}
	return nil
}

// actorRole returns the role of actor in the current policy.
func (a *authorization) actorRole(actor string) (*Role, error) {
	r, ok := a.old.RoleOf(actor)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not a participant", ErrForbidden, actor)
	}
	return r, nil
}

// own checks a Remove of the actor's own client.
func (a *authorization) own(p *mls.ProposalInfo, actor string) error {
	u, err := a.c.userOf(p.RemovedCredential)
	if err != nil {
		return err
	}
	if u != actor {
		return fmt.Errorf("%w: %s's rejoin removes %s's client", ErrForbidden, actor, u)
	}
	return nil
}

// proposal authorizes one proposal by actor (for CheckProposal, actor ""
// means the proposal's member sender).
func (a *authorization) proposal(p *mls.ProposalInfo, actor string) error {
	if actor == "" {
		u, err := a.c.userOf(p.SenderCredential)
		if err != nil {
			return err
		}
		actor = u
	}
	role, err := a.actorRole(actor)
	if err != nil {
		return err
	}
	need := func(c Capability, what string) error {
		if !role.Has(c) {
			return fmt.Errorf("%w: %s (%s) may not %s", ErrForbidden, actor, role.Name, what)
		}
		return nil
	}
	switch wire.ProposalType(p.Type) {
	case wire.ProposalTypeAdd:
		u, err := a.c.userOf(p.Added)
		if err != nil {
			return err
		}
		if u == actor {
			return need(AddOwnClient, "add its own client")
		}
		if err := need(AddParticipant, "add "+u); err != nil {
			return err
		}
		if _, listed := a.old.RoleOf(u); listed {
			return nil
		}
		target, ok := a.new.RoleOf(u)
		if !ok && a.standalone {
			return nil
		}
		if !ok {
			return fmt.Errorf("%w: %s is added but not listed in the room policy", ErrForbidden, u)
		}
		if !containsRole(role.AddableRoles, target.Index) {
			return fmt.Errorf("%w: %s (%s) may not add %s as %s", ErrForbidden, actor, role.Name, u, target.Name)
		}
		return nil
	case wire.ProposalTypeRemove:
		u, err := a.c.userOf(p.RemovedCredential)
		if err != nil {
			return err
		}
		if u == actor {
			return need(RemoveOwnClient, "remove its own client")
		}
		return need(RemoveParticipant, "remove "+u)
	case wire.ProposalTypeUpdate:
		u, err := a.c.userOf(p.Updated)
		if err != nil {
			return err
		}
		if u != actor {
			return fmt.Errorf("%w: an Update changes %s's leaf to user %s", ErrForbidden, actor, u)
		}
		return nil
	case wire.ProposalTypePSK, wire.ProposalTypeExternalInit:
		return nil
	case wire.ProposalTypeReInit:
		return need(UpdatePolicy, "reinitialize the group")
	case wire.ProposalTypeGroupContextExtensions:
		return a.policyChange(p.Extensions, actor, role)
	}
	return fmt.Errorf("%w: proposal type %d", ErrForbidden, p.Type)
}

// policyChange authorizes new GroupContext extensions proposed by actor:
// with UpdatePolicy anything; otherwise only the participant list may
// change, by adding users with roles the actor may give (AddParticipant) or
// removing users (RemoveParticipant).
func (a *authorization) policyChange(exts []mls.Extension, actor string, role *Role) error {
	next, err := FromExtensions(exts)
	if err != nil {
		if errors.Is(err, ErrNoPolicy) {
			return fmt.Errorf("%w: the proposal removes the room policy", ErrForbidden)
		}
		return err
	}
	if role.Has(UpdatePolicy) {
		return nil
	}
	if !sameOtherExtensions(exts, a.oldExts) || !equalRoles(a.old, next) {
		return fmt.Errorf("%w: %s (%s) may not change roles or other group extensions", ErrForbidden, actor, role.Name)
	}
	for _, x := range a.old.Participants {
		r, ok := next.RoleOf(x.UserID)
		switch {
		case !ok && !role.Has(RemoveParticipant):
			return fmt.Errorf("%w: %s (%s) may not remove %s from the room", ErrForbidden, actor, role.Name, x.UserID)
		case ok && r.Index != x.Role:
			return fmt.Errorf("%w: %s (%s) may not change %s's role", ErrForbidden, actor, role.Name, x.UserID)
		}
	}
	for _, x := range next.Participants {
		if _, ok := a.old.RoleOf(x.UserID); ok {
			continue
		}
		if !role.Has(AddParticipant) || !containsRole(role.AddableRoles, x.Role) {
			return fmt.Errorf("%w: %s (%s) may not list %s as role %d", ErrForbidden, actor, role.Name, x.UserID, x.Role)
		}
	}
	return nil
}

// sameOtherExtensions reports whether a and b hold the same extensions
// besides the room policy, in the same order.
func sameOtherExtensions(a, b []mls.Extension) bool {
	other := func(es []mls.Extension) []mls.Extension {
		var out []mls.Extension
		for _, e := range es {
			if uint16(e.ExtensionType) != ExtensionType {
				out = append(out, e)
			}
		}
		return out
	}
	oa, ob := other(a), other(b)
	if len(oa) != len(ob) {
		return false
	}
	for i := range oa {
		if oa[i].ExtensionType != ob[i].ExtensionType || !bytes.Equal(oa[i].ExtensionData, ob[i].ExtensionData) {
			return false
		}
	}
	return true
}

func containsRole(rs []uint8, r uint8) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}
