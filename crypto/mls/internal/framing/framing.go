// Package framing protects and unprotects MLS messages (RFC 9420 §6):
// signing FramedContent, the membership tag of a PublicMessage, and the
// sender-data and content encryption of a PrivateMessage with keys from the
// epoch's secret tree, including the reuse guard and padding.
package framing

import (
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// Signature label of FramedContentTBS (RFC 9420 §6.1).
const labelFramedContentTBS = "FramedContentTBS"

// Errors; callers distinguish them with errors.Is.
var (
	// ErrApplicationPublic means application data was to be sent or was
	// received as a PublicMessage, which RFC 9420 §6.2 forbids.
	ErrApplicationPublic = errors.New("mls framing: application data in a PublicMessage")
	// ErrMembershipTag means a PublicMessage's membership tag is missing or wrong.
	ErrMembershipTag = errors.New("mls framing: invalid membership tag")
	// ErrSignature means the content signature does not verify.
	ErrSignature = errors.New("mls framing: invalid signature")
	// ErrDecrypt means the sender data or content did not decrypt.
	ErrDecrypt = errors.New("mls framing: decryption failed")
	// ErrSender means the sender is not one this message form allows, may
	// not send this content type, or is not a member of the group.
	ErrSender = errors.New("mls framing: invalid sender")
	// ErrWrongGroup means the message belongs to another group.
	ErrWrongGroup = errors.New("mls framing: message for another group")
	// ErrWrongEpoch means the message belongs to another epoch.
	ErrWrongEpoch = errors.New("mls framing: message for another epoch")
	// ErrWireFormat means the message is neither a PublicMessage nor a
	// PrivateMessage, or its body does not match its wire format.
	ErrWireFormat = errors.New("mls framing: not a group message")
	// ErrPadding means a padding policy asked for a negative or oversized
	// amount of padding.
	ErrPadding = errors.New("mls framing: invalid padding")
)

// MaxPadding bounds the zero bytes a padding policy may add to one message.
const MaxPadding = 1 << 16

// Padding is a padding policy for PrivateMessages (RFC 9420 §6.3, §16.4.1):
// given the length of the encoded content and auth data, it returns how
// many zero bytes to append, at most MaxPadding. A nil Padding pads nothing.
type Padding func(contentLen int) int

// PadToMultiple returns a policy that pads the content to a multiple of
// block bytes (block <= 1 means no padding), hiding the exact length.
func PadToMultiple(block int) Padding {
	return func(n int) int {
		if block <= 1 {
			return 0
		}
		return (block - n%block) % block
	}
}

// checkSender enforces which content types each sender type may send
// (RFC 9420 §6, §12.1.8): external senders only proposals,
// new_member_proposal only Add proposals, new_member_commit only commits
// (with a path, §12.4.3.2). Member senders may send anything.
func checkSender(c *wire.FramedContent) error {
	switch c.Sender.SenderType {
	case wire.SenderTypeMember:
		return nil
	case wire.SenderTypeExternal:
		if c.ContentType != wire.ContentTypeProposal {
			return fmt.Errorf("%w: external sender sent content type %d", ErrSender, c.ContentType)
		}
		return nil
	case wire.SenderTypeNewMemberProposal:
		if c.ContentType != wire.ContentTypeProposal || c.Proposal == nil || c.Proposal.ProposalType != wire.ProposalTypeAdd {
			return fmt.Errorf("%w: new_member_proposal sender may only propose Add", ErrSender)
		}
		return nil
	case wire.SenderTypeNewMemberCommit:
		if c.ContentType != wire.ContentTypeCommit || c.Commit == nil || c.Commit.Path == nil {
			return fmt.Errorf("%w: new_member_commit sender may only send a commit with a path", ErrSender)
		}
		return nil
	}
	return fmt.Errorf("%w: sender type %d", ErrSender, c.Sender.SenderType)
}

// Sign returns the signature over FramedContentTBS for content sent with wire
// format wf (RFC 9420 §6.1). gc is required for member and new_member_commit
// senders.
func Sign(signer *ciphersuite.Signer, wf wire.WireFormat, content *wire.FramedContent, gc *wire.GroupContext) ([]byte, error) {
	tbs, err := wire.FramedContentTBS(wf, content, gc)
	if err != nil {
		return nil, fmt.Errorf("sign content: %w", err)
	}
	sig, err := signer.SignWithLabel(labelFramedContentTBS, tbs)
	if err != nil {
		return nil, fmt.Errorf("sign content: %w", err)
	}
	return sig, nil
}

// Verify checks the content signature of ac with the sender's signature key.
func Verify(suite *ciphersuite.Suite, ac *wire.AuthenticatedContent, gc *wire.GroupContext, signaturePub []byte) error {
	tbs, err := ac.TBS(gc)
	if err != nil {
		return fmt.Errorf("verify content: %w", err)
	}
	if err := suite.VerifyWithLabel(signaturePub, labelFramedContentTBS, tbs, ac.Auth.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	return nil
}

// ProtectPublic signs content and wraps it in a PublicMessage with, for
// member senders, a membership tag MAC(membership_key,
// AuthenticatedContentTBM) (RFC 9420 §6.2). confirmationTag is required for
// commits and ignored otherwise. Application data is refused.
func ProtectPublic(suite *ciphersuite.Suite, signer *ciphersuite.Signer, content wire.FramedContent, gc *wire.GroupContext, membershipKey, confirmationTag []byte) (*wire.PublicMessage, error) {
	if content.ContentType == wire.ContentTypeApplication {
		return nil, ErrApplicationPublic
	}
	if err := checkSender(&content); err != nil {
		return nil, err
	}
	sig, err := Sign(signer, wire.WireFormatPublicMessage, &content, gc)
	if err != nil {
		return nil, err
	}
	ac := wire.AuthenticatedContent{WireFormat: wire.WireFormatPublicMessage, Content: content, Auth: wire.FramedContentAuthData{Signature: sig}}
	if content.ContentType == wire.ContentTypeCommit {
		ac.Auth.ConfirmationTag = confirmationTag
	}
	pm := &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if content.Sender.SenderType == wire.SenderTypeMember {
		tbm, err := ac.TBM(gc)
		if err != nil {
			return nil, fmt.Errorf("membership tag: %w", err)
		}
		pm.MembershipTag = suite.MAC(membershipKey, tbm)
	}
	return pm, nil
}

// UnprotectPublic verifies a PublicMessage — the membership tag for member
// senders (RFC 9420 §6.2) and the signature with signaturePub — and returns
// its AuthenticatedContent. Application data is refused.
func UnprotectPublic(suite *ciphersuite.Suite, pm *wire.PublicMessage, gc *wire.GroupContext, membershipKey, signaturePub []byte) (*wire.AuthenticatedContent, error) {
	if pm.Content.ContentType == wire.ContentTypeApplication {
		return nil, ErrApplicationPublic
	}
	if err := checkSender(&pm.Content); err != nil {
		return nil, err
	}
	ac := pm.AuthenticatedContent()
	if pm.Content.Sender.SenderType == wire.SenderTypeMember {
		tbm, err := ac.TBM(gc)
		if err != nil {
			return nil, fmt.Errorf("membership tag: %w", err)
		}
		if !hmac.Equal(suite.MAC(membershipKey, tbm), pm.MembershipTag) {
			return nil, ErrMembershipTag
		}
	}
	if err := Verify(suite, ac, gc, signaturePub); err != nil {
		return nil, err
	}
	return ac, nil
}

func kindOf(ct wire.ContentType) secrettree.ContentKind {
	if ct == wire.ContentTypeApplication {
		return secrettree.Application
	}
	return secrettree.Handshake
}

// applyReuseGuard XORs the reuse guard into the first four nonce bytes
// (RFC 9420 §6.3.1).
func applyReuseGuard(nonce []byte, guard [4]byte) []byte {
	out := append([]byte(nil), nonce...)
	for i := range guard {
		out[i] ^= guard[i]
	}
	return out
}

// ProtectPrivate signs content (sent by a member) and encrypts it as a
// PrivateMessage (RFC 9420 §6.3): the content with its auth data and padding
// zero bytes (0 to MaxPadding) under the sender's next ratchet key
// (handshake or application) with a random reuse guard, and the sender data
// under keys derived from senderDataSecret and the ciphertext sample.
// confirmationTag is required for commits and ignored otherwise. The
// ratchet key is deleted after use (RFC 9420 §9.2).
func ProtectPrivate(suite *ciphersuite.Suite, signer *ciphersuite.Signer, content wire.FramedContent, gc *wire.GroupContext, st *secrettree.Tree, senderDataSecret, confirmationTag []byte, padding int) (*wire.PrivateMessage, error) {
	return protectPrivate(suite, signer, &content, gc, st, senderDataSecret, confirmationTag, func(int) int { return padding })
}

func protectPrivate(suite *ciphersuite.Suite, signer *ciphersuite.Signer, content *wire.FramedContent, gc *wire.GroupContext, st *secrettree.Tree, senderDataSecret, confirmationTag []byte, pad Padding) (*wire.PrivateMessage, error) {
	if content.Sender.SenderType != wire.SenderTypeMember {
		return nil, fmt.Errorf("%w: PrivateMessage needs a member sender", ErrSender)
	}
	if content.ContentType == wire.ContentTypeCommit && len(confirmationTag) == 0 {
		return nil, fmt.Errorf("protect commit: missing confirmation tag")
	}
	sig, err := Sign(signer, wire.WireFormatPrivateMessage, content, gc)
	if err != nil {
		return nil, err
	}
	pmc := wire.PrivateMessageContent{
		ContentType: content.ContentType, ApplicationData: content.ApplicationData,
		Proposal: content.Proposal, Commit: content.Commit,
		Auth: wire.FramedContentAuthData{Signature: sig},
	}
	if content.ContentType == wire.ContentTypeCommit {
		pmc.Auth.ConfirmationTag = confirmationTag
	}
	plaintext, err := codec.Marshal(&pmc)
	if err != nil {
		return nil, fmt.Errorf("encode private content: %w", err)
	}
	// Padding is zero bytes after the auth data (RFC 9420 §6.3.1).
	if pad != nil {
		n := pad(len(plaintext))
		if n < 0 || n > MaxPadding {
			return nil, fmt.Errorf("%w: %d bytes", ErrPadding, n)
		}
		plaintext = append(plaintext, make([]byte, n)...)
	}
	msg := &wire.PrivateMessage{GroupID: content.GroupID, Epoch: content.Epoch, ContentType: content.ContentType, AuthenticatedData: content.AuthenticatedData}
	aad, err := msg.ContentAAD()
	if err != nil {
		return nil, fmt.Errorf("content aad: %w", err)
	}
	var guard [4]byte
	if _, err := rand.Read(guard[:]); err != nil {
		return nil, fmt.Errorf("reuse guard: %w", err)
	}
	kn, err := st.Next(content.Sender.LeafIndex, kindOf(content.ContentType))
	if err != nil {
		return nil, fmt.Errorf("ratchet key: %w", err)
	}
	msg.Ciphertext, err = suite.Seal(kn.Key, applyReuseGuard(kn.Nonce, guard), aad, plaintext)
	clear(kn.Key)
	if err != nil {
		return nil, fmt.Errorf("encrypt content: %w", err)
	}
	sd := wire.SenderData{LeafIndex: content.Sender.LeafIndex, Generation: kn.Generation, ReuseGuard: guard}
	sdBytes, err := codec.Marshal(&sd)
	if err != nil {
		return nil, fmt.Errorf("encode sender data: %w", err)
	}
	key, nonce, err := secrettree.SenderDataKeyNonce(suite, senderDataSecret, msg.Ciphertext)
	if err != nil {
		return nil, err
	}
	sdAAD, err := msg.SenderDataAAD()
	if err != nil {
		return nil, fmt.Errorf("sender data aad: %w", err)
	}
	if msg.EncryptedSenderData, err = suite.Seal(key, nonce, sdAAD, sdBytes); err != nil {
		return nil, fmt.Errorf("encrypt sender data: %w", err)
	}
	return msg, nil
}

// UnprotectPrivate decrypts a PrivateMessage (RFC 9420 §6.3): the sender
// data, then the content with the sender's ratchet key of the indicated
// generation, checks the padding is zero, and verifies the signature with
// the key signaturePub returns for the sender's leaf (its error, e.g. for a
// blank leaf, is reported as ErrSender). Only a message that decrypted and
// verified consumes its key in the secret tree (RFC 9420 §9.2), so a replay
// fails with secrettree.ErrGenerationConsumed while a forgery burns nothing.
// Generations beyond the tree's forward window fail with
// secrettree.ErrGenerationTooFar. It returns the AuthenticatedContent and
// the sender data.
func UnprotectPrivate(suite *ciphersuite.Suite, msg *wire.PrivateMessage, gc *wire.GroupContext, st *secrettree.Tree, senderDataSecret []byte, signaturePub func(leaf uint32) ([]byte, error)) (*wire.AuthenticatedContent, *wire.SenderData, error) {
	key, nonce, err := secrettree.SenderDataKeyNonce(suite, senderDataSecret, msg.Ciphertext)
	if err != nil {
		return nil, nil, err
	}
	sdAAD, err := msg.SenderDataAAD()
	if err != nil {
		return nil, nil, fmt.Errorf("sender data aad: %w", err)
	}
	sdBytes, err := suite.Open(key, nonce, sdAAD, msg.EncryptedSenderData)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: sender data", ErrDecrypt)
	}
	var sd wire.SenderData
	if err := codec.Unmarshal(sdBytes, &sd); err != nil {
		return nil, nil, fmt.Errorf("%w: sender data: %w", ErrDecrypt, err)
	}
	pending, err := st.Peek(sd.LeafIndex, kindOf(msg.ContentType), sd.Generation)
	if err != nil {
		return nil, nil, fmt.Errorf("ratchet key of leaf %d generation %d: %w", sd.LeafIndex, sd.Generation, err)
	}
	defer pending.Discard() // no-op after Consume
	aad, err := msg.ContentAAD()
	if err != nil {
		return nil, nil, fmt.Errorf("content aad: %w", err)
	}
	plaintext, err := suite.Open(pending.Key, applyReuseGuard(pending.Nonce, sd.ReuseGuard), aad, msg.Ciphertext)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: content", ErrDecrypt)
	}
	pmc := wire.PrivateMessageContent{ContentType: msg.ContentType}
	if err := codec.Unmarshal(plaintext, &pmc); err != nil {
		return nil, nil, fmt.Errorf("%w: private message content: %w", ErrDecrypt, err)
	}
	ac := &wire.AuthenticatedContent{WireFormat: wire.WireFormatPrivateMessage, Content: pmc.FramedContent(msg, sd.LeafIndex), Auth: pmc.Auth}
	pub, err := signaturePub(sd.LeafIndex)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: leaf %d: %w", ErrSender, sd.LeafIndex, err)
	}
	if err := Verify(suite, ac, gc, pub); err != nil {
		return nil, nil, err
	}
	if err := pending.Consume(); err != nil {
		return nil, nil, fmt.Errorf("consume ratchet key: %w", err)
	}
	return ac, &sd, nil
}
