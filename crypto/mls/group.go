package mls

import (
	"bytes"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/keyschedule"
	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// Group is one member's view of an MLS group in its current epoch. It is not
// safe for concurrent use.
type Group struct {
	cfg    *Config
	suite  *ciphersuite.Suite
	ctx    wire.GroupContext
	tree   *tree.Tree
	keys   *tree.PathKeys // own leaf and path private keys
	signer *ciphersuite.Signer
	sigKey []byte

	secrets    epochSecrets
	secretTree *secrettree.Tree
	interim    []byte // interim transcript hash
	confTag    []byte // confirmation tag of the commit that started the epoch

	pending    []*pendingProposal
	resumption map[uint64][]byte // epoch → resumption PSK (RFC 9420 §8.6)
	staged     *stagedCommit     // own commit awaiting acceptance
	reinit     *wire.ReInit      // set once a ReInit commit was applied
	priorPSKs  map[string][]byte // resumption PSKs of the group a ReInit replaced
	removed    bool              // the own member was removed
	past       []*pastEpoch      // retained for delayed application messages (Config.PastEpochs)

	pendingUpdates []pendingUpdate // own Update proposals' new leaf keys
	// encryptionSecret and sentGen let Marshal persist the secret tree:
	// it is rebuilt on load and the own ratchets skip what was sent.
	encryptionSecret []byte
	sentGen          [2]uint32

	// test lets this package's tests create invalid commits.
	test struct{ noValidate, noPath bool }
}

// usable reports why the group can no longer send or receive, if it cannot.
func (g *Group) usable() error {
	if g.removed {
		return ErrNotMember
	}
	if g.reinit != nil {
		return fmt.Errorf("mls: group was reinitialized")
	}
	return nil
}

// epochSecrets are the secrets a member keeps during an epoch (RFC 9420 §8).
type epochSecrets struct {
	senderData, exporter, authenticator, external, confirmation, membership, resumption, init []byte
}

func secretsOf(e *keyschedule.Epoch) epochSecrets {
	return epochSecrets{
		senderData: e.SenderDataSecret, exporter: e.ExporterSecret, authenticator: e.EpochAuthenticator,
		external: e.ExternalSecret, confirmation: e.ConfirmationKey, membership: e.MembershipKey,
		resumption: e.ResumptionPSK, init: e.InitSecret,
	}
}

type pendingProposal struct {
	ref      []byte
	proposal *wire.Proposal
	sender   wire.Sender
}

// Member describes one leaf of the group.
type Member struct {
	LeafIndex    uint32
	Credential   Credential
	SignatureKey []byte
}

// GroupID returns the group's identifier.
func (g *Group) GroupID() []byte { return bytes.Clone(g.ctx.GroupID) }

// Epoch returns the current epoch number.
func (g *Group) Epoch() uint64 { return g.ctx.Epoch }

// CipherSuite returns the group's cipher suite.
func (g *Group) CipherSuite() CipherSuite { return g.suite.ID() }

// LeafIndex returns the own member's leaf index.
func (g *Group) LeafIndex() uint32 {
	if g.keys == nil {
		return 0
	}
	return g.keys.LeafIndex()
}

// EpochAuthenticator returns the epoch authenticator (RFC 9420 §8.7), which
// members may compare out of band to confirm they share the epoch.
func (g *Group) EpochAuthenticator() []byte { return bytes.Clone(g.secrets.authenticator) }

// ReInit returns the ReInit proposal a commit applied (RFC 9420 §11.2), or
// nil; a group that was reinitialized accepts no further messages.
func (g *Group) ReInit() *wire.ReInit { return g.reinit }

// ResumptionPSK returns the retained resumption PSK of one of the group's
// epochs (RFC 9420 §8.6), e.g. to hand to a reinitialized group's Config.
func (g *Group) ResumptionPSK(epoch uint64) ([]byte, bool) {
	p, ok := g.resumption[epoch]
	return bytes.Clone(p), ok
}

// Export returns MLS-Exporter(label, context, length) (RFC 9420 §8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	return keyschedule.Export(g.suite, g.secrets.exporter, label, context, length)
}

// Members returns the group's members in leaf order.
func (g *Group) Members() []Member {
	var out []Member
	for _, i := range g.tree.Members() {
		ln := g.tree.Leaf(i)
		out = append(out, Member{LeafIndex: i, Credential: ln.Credential, SignatureKey: bytes.Clone(ln.SignatureKey)})
	}
	return out
}

// Extensions returns the GroupContext extensions.
func (g *Group) Extensions() []wire.Extension { return g.ctx.Extensions }

func (g *Group) encodedContext() ([]byte, error) { return codec.Marshal(&g.ctx) }

func (g *Group) policy() (*tree.Policy, error) { return g.cfg.policy(g.ctx.Extensions) }

// erase zeroes the epoch's secrets (RFC 9420 §9.2: delete what is no longer
// needed).
func (s *epochSecrets) erase() {
	for _, b := range [][]byte{s.senderData, s.exporter, s.authenticator, s.external, s.confirmation, s.membership, s.init} {
		clear(b)
	}
	*s = epochSecrets{}
}

// eraseEpoch deletes the current epoch's secrets and secret tree; the
// resumption PSK stays in the retained set.
func (g *Group) eraseEpoch() {
	if g.secretTree != nil {
		g.secretTree.Erase()
		g.secretTree = nil
	}
	g.secrets.erase()
	clear(g.encryptionSecret)
	g.encryptionSecret = nil
}

// setEpoch installs a new epoch's secrets and secret tree, deleting those of
// the previous epoch (forward secrecy: no late messages of an old epoch).
func (g *Group) setEpoch(e *keyschedule.Epoch) {
	g.eraseEpoch()
	g.secrets = secretsOf(e)
	g.secretTree = secrettree.New(g.suite, e.EncryptionSecret, g.tree.LeafCount())
	g.encryptionSecret, g.sentGen = e.EncryptionSecret, [2]uint32{}
	if g.resumption == nil {
		g.resumption = map[uint64][]byte{}
	}
	g.resumption[g.ctx.Epoch] = e.ResumptionPSK
	keep := 8
	if g.cfg != nil && g.cfg.RetainedResumptionPSKs > 0 {
		keep = g.cfg.RetainedResumptionPSKs
	}
	for ep := range g.resumption {
		if ep+uint64(keep) <= g.ctx.Epoch {
			delete(g.resumption, ep)
		}
	}
	g.pending = nil
	g.pendingUpdates = nil
}

// CreateGroup creates a one-member group (RFC 9420 §11) with the creator's
// credential and signature key; extensions become the GroupContext
// extensions (e.g. external_senders, required_capabilities).
func CreateGroup(cfg *Config, groupID []byte, suite CipherSuite, cred Credential, signaturePriv []byte, extensions []wire.Extension) (*Group, error) {
	s, err := lookup(suite)
	if err != nil {
		return nil, err
	}
	signer, err := s.NewSigner(signaturePriv)
	if err != nil {
		return nil, fmt.Errorf("mls: create group: %w", err)
	}
	encPriv, encPub, err := s.GenerateKEMKeyPair()
	if err != nil {
		return nil, fmt.Errorf("mls: create group: %w", err)
	}
	var opts KeyPackageOptions
	for _, e := range extensions {
		if e.ExtensionType > 5 {
			opts.Extensions = append(opts.Extensions, uint16(e.ExtensionType))
		}
	}
	ln := &wire.LeafNode{
		EncryptionKey:  encPub,
		SignatureKey:   signer.Public(),
		Credential:     cred,
		Capabilities:   defaultCapabilities(s, &cred, &opts),
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime:       &wire.Lifetime{NotAfter: ^uint64(0)},
	}
	if err := signLeaf(signer, ln, nil, 0); err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &Config{}
	}
	g := &Group{cfg: cfg, suite: s, signer: signer, sigKey: signaturePriv}
	pol, err := cfg.policy(extensions)
	if err != nil {
		return nil, fmt.Errorf("mls: create group: %w", err)
	}
	if pol.Credentials != nil {
		if err := pol.Credentials.ValidateCredential(&ln.Credential, ln.SignatureKey); err != nil {
			return nil, fmt.Errorf("mls: create group: own credential: %w", err)
		}
	}
	g.tree = tree.New(s, ln)
	g.keys = tree.NewPathKeys(0, encPriv, encPub)
	th, err := g.tree.RootHash()
	if err != nil {
		return nil, fmt.Errorf("mls: create group: %w", err)
	}
	g.ctx = wire.GroupContext{Version: wire.ProtocolVersionMLS10, CipherSuite: s.ID(), GroupID: bytes.Clone(groupID), Epoch: 0, TreeHash: th, Extensions: extensions}
	gc, err := g.encodedContext()
	if err != nil {
		return nil, fmt.Errorf("mls: create group: %w", err)
	}
	// Epoch 0: a random epoch secret via a random init secret (RFC 9420 §11).
	e, err := keyschedule.Derive(s, randomBytes(s.Nh()), make([]byte, s.Nh()), nil, gc)
	if err != nil {
		return nil, fmt.Errorf("mls: create group: %w", err)
	}
	g.setEpoch(e)
	// The interim transcript hash of epoch 0 uses an empty confirmation
	// tag over an empty confirmed transcript hash (RFC 9420 §8.2, §11).
	tag := keyschedule.ConfirmationTag(s, e.ConfirmationKey, nil)
	g.interim, g.confTag = keyschedule.InterimTranscriptHash(s, nil, tag), tag
	return g, nil
}

// ---- framing (RFC 9420 §6) ----

// signContent signs a FramedContent as the own member.
func (g *Group) signContent(wf wire.WireFormat, fc *wire.FramedContent) (*wire.AuthenticatedContent, error) {
	ac := &wire.AuthenticatedContent{WireFormat: wf, Content: *fc}
	tbs, err := ac.TBS(&g.ctx)
	if err != nil {
		return nil, err
	}
	if ac.Auth.Signature, err = g.signer.SignWithLabel("FramedContentTBS", tbs); err != nil {
		return nil, err
	}
	return ac, nil
}

// protect wraps signed content as a PublicMessage (with membership tag) or
// PrivateMessage (RFC 9420 §6.2, §6.3) and encodes it.
func (g *Group) protect(ac *wire.AuthenticatedContent, padding int) ([]byte, error) {
	if ac.WireFormat == wire.WireFormatPublicMessage {
		pm := &wire.PublicMessage{Content: ac.Content, Auth: ac.Auth}
		if ac.Content.Sender.SenderType == wire.SenderTypeMember {
			tbm, err := ac.TBM(&g.ctx)
			if err != nil {
				return nil, err
			}
			pm.MembershipTag = g.suite.MAC(g.secrets.membership, tbm)
		}
		return encodeMessage(&wire.MLSMessage{WireFormat: wire.WireFormatPublicMessage, PublicMessage: pm})
	}
	kind := secrettree.Handshake
	if ac.Content.ContentType == wire.ContentTypeApplication {
		kind = secrettree.Application
	}
	me := g.keys.LeafIndex()
	kn, err := g.secretTree.Next(me, kind)
	if err != nil {
		return nil, err
	}
	g.sentGen[kind] = kn.Generation + 1
	pm := &wire.PrivateMessage{GroupID: ac.Content.GroupID, Epoch: ac.Content.Epoch, ContentType: ac.Content.ContentType, AuthenticatedData: ac.Content.AuthenticatedData}
	pc := &wire.PrivateMessageContent{ContentType: ac.Content.ContentType, ApplicationData: ac.Content.ApplicationData,
		Proposal: ac.Content.Proposal, Commit: ac.Content.Commit, Auth: ac.Auth, Padding: padding}
	pt, err := codec.Marshal(pc)
	if err != nil {
		return nil, err
	}
	var guard [4]byte
	copy(guard[:], randomBytes(4))
	nonce := bytes.Clone(kn.Nonce)
	for i := range guard {
		nonce[i] ^= guard[i]
	}
	aad, err := pm.ContentAAD()
	if err != nil {
		return nil, err
	}
	if pm.Ciphertext, err = g.suite.Seal(kn.Key, nonce, aad, pt); err != nil {
		return nil, err
	}
	sd, err := codec.Marshal(&wire.SenderData{LeafIndex: me, Generation: kn.Generation, ReuseGuard: guard})
	if err != nil {
		return nil, err
	}
	sk, sn, err := secrettree.SenderDataKeyNonce(g.suite, g.secrets.senderData, pm.Ciphertext)
	if err != nil {
		return nil, err
	}
	sdAAD, err := pm.SenderDataAAD()
	if err != nil {
		return nil, err
	}
	if pm.EncryptedSenderData, err = g.suite.Seal(sk, sn, sdAAD, sd); err != nil {
		return nil, err
	}
	return encodeMessage(&wire.MLSMessage{WireFormat: wire.WireFormatPrivateMessage, PrivateMessage: pm})
}

// unprotect authenticates a Public or PrivateMessage of the current epoch
// (RFC 9420 §6.2, §6.3) and returns its AuthenticatedContent.
func (g *Group) unprotect(m *wire.MLSMessage) (*wire.AuthenticatedContent, error) {
	var ac *wire.AuthenticatedContent
	var pending *secrettree.Pending
	switch m.WireFormat {
	case wire.WireFormatPublicMessage:
		pm := m.PublicMessage
		if !bytes.Equal(pm.Content.GroupID, g.ctx.GroupID) {
			return nil, ErrWrongGroup
		}
		if pm.Content.Epoch != g.ctx.Epoch {
			return nil, fmt.Errorf("%w: epoch %d, group at %d", ErrWrongEpoch, pm.Content.Epoch, g.ctx.Epoch)
		}
		if pm.Content.ContentType == wire.ContentTypeApplication {
			// Application data is always encrypted (RFC 9420 §6.2).
			return nil, fmt.Errorf("%w: application data in a PublicMessage", ErrInvalidMessage)
		}
		ac = pm.AuthenticatedContent()
		if pm.Content.Sender.SenderType == wire.SenderTypeMember {
			tbm, err := ac.TBM(&g.ctx)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
			}
			if !hmacEqual(g.suite.MAC(g.secrets.membership, tbm), pm.MembershipTag) {
				return nil, fmt.Errorf("%w: membership tag", ErrInvalidMessage)
			}
		} else if pm.MembershipTag != nil {
			return nil, fmt.Errorf("%w: membership tag from a non-member", ErrInvalidMessage)
		}
	case wire.WireFormatPrivateMessage:
		var err error
		if ac, pending, err = g.decryptPrivate(m.PrivateMessage); err != nil {
			return nil, err
		}
		defer func() {
			if pending != nil {
				pending.Discard()
			}
		}()
	default:
		return nil, fmt.Errorf("%w: wire format %d is not a group message", ErrInvalidMessage, m.WireFormat)
	}
	key, err := g.senderSignatureKey(&ac.Content)
	if err != nil {
		return nil, err
	}
	tbs, err := ac.TBS(&g.ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	if err := g.suite.VerifyWithLabel(key, "FramedContentTBS", tbs, ac.Auth.Signature); err != nil {
		return nil, fmt.Errorf("%w: signature: %w", ErrInvalidMessage, err)
	}
	if pending != nil {
		p := pending
		pending = nil
		if err := p.Consume(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
	}
	return ac, nil
}

func hmacEqual(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := range a {
		v |= a[i] ^ b[i]
	}
	return v == 0
}

// senderSignatureKey finds the key that must have signed fc, enforcing the
// content types each sender type may send (RFC 9420 §6, §12.1.8).
func (g *Group) senderSignatureKey(fc *wire.FramedContent) ([]byte, error) {
	s := fc.Sender
	switch s.SenderType {
	case wire.SenderTypeMember:
		ln := g.tree.Leaf(s.LeafIndex)
		if s.LeafIndex >= g.tree.LeafCount() || ln == nil {
			return nil, fmt.Errorf("%w: sender leaf %d is not a member", ErrInvalidMessage, s.LeafIndex)
		}
		return ln.SignatureKey, nil
	case wire.SenderTypeExternal:
		if fc.ContentType != wire.ContentTypeProposal {
			return nil, fmt.Errorf("%w: external sender may only send proposals", ErrInvalidMessage)
		}
		var es wire.ExternalSenders
		ok, err := wire.DecodeExtension(g.ctx.Extensions, wire.ExtensionTypeExternalSenders, &es)
		if err != nil || !ok || int(s.SenderIndex) >= len(es) {
			return nil, fmt.Errorf("%w: unknown external sender %d", ErrInvalidMessage, s.SenderIndex)
		}
		return es[s.SenderIndex].SignatureKey, nil
	case wire.SenderTypeNewMemberProposal:
		if fc.ContentType != wire.ContentTypeProposal || fc.Proposal.ProposalType != wire.ProposalTypeAdd {
			return nil, fmt.Errorf("%w: new_member_proposal sender may only propose Add", ErrInvalidMessage)
		}
		return fc.Proposal.Add.KeyPackage.LeafNode.SignatureKey, nil
	case wire.SenderTypeNewMemberCommit:
		if fc.ContentType != wire.ContentTypeCommit || fc.Commit.Path == nil {
			return nil, fmt.Errorf("%w: new_member_commit sender needs a commit with a path", ErrInvalidMessage)
		}
		return fc.Commit.Path.LeafNode.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: sender type %d", ErrInvalidMessage, s.SenderType)
}

// decryptPrivate opens a PrivateMessage (RFC 9420 §6.3).
func (g *Group) decryptPrivate(pm *wire.PrivateMessage) (*wire.AuthenticatedContent, *secrettree.Pending, error) {
	if !bytes.Equal(pm.GroupID, g.ctx.GroupID) {
		return nil, nil, ErrWrongGroup
	}
	if pm.Epoch != g.ctx.Epoch {
		return nil, nil, fmt.Errorf("%w: epoch %d, group at %d", ErrWrongEpoch, pm.Epoch, g.ctx.Epoch)
	}
	sk, sn, err := secrettree.SenderDataKeyNonce(g.suite, g.secrets.senderData, pm.Ciphertext)
	if err != nil {
		return nil, nil, err
	}
	sdAAD, err := pm.SenderDataAAD()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	sdb, err := g.suite.Open(sk, sn, sdAAD, pm.EncryptedSenderData)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: sender data: %w", ErrInvalidMessage, err)
	}
	var sd wire.SenderData
	if err := codec.Unmarshal(sdb, &sd); err != nil {
		return nil, nil, fmt.Errorf("%w: sender data: %w", ErrInvalidMessage, err)
	}
	if sd.LeafIndex >= g.tree.LeafCount() || g.tree.Leaf(sd.LeafIndex) == nil {
		return nil, nil, fmt.Errorf("%w: sender leaf %d is not a member", ErrInvalidMessage, sd.LeafIndex)
	}
	kind := secrettree.Handshake
	if pm.ContentType == wire.ContentTypeApplication {
		kind = secrettree.Application
	}
	// Peek, and consume the key only once the message authenticated, so a
	// forged message burns no key (RFC 9420 §9.2).
	pending, err := g.secretTree.Peek(sd.LeafIndex, kind, sd.Generation)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	ok := false
	defer func() {
		if !ok {
			pending.Discard()
		}
	}()
	kn := pending.KeyNonce
	nonce := bytes.Clone(kn.Nonce)
	for i := range sd.ReuseGuard {
		nonce[i] ^= sd.ReuseGuard[i]
	}
	aad, err := pm.ContentAAD()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidMessage, err)
	}
	pt, err := g.suite.Open(kn.Key, nonce, aad, pm.Ciphertext)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: content: %w", ErrInvalidMessage, err)
	}
	pc := wire.PrivateMessageContent{ContentType: pm.ContentType}
	if err := codec.Unmarshal(pt, &pc); err != nil {
		return nil, nil, fmt.Errorf("%w: content: %w", ErrInvalidMessage, err)
	}
	ok = true
	return &wire.AuthenticatedContent{WireFormat: wire.WireFormatPrivateMessage, Content: pc.FramedContent(pm, sd.LeafIndex), Auth: pc.Auth}, pending, nil
}

// EncryptApplication encrypts application data as a PrivateMessage of the
// current epoch (RFC 9420 §6.3); authenticatedData travels in the clear but
// authenticated.
func (g *Group) EncryptApplication(data, authenticatedData []byte) ([]byte, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	fc := &wire.FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch,
		Sender:            wire.Sender{SenderType: wire.SenderTypeMember, LeafIndex: g.keys.LeafIndex()},
		AuthenticatedData: authenticatedData, ContentType: wire.ContentTypeApplication, ApplicationData: data}
	ac, err := g.signContent(wire.WireFormatPrivateMessage, fc)
	if err != nil {
		return nil, fmt.Errorf("mls: encrypt: %w", err)
	}
	out, err := g.protect(ac, 0)
	if err != nil {
		return nil, fmt.Errorf("mls: encrypt: %w", err)
	}
	return out, nil
}
