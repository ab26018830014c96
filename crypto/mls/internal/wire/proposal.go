package wire

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// Add proposes adding the client of a KeyPackage (RFC 9420 §12.1.1).
type Add struct{ KeyPackage KeyPackage }

// Update proposes replacing the sender's leaf (RFC 9420 §12.1.2).
type Update struct{ LeafNode LeafNode }

// Remove proposes removing the member at leaf index Removed (RFC 9420 §12.1.3).
type Remove struct{ Removed uint32 }

// Proposal is a proposed change to the group (RFC 9420 §12.1). Exactly the
// field matching ProposalType is set. This version decodes Add, Update and
// Remove; other types fail with ErrUnknownValue until they are added here.
type Proposal struct {
	ProposalType ProposalType
	Add          *Add
	Update       *Update
	Remove       *Remove
}

// MarshalMLS encodes the proposal.
func (p *Proposal) MarshalMLS(w *codec.Writer) {
	w.WriteUint16(uint16(p.ProposalType))
	switch p.ProposalType {
	case ProposalTypeAdd:
		p.Add.KeyPackage.MarshalMLS(w)
	case ProposalTypeUpdate:
		p.Update.LeafNode.MarshalMLS(w)
	case ProposalTypeRemove:
		w.WriteUint32(p.Remove.Removed)
	}
}

// UnmarshalMLS decodes a proposal.
func (p *Proposal) UnmarshalMLS(r *codec.Reader) error {
	t, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("proposal type: %w", err)
	}
	*p = Proposal{ProposalType: ProposalType(t)}
	switch p.ProposalType {
	case ProposalTypeAdd:
		p.Add = &Add{}
		return p.Add.KeyPackage.UnmarshalMLS(r)
	case ProposalTypeUpdate:
		p.Update = &Update{}
		return p.Update.LeafNode.UnmarshalMLS(r)
	case ProposalTypeRemove:
		p.Remove = &Remove{}
		if p.Remove.Removed, err = r.ReadUint32(); err != nil {
			return fmt.Errorf("remove proposal: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w: proposal type %d", ErrUnknownValue, t)
}
