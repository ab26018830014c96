package wire

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// Add proposes adding the client of a KeyPackage (RFC 9420 §12.1.1).
type Add struct{ KeyPackage KeyPackage }

// MarshalMLS encodes the Add body.
func (a *Add) MarshalMLS(w *codec.Writer) { a.KeyPackage.MarshalMLS(w) }

// UnmarshalMLS decodes an Add body.
func (a *Add) UnmarshalMLS(r *codec.Reader) error {
	if err := a.KeyPackage.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("add proposal: %w", err)
	}
	return nil
}

// Update proposes replacing the sender's leaf (RFC 9420 §12.1.2).
type Update struct{ LeafNode LeafNode }

// MarshalMLS encodes the Update body.
func (u *Update) MarshalMLS(w *codec.Writer) { u.LeafNode.MarshalMLS(w) }

// UnmarshalMLS decodes an Update body.
func (u *Update) UnmarshalMLS(r *codec.Reader) error {
	if err := u.LeafNode.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("update proposal: %w", err)
	}
	return nil
}

// Remove proposes removing the member at leaf index Removed (RFC 9420 §12.1.3).
type Remove struct{ Removed uint32 }

// MarshalMLS encodes the Remove body.
func (p *Remove) MarshalMLS(w *codec.Writer) { w.WriteUint32(p.Removed) }

// UnmarshalMLS decodes a Remove body.
func (p *Remove) UnmarshalMLS(r *codec.Reader) error {
	var err error
	if p.Removed, err = r.ReadUint32(); err != nil {
		return fmt.Errorf("remove proposal: %w", err)
	}
	return nil
}

// PreSharedKey proposes injecting a PSK into the next epoch's key schedule
// (RFC 9420 §12.1.4).
type PreSharedKey struct{ PSK PreSharedKeyID }

// MarshalMLS encodes the PreSharedKey body.
func (p *PreSharedKey) MarshalMLS(w *codec.Writer) { p.PSK.MarshalMLS(w) }

// UnmarshalMLS decodes a PreSharedKey body.
func (p *PreSharedKey) UnmarshalMLS(r *codec.Reader) error {
	if err := p.PSK.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("pre-shared key proposal: %w", err)
	}
	return nil
}

// ReInit proposes closing the group and restarting it with new parameters
// (RFC 9420 §12.1.5, §11.2).
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite ciphersuite.ID
	Extensions  []Extension
}

// MarshalMLS encodes the ReInit body.
func (p *ReInit) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(p.GroupID)
	w.WriteUint16(uint16(p.Version))
	w.WriteUint16(uint16(p.CipherSuite))
	WriteExtensions(w, p.Extensions)
}

// UnmarshalMLS decodes a ReInit body.
func (p *ReInit) UnmarshalMLS(r *codec.Reader) error {
	*p = ReInit{}
	var err error
	if p.GroupID, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("reinit group id: %w", err)
	}
	v, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("reinit version: %w", err)
	}
	p.Version = ProtocolVersion(v)
	cs, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("reinit cipher suite: %w", err)
	}
	p.CipherSuite = ciphersuite.ID(cs)
	if err = ReadExtensions(r, &p.Extensions); err != nil {
		return fmt.Errorf("reinit extensions: %w", err)
	}
	return nil
}

// ExternalInit carries the HPKE encapsulation from which a joiner derives the
// init secret of an external commit (RFC 9420 §12.1.6, §8.3).
type ExternalInit struct{ KEMOutput []byte }

// MarshalMLS encodes the ExternalInit body.
func (p *ExternalInit) MarshalMLS(w *codec.Writer) { w.WriteOpaque(p.KEMOutput) }

// UnmarshalMLS decodes an ExternalInit body.
func (p *ExternalInit) UnmarshalMLS(r *codec.Reader) error {
	var err error
	if p.KEMOutput, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("external init kem output: %w", err)
	}
	return nil
}

// GroupContextExtensions proposes replacing the group context's extensions
// (RFC 9420 §12.1.7).
type GroupContextExtensions struct{ Extensions []Extension }

// MarshalMLS encodes the GroupContextExtensions body.
func (p *GroupContextExtensions) MarshalMLS(w *codec.Writer) { WriteExtensions(w, p.Extensions) }

// UnmarshalMLS decodes a GroupContextExtensions body.
func (p *GroupContextExtensions) UnmarshalMLS(r *codec.Reader) error {
	if err := ReadExtensions(r, &p.Extensions); err != nil {
		return fmt.Errorf("group context extensions proposal: %w", err)
	}
	return nil
}

// Proposal is a proposed change to the group (RFC 9420 §12.1). Exactly the
// field matching ProposalType is set.
//
// The RFC's Proposal struct has no length prefix and no default arm, so a
// proposal of a type this package does not know cannot be delimited; such
// proposals fail to decode with ErrUnknownValue, which is what §12.2 asks of
// a commit carrying an unsupported proposal type anyway.
type Proposal struct {
	ProposalType           ProposalType
	Add                    *Add
	Update                 *Update
	Remove                 *Remove
	PreSharedKey           *PreSharedKey
	ReInit                 *ReInit
	ExternalInit           *ExternalInit
	GroupContextExtensions *GroupContextExtensions
}

// body returns the set body for the proposal type, or nil.
func (p *Proposal) body() codec.Marshaler {
	switch p.ProposalType {
	case ProposalTypeAdd:
		return p.Add
	case ProposalTypeUpdate:
		return p.Update
	case ProposalTypeRemove:
		return p.Remove
	case ProposalTypePSK:
		return p.PreSharedKey
	case ProposalTypeReInit:
		return p.ReInit
	case ProposalTypeExternalInit:
		return p.ExternalInit
	case ProposalTypeGroupContextExtensions:
		return p.GroupContextExtensions
	}
	return nil
}

// MarshalMLS encodes the proposal. The body pointer for ProposalType must be
// set.
func (p *Proposal) MarshalMLS(w *codec.Writer) {
	w.WriteUint16(uint16(p.ProposalType))
	if b := p.body(); b != nil {
		b.MarshalMLS(w)
	}
}

// UnmarshalMLS decodes a proposal; an unknown type fails with ErrUnknownValue.
func (p *Proposal) UnmarshalMLS(r *codec.Reader) error {
	t, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("proposal type: %w", err)
	}
	*p = Proposal{ProposalType: ProposalType(t)}
	var body codec.Unmarshaler
	switch p.ProposalType {
	case ProposalTypeAdd:
		p.Add = &Add{}
		body = p.Add
	case ProposalTypeUpdate:
		p.Update = &Update{}
		body = p.Update
	case ProposalTypeRemove:
		p.Remove = &Remove{}
		body = p.Remove
	case ProposalTypePSK:
		p.PreSharedKey = &PreSharedKey{}
		body = p.PreSharedKey
	case ProposalTypeReInit:
		p.ReInit = &ReInit{}
		body = p.ReInit
	case ProposalTypeExternalInit:
		p.ExternalInit = &ExternalInit{}
		body = p.ExternalInit
	case ProposalTypeGroupContextExtensions:
		p.GroupContextExtensions = &GroupContextExtensions{}
		body = p.GroupContextExtensions
	default:
		return fmt.Errorf("%w: proposal type %d", ErrUnknownValue, t)
	}
	return body.UnmarshalMLS(r)
}

// ProposalOrRefType says whether a commit carries a proposal by value or by
// reference (RFC 9420 §12.4).
type ProposalOrRefType uint8

// ProposalOrRef types.
const (
	ProposalOrRefTypeProposal  ProposalOrRefType = 1
	ProposalOrRefTypeReference ProposalOrRefType = 2
)

// ProposalOrRef is one entry of a commit's proposal list (RFC 9420 §12.4):
// Proposal is set for the proposal type, Reference (a ProposalRef, §5.2) for
// the reference type.
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal
	Reference []byte
}

// MarshalMLS encodes the entry.
func (p *ProposalOrRef) MarshalMLS(w *codec.Writer) {
	w.WriteUint8(uint8(p.Type))
	switch p.Type {
	case ProposalOrRefTypeProposal:
		p.Proposal.MarshalMLS(w)
	case ProposalOrRefTypeReference:
		w.WriteOpaque(p.Reference)
	}
}

// UnmarshalMLS decodes an entry; an unknown type fails with ErrUnknownValue.
func (p *ProposalOrRef) UnmarshalMLS(r *codec.Reader) error {
	t, err := r.ReadUint8()
	if err != nil {
		return fmt.Errorf("proposal or ref type: %w", err)
	}
	*p = ProposalOrRef{Type: ProposalOrRefType(t)}
	switch p.Type {
	case ProposalOrRefTypeProposal:
		p.Proposal = &Proposal{}
		return p.Proposal.UnmarshalMLS(r)
	case ProposalOrRefTypeReference:
		if p.Reference, err = r.ReadOpaque(); err != nil {
			return fmt.Errorf("proposal reference: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w: proposal or ref type %d", ErrUnknownValue, t)
}

// Commit applies a list of proposals and optionally refreshes the
// committer's path (RFC 9420 §12.4).
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

// MarshalMLS encodes the commit.
func (c *Commit) MarshalMLS(w *codec.Writer) {
	w.WriteVector(func(w *codec.Writer) {
		for i := range c.Proposals {
			c.Proposals[i].MarshalMLS(w)
		}
	})
	w.WriteOptional(c.Path != nil, func(w *codec.Writer) { c.Path.MarshalMLS(w) })
}

// UnmarshalMLS decodes a commit. At most MaxProposalsPerCommit entries are
// accepted.
func (c *Commit) UnmarshalMLS(r *codec.Reader) error {
	*c = Commit{}
	err := r.ReadVector(func(r *codec.Reader) error {
		if len(c.Proposals) >= MaxProposalsPerCommit {
			return fmt.Errorf("%w: more than %d proposals", ErrTooMany, MaxProposalsPerCommit)
		}
		var p ProposalOrRef
		if err := p.UnmarshalMLS(r); err != nil {
			return err
		}
		c.Proposals = append(c.Proposals, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit proposals: %w", err)
	}
	present, err := r.ReadOptional()
	if err != nil {
		return fmt.Errorf("commit path: %w", err)
	}
	if present {
		c.Path = &UpdatePath{}
		if err := c.Path.UnmarshalMLS(r); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	return nil
}

// PSKType distinguishes external and resumption PSKs (RFC 9420 §8.4).
type PSKType uint8

// PSK types.
const (
	PSKTypeExternal   PSKType = 1
	PSKTypeResumption PSKType = 2
)

// ResumptionPSKUsage says why a resumption PSK is used (RFC 9420 §8.4):
// ordinary application use, a re-initialisation (§11.2) or a branch (§11.3).
type ResumptionPSKUsage uint8

// Resumption PSK usages.
const (
	ResumptionPSKUsageApplication ResumptionPSKUsage = 1
	ResumptionPSKUsageReInit      ResumptionPSKUsage = 2
	ResumptionPSKUsageBranch      ResumptionPSKUsage = 3
)

// PreSharedKeyID names a PSK (RFC 9420 §8.4). ID is set for external PSKs;
// Usage, GroupID and PSKEpoch for resumption PSKs. Nonce is always present.
type PreSharedKeyID struct {
	PSKType  PSKType
	ID       []byte
	Usage    ResumptionPSKUsage
	GroupID  []byte
	PSKEpoch uint64
	Nonce    []byte
}

// MarshalMLS encodes the PSK identifier.
func (p *PreSharedKeyID) MarshalMLS(w *codec.Writer) {
	w.WriteUint8(uint8(p.PSKType))
	switch p.PSKType {
	case PSKTypeExternal:
		w.WriteOpaque(p.ID)
	case PSKTypeResumption:
		w.WriteUint8(uint8(p.Usage))
		w.WriteOpaque(p.GroupID)
		w.WriteUint64(p.PSKEpoch)
	}
	w.WriteOpaque(p.Nonce)
}

// UnmarshalMLS decodes a PSK identifier; unknown PSK types and resumption
// usages fail with ErrUnknownValue.
func (p *PreSharedKeyID) UnmarshalMLS(r *codec.Reader) error {
	t, err := r.ReadUint8()
	if err != nil {
		return fmt.Errorf("psk type: %w", err)
	}
	*p = PreSharedKeyID{PSKType: PSKType(t)}
	switch p.PSKType {
	case PSKTypeExternal:
		if p.ID, err = r.ReadOpaque(); err != nil {
			return fmt.Errorf("psk id: %w", err)
		}
	case PSKTypeResumption:
		u, err := r.ReadUint8()
		if err != nil {
			return fmt.Errorf("psk usage: %w", err)
		}
		p.Usage = ResumptionPSKUsage(u)
		if p.Usage < ResumptionPSKUsageApplication || p.Usage > ResumptionPSKUsageBranch {
			return fmt.Errorf("%w: resumption psk usage %d", ErrUnknownValue, u)
		}
		if p.GroupID, err = r.ReadOpaque(); err != nil {
			return fmt.Errorf("psk group id: %w", err)
		}
		if p.PSKEpoch, err = r.ReadUint64(); err != nil {
			return fmt.Errorf("psk epoch: %w", err)
		}
	default:
		return fmt.Errorf("%w: psk type %d", ErrUnknownValue, t)
	}
	if p.Nonce, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("psk nonce: %w", err)
	}
	return nil
}

// PSKLabel returns the encoding of PSKLabel{id, index, count}, the context
// under which the index-th of count PSKs is expanded (RFC 9420 §8.4).
func PSKLabel(id *PreSharedKeyID, index, count uint16) ([]byte, error) {
	var w codec.Writer
	id.MarshalMLS(&w)
	w.WriteUint16(index)
	w.WriteUint16(count)
	return w.Bytes()
}

// WritePreSharedKeyIDs writes PreSharedKeyID psks<V>.
func WritePreSharedKeyIDs(w *codec.Writer, ids []PreSharedKeyID) {
	w.WriteVector(func(w *codec.Writer) {
		for i := range ids {
			ids[i].MarshalMLS(w)
		}
	})
}

// ReadPreSharedKeyIDs reads PreSharedKeyID psks<V>.
func ReadPreSharedKeyIDs(r *codec.Reader, ids *[]PreSharedKeyID) error {
	*ids = nil
	return r.ReadVector(func(r *codec.Reader) error {
		var id PreSharedKeyID
		if err := id.UnmarshalMLS(r); err != nil {
			return err
		}
		*ids = append(*ids, id)
		return nil
	})
}
