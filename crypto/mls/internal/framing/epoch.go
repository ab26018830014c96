package framing

import (
	"bytes"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// SignatureKeyFunc returns the signature public key of the sender of
// content: the leaf's key for a member, the external_senders entry for an
// external sender, the key in the Add's KeyPackage or the commit's
// UpdatePath leaf for new members (RFC 9420 §6.1). It returns an error when
// the sender is unknown, e.g. a blank or out-of-range leaf; Unprotect
// reports it as ErrSender.
type SignatureKeyFunc func(content *wire.FramedContent) ([]byte, error)

// Epoch is what framing needs of one epoch of a group: the suite, the
// GroupContext, the membership key and sender data secret of the key
// schedule (RFC 9420 §8) and the epoch's secret tree (RFC 9420 §9). It is
// not safe for concurrent use: the secret tree changes with every message.
type Epoch struct {
	Suite            *ciphersuite.Suite
	GroupContext     *wire.GroupContext
	MembershipKey    []byte
	SenderDataSecret []byte
	SecretTree       *secrettree.Tree
	// Padding pads PrivateMessages; nil pads nothing.
	Padding Padding
}

// Protect signs content as the own member (or, for PublicMessages, any
// sender type allowed to send it) and frames it with wire format wf, a
// PublicMessage (handshake only, with membership tag for members) or a
// PrivateMessage (RFC 9420 §6.2, §6.3). content's group id and epoch must be
// this epoch's. confirmationTag is required for commits.
func (e *Epoch) Protect(signer *ciphersuite.Signer, wf wire.WireFormat, content *wire.FramedContent, confirmationTag []byte) (*wire.MLSMessage, error) {
	if err := e.checkGroupEpoch(content.GroupID, content.Epoch); err != nil {
		return nil, err
	}
	switch wf {
	case wire.WireFormatPublicMessage:
		if content.ContentType == wire.ContentTypeCommit && len(confirmationTag) == 0 {
			return nil, fmt.Errorf("protect commit: missing confirmation tag")
		}
		pm, err := ProtectPublic(e.Suite, signer, *content, e.GroupContext, e.MembershipKey, confirmationTag)
		if err != nil {
			return nil, err
		}
		return &wire.MLSMessage{Version: wire.ProtocolVersionMLS10, WireFormat: wf, PublicMessage: pm}, nil
	case wire.WireFormatPrivateMessage:
		pm, err := protectPrivate(e.Suite, signer, content, e.GroupContext, e.SecretTree, e.SenderDataSecret, confirmationTag, e.Padding)
		if err != nil {
			return nil, err
		}
		return &wire.MLSMessage{Version: wire.ProtocolVersionMLS10, WireFormat: wf, PrivateMessage: pm}, nil
	}
	return nil, fmt.Errorf("%w: wire format %d", ErrWireFormat, wf)
}

// Unprotect authenticates and, for a PrivateMessage, decrypts a group
// message of this epoch (RFC 9420 §6): it checks group id and epoch
// (ErrWrongGroup, ErrWrongEpoch), the wire format (ErrWireFormat), that
// application data is never public (ErrApplicationPublic), which content
// types each sender type may send and that the sender resolves to a key
// (ErrSender), the membership tag of member PublicMessages
// (ErrMembershipTag), decryption (ErrDecrypt), the signature (ErrSignature),
// and the ratchet generation (secrettree.ErrGenerationConsumed for replays
// and deleted keys, secrettree.ErrGenerationTooFar beyond the window). A
// PrivateMessage's key is deleted only once the message verified.
//
// The confirmation tag of a commit is returned unchecked: it needs the next
// epoch's key schedule (RFC 9420 §6.1, §12.4.2).
func (e *Epoch) Unprotect(m *wire.MLSMessage, signatureKey SignatureKeyFunc) (*wire.AuthenticatedContent, error) {
	switch {
	case m.WireFormat == wire.WireFormatPublicMessage && m.PublicMessage != nil:
		pm := m.PublicMessage
		if err := e.checkGroupEpoch(pm.Content.GroupID, pm.Content.Epoch); err != nil {
			return nil, err
		}
		if pm.Content.ContentType == wire.ContentTypeApplication {
			return nil, ErrApplicationPublic
		}
		if err := checkSender(&pm.Content); err != nil {
			return nil, err
		}
		pub, err := signatureKey(&pm.Content)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSender, err)
		}
		return UnprotectPublic(e.Suite, pm, e.GroupContext, e.MembershipKey, pub)
	case m.WireFormat == wire.WireFormatPrivateMessage && m.PrivateMessage != nil:
		pm := m.PrivateMessage
		if err := e.checkGroupEpoch(pm.GroupID, pm.Epoch); err != nil {
			return nil, err
		}
		keyOf := func(leaf uint32) ([]byte, error) {
			return signatureKey(&wire.FramedContent{GroupID: pm.GroupID, Epoch: pm.Epoch,
				Sender: wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: leaf}, ContentType: pm.ContentType})
		}
		ac, _, err := UnprotectPrivate(e.Suite, pm, e.GroupContext, e.SecretTree, e.SenderDataSecret, keyOf)
		return ac, err
	}
	return nil, fmt.Errorf("%w: wire format %d", ErrWireFormat, m.WireFormat)
}

func (e *Epoch) checkGroupEpoch(groupID []byte, epoch uint64) error {
	if !bytes.Equal(groupID, e.GroupContext.GroupID) {
		return ErrWrongGroup
	}
	if epoch != e.GroupContext.Epoch {
		return fmt.Errorf("%w: message epoch %d, group epoch %d", ErrWrongEpoch, epoch, e.GroupContext.Epoch)
	}
	return nil
}
