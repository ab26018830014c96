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
	// ErrSender means the sender is not one this message form allows.
	ErrSender = errors.New("mls framing: invalid sender")
)

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
// zero bytes under the sender's next ratchet key (handshake or application)
// with a random reuse guard, and the sender data under keys derived from
// senderDataSecret and the ciphertext sample.
func ProtectPrivate(suite *ciphersuite.Suite, signer *ciphersuite.Signer, content wire.FramedContent, gc *wire.GroupContext, st *secrettree.Tree, senderDataSecret, confirmationTag []byte, padding int) (*wire.PrivateMessage, error) {
	if content.Sender.SenderType != wire.SenderTypeMember {
		return nil, fmt.Errorf("%w: PrivateMessage needs a member sender", ErrSender)
	}
	sig, err := Sign(signer, wire.WireFormatPrivateMessage, &content, gc)
	if err != nil {
		return nil, err
	}
	pmc := wire.PrivateMessageContent{
		ContentType: content.ContentType, ApplicationData: content.ApplicationData,
		Proposal: content.Proposal, Commit: content.Commit,
		Auth: wire.FramedContentAuthData{Signature: sig}, Padding: padding,
	}
	if content.ContentType == wire.ContentTypeCommit {
		pmc.Auth.ConfirmationTag = confirmationTag
	}
	plaintext, err := codec.Marshal(&pmc)
	if err != nil {
		return nil, fmt.Errorf("encode private content: %w", err)
	}
	msg := &wire.PrivateMessage{GroupID: content.GroupID, Epoch: content.Epoch, ContentType: content.ContentType, AuthenticatedData: content.AuthenticatedData}
	kn, err := st.Next(content.Sender.LeafIndex, kindOf(content.ContentType))
	if err != nil {
		return nil, fmt.Errorf("ratchet key: %w", err)
	}
	var guard [4]byte
	if _, err := rand.Read(guard[:]); err != nil {
		return nil, err
	}
	aad, err := msg.ContentAAD()
	if err != nil {
		return nil, err
	}
	if msg.Ciphertext, err = suite.Seal(kn.Key, applyReuseGuard(kn.Nonce, guard), aad, plaintext); err != nil {
		return nil, fmt.Errorf("encrypt content: %w", err)
	}
	sd := wire.SenderData{LeafIndex: content.Sender.LeafIndex, Generation: kn.Generation, ReuseGuard: guard}
	sdBytes, err := codec.Marshal(&sd)
	if err != nil {
		return nil, err
	}
	key, nonce, err := secrettree.SenderDataKeyNonce(suite, senderDataSecret, msg.Ciphertext)
	if err != nil {
		return nil, err
	}
	sdAAD, err := msg.SenderDataAAD()
	if err != nil {
		return nil, err
	}
	if msg.EncryptedSenderData, err = suite.Seal(key, nonce, sdAAD, sdBytes); err != nil {
		return nil, fmt.Errorf("encrypt sender data: %w", err)
	}
	return msg, nil
}

// UnprotectPrivate decrypts a PrivateMessage (RFC 9420 §6.3): the sender
// data, then the content with the sender's ratchet key of the indicated
// generation (consumed from the secret tree only if the content decrypts),
// checks the padding, and
// verifies the signature with the key signaturePub returns for the sender's
// leaf. It returns the AuthenticatedContent and the sender data.
func UnprotectPrivate(suite *ciphersuite.Suite, msg *wire.PrivateMessage, gc *wire.GroupContext, st *secrettree.Tree, senderDataSecret []byte, signaturePub func(leaf uint32) ([]byte, error)) (*wire.AuthenticatedContent, *wire.SenderData, error) {
	key, nonce, err := secrettree.SenderDataKeyNonce(suite, senderDataSecret, msg.Ciphertext)
	if err != nil {
		return nil, nil, err
	}
	sdAAD, err := msg.SenderDataAAD()
	if err != nil {
		return nil, nil, err
	}
	sdBytes, err := suite.Open(key, nonce, sdAAD, msg.EncryptedSenderData)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: sender data", ErrDecrypt)
	}
	var sd wire.SenderData
	if err := codec.Unmarshal(sdBytes, &sd); err != nil {
		return nil, nil, fmt.Errorf("%w: sender data: %w", ErrDecrypt, err)
	}
	aad, err := msg.ContentAAD()
	if err != nil {
		return nil, nil, err
	}
	// Peek, and consume the key only once the content authenticates, so a
	// forged ciphertext neither burns the real key nor moves the window.
	p, err := st.Peek(sd.LeafIndex, kindOf(msg.ContentType), sd.Generation)
	if err != nil {
		return nil, nil, fmt.Errorf("ratchet key: %w", err)
	}
	plaintext, err := suite.Open(p.Key, applyReuseGuard(p.Nonce, sd.ReuseGuard), aad, msg.Ciphertext)
	if err != nil {
		p.Discard()
		return nil, nil, fmt.Errorf("%w: content", ErrDecrypt)
	}
	if err := p.Consume(); err != nil {
		return nil, nil, fmt.Errorf("ratchet key: %w", err)
	}
	pmc := wire.PrivateMessageContent{ContentType: msg.ContentType}
	if err := codec.Unmarshal(plaintext, &pmc); err != nil {
		return nil, nil, fmt.Errorf("private message content: %w", err)
	}
	ac := &wire.AuthenticatedContent{WireFormat: wire.WireFormatPrivateMessage, Content: pmc.FramedContent(msg, sd.LeafIndex), Auth: pmc.Auth}
	pub, err := signaturePub(sd.LeafIndex)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: leaf %d: %w", ErrSender, sd.LeafIndex, err)
	}
	if err := Verify(suite, ac, gc, pub); err != nil {
		return nil, nil, err
	}
	return ac, &sd, nil
}
