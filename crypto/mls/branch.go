package mls

import (
	"bytes"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// Groups that resume another group (RFC 9420 §11.2 reinitialization and
// §11.3 subgroup branching): the creator starts a fresh group whose first
// commit adds the other members' new KeyPackages and injects the old
// group's resumption PSK with usage reinit or branch; joiners check that the
// Welcome really resumes the group they came from.

// Branch creates a subgroup of g (RFC 9420 §11.3): a new group with id
// groupID, g's cipher suite and version, GroupContext extensions exts, and
// the own member's credential and signature key. Its first commit adds
// keyPackages — fresh KeyPackages of other members of g, each of whose
// credentials must match a member of g — and injects g's current resumption
// PSK with usage branch. The commit is staged as with Commit: nobody else
// processes it, so call MergePendingCommit on the returned group, then send
// the Welcome to the joiners, who call JoinBranch with their copy of g.
func (g *Group) Branch(groupID []byte, exts []Extension, keyPackages [][]byte, opts *CommitOptions) (*Group, *CommitOutput, error) {
	if err := g.usable(); err != nil {
		return nil, nil, fmt.Errorf("mls: branch: %w", err)
	}
	for i, kp := range keyPackages {
		p, err := AddProposal(kp)
		if err != nil {
			return nil, nil, fmt.Errorf("mls: branch: key package %d: %w", i, err)
		}
		if !g.hasMemberCredential(&p.p.Add.KeyPackage.LeafNode.Credential) {
			return nil, nil, fmt.Errorf("mls: branch: %w: key package %d is not of a member of the group", ErrInvalidProposal, i)
		}
	}
	cred := g.tree.Leaf(g.LeafIndex()).Credential
	return g.resume(wire.ResumptionPSKUsageBranch, groupID, g.suite.ID(), exts, cred, g.sigKey, keyPackages, opts)
}

// ReInitGroupWithKey is ReInitGroup with a new signature key for the own
// member (the private half, in the wire encoding of the ReInit's cipher
// suite): a ReInit that changes the cipher suite usually changes the
// signature scheme, so the old key cannot sign in the new group. The
// credential stays the same.
func (g *Group) ReInitGroupWithKey(signaturePriv []byte, keyPackages [][]byte, opts *CommitOptions) (*Group, *CommitOutput, error) {
	r := g.reinit
	if r == nil || g.removed {
		return nil, nil, fmt.Errorf("mls: reinit: the group was not reinitialized")
	}
	cred := g.tree.Leaf(g.LeafIndex()).Credential
	return g.resume(wire.ResumptionPSKUsageReInit, r.GroupID, r.CipherSuite, r.Extensions, cred, signaturePriv, keyPackages, opts)
}

// resume creates a group that resumes g with its current epoch's
// resumption PSK of the given usage, and stages its first commit.
func (g *Group) resume(usage wire.ResumptionPSKUsage, groupID []byte, suite CipherSuite, exts []Extension, cred Credential, signaturePriv []byte, keyPackages [][]byte, opts *CommitOptions) (*Group, *CommitOutput, error) {
	psk, ok := g.resumption[g.ctx.Epoch]
	if !ok {
		return nil, nil, fmt.Errorf("mls: resume group: %w", ErrUnknownPSK)
	}
	ng, err := CreateGroup(g.cfg, groupID, suite, cred, signaturePriv, exts)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: resume group: %w", err)
	}
	ng.priorPSKs = map[string][]byte{priorKey(g.ctx.GroupID, g.ctx.Epoch): psk}
	o := CommitOptions{}
	if opts != nil {
		o = *opts
	}
	pskProposal := &Proposal{wire.Proposal{ProposalType: wire.ProposalTypePSK, PreSharedKey: &wire.PreSharedKey{PSK: wire.PreSharedKeyID{
		PSKType: wire.PSKTypeResumption, Usage: usage, GroupID: bytes.Clone(g.ctx.GroupID), PSKEpoch: g.ctx.Epoch, Nonce: randomBytes(ng.suite.Nh())}}}}
	o.Proposals = append([]*Proposal{pskProposal}, o.Proposals...)
	for i, kp := range keyPackages {
		p, err := AddProposal(kp)
		if err != nil {
			return nil, nil, fmt.Errorf("mls: resume group: key package %d: %w", i, err)
		}
		o.Proposals = append(o.Proposals, p)
	}
	out, err := ng.Commit(&o)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: resume group: %w", err)
	}
	return ng, out, nil
}

// priorKey is the key of Group.priorPSKs.
func priorKey(groupID []byte, epoch uint64) string { return fmt.Sprintf("%x/%d", groupID, epoch) }

// JoinBranch joins a subgroup branched from parent (RFC 9420 §11.3) from its
// Welcome, like JoinFromWelcome, resolving the branch PSK from parent's
// retained resumption PSKs. It checks what §11.3 requires of the new group:
// the parent's version and cipher suite, epoch 1, a resumption PSK of usage
// branch naming the parent group, and only members whose credentials match
// members of the parent.
func JoinBranch(cfg *Config, parent *Group, welcome, keyPackage []byte, priv *KeyPackagePrivate, ratchetTree []byte) (*Group, error) {
	if err := parent.usable(); err != nil {
		return nil, fmt.Errorf("mls: join branch: %w", err)
	}
	prior := map[string][]byte{}
	for ep, psk := range parent.resumption {
		prior[priorKey(parent.ctx.GroupID, ep)] = psk
	}
	g, psks, err := joinFromWelcome(cfg, welcome, keyPackage, priv, ratchetTree, prior)
	if err != nil {
		return nil, fmt.Errorf("mls: join branch: %w", err)
	}
	if g.ctx.Version != parent.ctx.Version || g.ctx.CipherSuite != parent.ctx.CipherSuite {
		return nil, fmt.Errorf("mls: join branch: %w: version or cipher suite differs from the parent group", ErrInvalidWelcome)
	}
	if err := checkResumptionPSKs(psks, wire.ResumptionPSKUsageBranch, parent.ctx.GroupID, nil); err != nil {
		return nil, fmt.Errorf("mls: join branch: %w", err)
	}
	if g.ctx.Epoch != 1 {
		return nil, fmt.Errorf("mls: join branch: %w: epoch %d, want 1", ErrInvalidWelcome, g.ctx.Epoch)
	}
	for _, i := range g.tree.Members() {
		if !parent.hasMemberCredential(&g.tree.Leaf(i).Credential) {
			return nil, fmt.Errorf("mls: join branch: %w: leaf %d is not a member of the parent group", ErrInvalidWelcome, i)
		}
	}
	return g, nil
}

// JoinReInit joins the group that replaces old after a ReInit commit
// (RFC 9420 §11.2) from its Welcome, like JoinFromWelcome, resolving the
// reinit PSK from old's last epoch. It checks that the new group's version,
// cipher suite, group id and extensions are those of the ReInit proposal,
// that it is in epoch 1, and that the Welcome injects old's last resumption
// PSK with usage reinit.
func JoinReInit(cfg *Config, old *Group, welcome, keyPackage []byte, priv *KeyPackagePrivate, ratchetTree []byte) (*Group, error) {
	r := old.reinit
	if r == nil || old.removed {
		return nil, fmt.Errorf("mls: join reinit: the old group was not reinitialized")
	}
	psk, ok := old.resumption[old.ctx.Epoch]
	if !ok {
		return nil, fmt.Errorf("mls: join reinit: %w", ErrUnknownPSK)
	}
	prior := map[string][]byte{priorKey(old.ctx.GroupID, old.ctx.Epoch): psk}
	g, psks, err := joinFromWelcome(cfg, welcome, keyPackage, priv, ratchetTree, prior)
	if err != nil {
		return nil, fmt.Errorf("mls: join reinit: %w", err)
	}
	c := &g.ctx
	if c.Version != r.Version || c.CipherSuite != r.CipherSuite || !bytes.Equal(c.GroupID, r.GroupID) ||
		!bytes.Equal(mustMarshalExts(c.Extensions), mustMarshalExts(r.Extensions)) {
		return nil, fmt.Errorf("mls: join reinit: %w: the group does not match the ReInit proposal", ErrInvalidWelcome)
	}
	epoch := old.ctx.Epoch
	if err := checkResumptionPSKs(psks, wire.ResumptionPSKUsageReInit, old.ctx.GroupID, &epoch); err != nil {
		return nil, fmt.Errorf("mls: join reinit: %w", err)
	}
	if c.Epoch != 1 {
		return nil, fmt.Errorf("mls: join reinit: %w: epoch %d, want 1", ErrInvalidWelcome, c.Epoch)
	}
	return g, nil
}

// checkResumptionPSKs requires exactly one resumption PSK of usage among
// psks, naming groupID (and epoch, if given), and no resumption PSK of
// another non-application usage (RFC 9420 §11.2, §11.3).
func checkResumptionPSKs(psks []wire.PreSharedKeyID, usage wire.ResumptionPSKUsage, groupID []byte, epoch *uint64) error {
	n := 0
	for _, id := range psks {
		if id.PSKType != wire.PSKTypeResumption || id.Usage == wire.ResumptionPSKUsageApplication {
			continue
		}
		if id.Usage != usage || !bytes.Equal(id.GroupID, groupID) || (epoch != nil && id.PSKEpoch != *epoch) {
			return fmt.Errorf("%w: resumption psk of usage %d for another group or epoch", ErrInvalidWelcome, id.Usage)
		}
		n++
	}
	if n != 1 {
		return fmt.Errorf("%w: %d resumption psks of usage %d, want 1", ErrInvalidWelcome, n, usage)
	}
	return nil
}

// hasMemberCredential reports whether a member of g presents the same
// identity as cred: same credential type, and the same identity (basic) or
// end-entity certificate (X.509). RFC 9420 §11.3 leaves "matching" to the
// application; this is the strict reading.
func (g *Group) hasMemberCredential(cred *Credential) bool {
	for _, i := range g.tree.Members() {
		c := &g.tree.Leaf(i).Credential
		if c.CredentialType != cred.CredentialType {
			continue
		}
		switch c.CredentialType {
		case CredentialBasic:
			if bytes.Equal(c.Identity, cred.Identity) {
				return true
			}
		default:
			if len(c.Certificates) > 0 && len(cred.Certificates) > 0 && bytes.Equal(c.Certificates[0], cred.Certificates[0]) {
				return true
			}
		}
	}
	return false
}
