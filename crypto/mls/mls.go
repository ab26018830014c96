// Package mls implements the Messaging Layer Security protocol (RFC 9420):
// groups whose members share per-epoch secrets, agree on membership through
// signed commits, and exchange end-to-end encrypted application messages.
//
// A client creates a KeyPackage (NewKeyPackage) and publishes it; a group
// creator calls CreateGroup and adds members with Group.Commit, whose Welcome
// lets the new members JoinFromWelcome. Every member feeds every handshake
// message it receives to Group.ProcessMessage, encrypts application data with
// Group.EncryptApplication, and derives application secrets with
// Group.Export. The application authenticates members through a
// CredentialValidator (RFC 9420 §5.3.1) called for every leaf the group sees.
//
// Primitives come from package ciphersuite (Go's standard library and circl);
// wire structures, the ratchet tree, the key schedule and the secret tree
// live in internal packages.
package mls

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// CipherSuite identifies an MLS cipher suite (RFC 9420 §17.1).
type CipherSuite = ciphersuite.ID

// Credential binds an identity to a signature key (RFC 9420 §5.3): for a
// basic credential (CredentialType 1) Identity is set, for X.509 (type 2)
// Certificates holds the DER chain, end-entity first.
type Credential = wire.Credential

// Credential types (RFC 9420 §17.5).
const (
	CredentialBasic = wire.CredentialType(1)
	CredentialX509  = wire.CredentialType(2)
)

// Extension is a GroupContext, GroupInfo, LeafNode or KeyPackage extension
// (RFC 9420 §13).
type Extension = wire.Extension

// CredentialValidator is the application's Authentication Service (RFC 9420
// §5.3.1). It is called for every leaf the group accepts — members of a tree
// when joining, Adds, Updates and commit paths — and returns nil only if the
// credential legitimately binds its identity to signatureKey.
type CredentialValidator = tree.CredentialValidator

// CredentialValidatorFunc adapts a function to CredentialValidator.
type CredentialValidatorFunc = tree.CredentialValidatorFunc

// Errors callers may distinguish with errors.Is.
var (
	// ErrWrongGroup means a message belongs to another group.
	ErrWrongGroup = errors.New("mls: message for another group")
	// ErrWrongEpoch means a message belongs to another epoch than the
	// group's current one; old epochs' keys are deleted (forward secrecy).
	ErrWrongEpoch = errors.New("mls: message for another epoch")
	// ErrInvalidMessage means a message failed authentication or decoding.
	ErrInvalidMessage = errors.New("mls: invalid message")
	// ErrInvalidCommit means a commit violates RFC 9420 §12.2–§12.4.
	ErrInvalidCommit = errors.New("mls: invalid commit")
	// ErrInvalidProposal means a proposal is invalid (RFC 9420 §12.1, §12.2).
	ErrInvalidProposal = errors.New("mls: invalid proposal")
	// ErrNotMember means the group's own member was removed.
	ErrNotMember = errors.New("mls: not a member of the group")
	// ErrInvalidWelcome means a Welcome or GroupInfo could not be used.
	ErrInvalidWelcome = errors.New("mls: invalid welcome")
	// ErrNoPendingCommit means there is no commit to merge.
	ErrNoPendingCommit = errors.New("mls: no pending commit")
	// ErrUnknownPSK means a PSK named by a proposal or Welcome is not available.
	ErrUnknownPSK = errors.New("mls: unknown pre-shared key")
	// ErrInvalidState means a serialized group state could not be decoded.
	ErrInvalidState = errors.New("mls: invalid group state")
)

// Config holds the application's choices shared by all groups.
type Config struct {
	// Credentials validates every credential the group sees. Nil accepts
	// every credential, which is only acceptable in tests.
	Credentials CredentialValidator
	// ExternalPSK returns the secret of an external PSK by its id (RFC 9420
	// §8.4), or false if unknown. Nil knows no external PSKs.
	ExternalPSK func(id []byte) ([]byte, bool)
	// ResumptionPSK returns the resumption PSK of another group's epoch
	// (RFC 9420 §8.6), for Welcomes of a reinitialized or branched group;
	// nil knows none. A group's own past epochs are retained automatically.
	ResumptionPSK func(groupID []byte, epoch uint64) ([]byte, bool)
	// Now, if set, enables lifetime checks of received leaf nodes
	// (RFC 9420 §7.3) against its time.
	Now func() time.Time
	// RetainedResumptionPSKs is how many past epochs' resumption PSKs the
	// group keeps (RFC 9420 §8.6); zero means 8.
	RetainedResumptionPSKs int
	// PastEpochs is how many past epochs' application decryption keys the
	// group keeps for delayed application messages (RFC 9420 §15.3). Zero,
	// the default, keeps none: a message of an old epoch fails with
	// ErrWrongEpoch and old keys are erased at once (forward secrecy).
	PastEpochs int
}

func (c *Config) policy(reqExts []wire.Extension) (*tree.Policy, error) {
	pol := &tree.Policy{}
	if c != nil {
		pol.Credentials = c.Credentials
		if c.Now != nil {
			pol.Now = c.Now()
		}
	}
	rc, err := tree.ParseRequiredCapabilities(reqExts)
	if err != nil {
		return nil, err
	}
	pol.RequiredCapabilities = rc
	return pol, nil
}

// KeyPackageOptions tunes NewKeyPackage.
type KeyPackageOptions struct {
	// Lifetime in seconds since the epoch, both zero for [0, 2^64-1].
	NotBefore, NotAfter uint64
	// Capabilities beyond the defaults (RFC 9420 §7.2): the package always
	// advertises mls10, its suite and the credential type used.
	Extensions  []uint16
	Proposals   []uint16
	Credentials []uint16
	// LeafExtensions are added to the leaf node, KeyPackageExtensions to the
	// KeyPackage.
	LeafExtensions       []wire.Extension
	KeyPackageExtensions []wire.Extension
}

// KeyPackagePrivate holds a KeyPackage's private keys (RFC 9420 §10): keep
// it until the KeyPackage is used in a Welcome, then delete InitKey.
type KeyPackagePrivate struct {
	InitKey       []byte
	EncryptionKey []byte
	SignatureKey  []byte
}

func lookup(id CipherSuite) (*ciphersuite.Suite, error) {
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		return nil, fmt.Errorf("mls: cipher suite %#04x: %w", uint16(id), err)
	}
	return s, nil
}

// SupportedCipherSuites lists the cipher suites this package implements:
// all seven of RFC 9420 §17.1 and the post-quantum suites 0xF001 and 0xF002
// (suites.go).
func SupportedCipherSuites() []CipherSuite { return ciphersuite.Supported() }

// GenerateSignatureKey returns a fresh signature key pair of suite in the
// wire encoding (RFC 9420 §5.1.2).
func GenerateSignatureKey(suite CipherSuite) (priv, pub []byte, err error) {
	s, err := lookup(suite)
	if err != nil {
		return nil, nil, err
	}
	return s.GenerateSignatureKeyPair()
}

func defaultCapabilities(s *ciphersuite.Suite, cred *Credential, o *KeyPackageOptions) wire.Capabilities {
	c := wire.Capabilities{
		Versions:     []wire.ProtocolVersion{wire.ProtocolVersionMLS10},
		CipherSuites: []ciphersuite.ID{s.ID()},
		Credentials:  []wire.CredentialType{cred.CredentialType},
	}
	if cred.CredentialType != CredentialBasic {
		c.Credentials = append(c.Credentials, CredentialBasic)
	}
	if o != nil {
		for _, e := range o.Extensions {
			c.Extensions = append(c.Extensions, wire.ExtensionType(e))
		}
		for _, p := range o.Proposals {
			c.Proposals = append(c.Proposals, wire.ProposalType(p))
		}
		for _, ct := range o.Credentials {
			c.Credentials = append(c.Credentials, wire.CredentialType(ct))
		}
	}
	return c
}

// NewKeyPackage creates a KeyPackage (RFC 9420 §10) for the credential, signed
// with signaturePriv (the private half of the key the credential binds). It
// returns the KeyPackage as an encoded MLSMessage, ready to publish, and its
// private keys.
func NewKeyPackage(suite CipherSuite, cred Credential, signaturePriv []byte, opts *KeyPackageOptions) ([]byte, *KeyPackagePrivate, error) {
	s, err := lookup(suite)
	if err != nil {
		return nil, nil, err
	}
	signer, err := s.NewSigner(signaturePriv)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: key package signer: %w", err)
	}
	initPriv, initPub, err := s.GenerateKEMKeyPair()
	if err != nil {
		return nil, nil, fmt.Errorf("mls: key package init key: %w", err)
	}
	encPriv, encPub, err := s.GenerateKEMKeyPair()
	if err != nil {
		return nil, nil, fmt.Errorf("mls: key package encryption key: %w", err)
	}
	lt := &wire.Lifetime{NotBefore: 0, NotAfter: ^uint64(0)}
	if opts != nil && (opts.NotBefore != 0 || opts.NotAfter != 0) {
		lt = &wire.Lifetime{NotBefore: opts.NotBefore, NotAfter: opts.NotAfter}
	}
	ln := wire.LeafNode{
		EncryptionKey:  encPub,
		SignatureKey:   signer.Public(),
		Credential:     cred,
		Capabilities:   defaultCapabilities(s, &cred, opts),
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime:       lt,
	}
	if opts != nil {
		ln.Extensions = opts.LeafExtensions
	}
	if err := signLeaf(signer, &ln, nil, 0); err != nil {
		return nil, nil, err
	}
	kp := &wire.KeyPackage{Version: wire.ProtocolVersionMLS10, CipherSuite: s.ID(), InitKey: initPub, LeafNode: ln}
	if opts != nil {
		kp.Extensions = opts.KeyPackageExtensions
	}
	tbs, err := kp.TBS()
	if err != nil {
		return nil, nil, fmt.Errorf("mls: key package: %w", err)
	}
	if kp.Signature, err = signer.SignWithLabel("KeyPackageTBS", tbs); err != nil {
		return nil, nil, fmt.Errorf("mls: sign key package: %w", err)
	}
	msg, err := codec.Marshal(&wire.MLSMessage{Version: wire.ProtocolVersionMLS10, WireFormat: wire.WireFormatKeyPackage, KeyPackage: kp})
	if err != nil {
		return nil, nil, fmt.Errorf("mls: encode key package: %w", err)
	}
	return msg, &KeyPackagePrivate{InitKey: initPriv, EncryptionKey: encPriv, SignatureKey: signaturePriv}, nil
}

// signLeaf signs ln (RFC 9420 §7.2); groupID and leaf index are the context
// of the update and commit sources.
func signLeaf(signer *ciphersuite.Signer, ln *wire.LeafNode, groupID []byte, leaf uint32) error {
	tbs, err := ln.TBS(groupID, leaf)
	if err != nil {
		return fmt.Errorf("mls: leaf node: %w", err)
	}
	if ln.Signature, err = signer.SignWithLabel("LeafNodeTBS", tbs); err != nil {
		return fmt.Errorf("mls: sign leaf node: %w", err)
	}
	return nil
}

// decodeMessage decodes an MLSMessage; only mls10 is accepted.
func decodeMessage(data []byte) (*wire.MLSMessage, error) {
	var m wire.MLSMessage
	if err := codec.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if m.Version != wire.ProtocolVersionMLS10 {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidMessage, m.Version)
	}
	return &m, nil
}

func encodeMessage(m *wire.MLSMessage) ([]byte, error) {
	m.Version = wire.ProtocolVersionMLS10
	return codec.Marshal(m)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// keyPackageRef is KeyPackageRef = RefHash("MLS 1.0 KeyPackage Reference",
// KeyPackage) (RFC 9420 §5.2).
func keyPackageRef(s *ciphersuite.Suite, kp *wire.KeyPackage) ([]byte, error) {
	b, err := codec.Marshal(kp)
	if err != nil {
		return nil, err
	}
	return s.RefHash("MLS 1.0 KeyPackage Reference", b), nil
}
