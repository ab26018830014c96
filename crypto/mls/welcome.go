package mls

import (
	"bytes"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/keyschedule"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// JoinFromWelcome joins a group from a Welcome (RFC 9420 §12.4.3.1):
// welcome is the encoded MLSMessage, keyPackage the encoded KeyPackage
// MLSMessage it was made for, priv that KeyPackage's private keys, and
// ratchetTree the encoded ratchet tree when the GroupInfo carries no
// ratchet_tree extension (nil otherwise). It verifies the GroupInfo
// signature, the tree (§12.4.3.1: tree hash, parent hashes, every leaf and
// credential) and the confirmation tag.
func JoinFromWelcome(cfg *Config, welcome, keyPackage []byte, priv *KeyPackagePrivate, ratchetTree []byte) (*Group, error) {
	g, _, err := joinFromWelcome(cfg, welcome, keyPackage, priv, ratchetTree, nil)
	return g, err
}

// joinFromWelcome is JoinFromWelcome with prior, the resumption PSKs of
// other groups the joiner holds (keyed as Group.priorPSKs), for Welcomes of
// branched and reinitialized groups; it also returns the Welcome's PSK ids.
func joinFromWelcome(cfg *Config, welcome, keyPackage []byte, priv *KeyPackagePrivate, ratchetTree []byte, prior map[string][]byte) (*Group, []wire.PreSharedKeyID, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	wm, err := decodeMessage(welcome)
	if err != nil {
		return nil, nil, err
	}
	km, err := decodeMessage(keyPackage)
	if err != nil {
		return nil, nil, err
	}
	if wm.WireFormat != wire.WireFormatWelcome || km.WireFormat != wire.WireFormatKeyPackage {
		return nil, nil, fmt.Errorf("%w: expected a Welcome and a KeyPackage", ErrInvalidWelcome)
	}
	w, kp := wm.Welcome, km.KeyPackage
	if w.CipherSuite != kp.CipherSuite {
		return nil, nil, fmt.Errorf("%w: cipher suite mismatch", ErrInvalidWelcome)
	}
	s, err := lookup(w.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	ref, err := keyPackageRef(s, kp)
	if err != nil {
		return nil, nil, err
	}
	var egs *wire.EncryptedGroupSecrets
	for i := range w.Secrets {
		if bytes.Equal(w.Secrets[i].NewMember, ref) {
			egs = &w.Secrets[i]
			break
		}
	}
	if egs == nil {
		return nil, nil, fmt.Errorf("%w: no secrets for this key package", ErrInvalidWelcome)
	}
	gsb, err := s.DecryptWithLabel(priv.InitKey, "Welcome", w.EncryptedGroupInfo, egs.EncryptedGroupSecrets.KEMOutput, egs.EncryptedGroupSecrets.Ciphertext)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: group secrets: %w", ErrInvalidWelcome, err)
	}
	var gs wire.GroupSecrets
	if err := codec.Unmarshal(gsb, &gs); err != nil {
		return nil, nil, fmt.Errorf("%w: group secrets: %w", ErrInvalidWelcome, err)
	}
	g := &Group{cfg: cfg, suite: s, sigKey: priv.SignatureKey, priorPSKs: prior}
	if g.signer, err = s.NewSigner(priv.SignatureKey); err != nil {
		return nil, nil, fmt.Errorf("mls: join: %w", err)
	}
	// PSKs of the Welcome (§8.4): external ones, and resumption PSKs of
	// another group (prior, or Config.ResumptionPSK) for a branch or reinit.
	psk, err := g.pskSecret(gs.PSKs)
	if err != nil {
		return nil, nil, err
	}
	ks0, err := keyschedule.FromJoiner(s, gs.JoinerSecret, psk, nil)
	if err != nil {
		return nil, nil, err
	}
	key, nonce, err := keyschedule.WelcomeKeyNonce(s, ks0.WelcomeSecret)
	if err != nil {
		return nil, nil, err
	}
	gib, err := s.Open(key, nonce, nil, w.EncryptedGroupInfo)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: group info: %w", ErrInvalidWelcome, err)
	}
	var gi wire.GroupInfo
	if err := codec.Unmarshal(gib, &gi); err != nil {
		return nil, nil, fmt.Errorf("%w: group info: %w", ErrInvalidWelcome, err)
	}
	if gi.GroupContext.CipherSuite != s.ID() || gi.GroupContext.Version != wire.ProtocolVersionMLS10 {
		return nil, nil, fmt.Errorf("%w: group info cipher suite or version", ErrInvalidWelcome)
	}
	t, err := g.verifyGroupInfo(&gi, ratchetTree)
	if err != nil {
		return nil, nil, err
	}
	me, ok := t.FindLeaf(&kp.LeafNode)
	if !ok {
		return nil, nil, fmt.Errorf("%w: own leaf not in the tree", ErrInvalidWelcome)
	}
	g.tree, g.ctx = t, gi.GroupContext
	g.keys = tree.NewPathKeys(me, priv.EncryptionKey, kp.LeafNode.EncryptionKey)
	if gs.PathSecret != nil {
		if err := g.keys.Implant(t, gi.Signer, gs.PathSecret.PathSecret); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
		}
	}
	gc, err := g.encodedContext()
	if err != nil {
		return nil, nil, err
	}
	e, err := keyschedule.FromJoiner(s, gs.JoinerSecret, psk, gc)
	if err != nil {
		return nil, nil, err
	}
	if !hmacEqual(keyschedule.ConfirmationTag(s, e.ConfirmationKey, g.ctx.ConfirmedTranscriptHash), gi.ConfirmationTag) {
		return nil, nil, fmt.Errorf("%w: confirmation tag", ErrInvalidWelcome)
	}
	g.interim = keyschedule.InterimTranscriptHash(s, g.ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)
	g.confTag = gi.ConfirmationTag
	g.setEpoch(e)
	g.priorPSKs = nil
	return g, gs.PSKs, nil
}

// verifyGroupInfo builds and validates the tree of a GroupInfo (from its
// ratchet_tree extension or ratchetTree) and verifies the GroupInfo's
// signature by its signer leaf (RFC 9420 §12.4.3.1).
func (g *Group) verifyGroupInfo(gi *wire.GroupInfo, ratchetTree []byte) (*tree.Tree, error) {
	s := g.suite
	var t *tree.Tree
	var err error
	if ext, ok := wire.FindExtension(gi.Extensions, wire.ExtensionTypeRatchetTree); ok {
		t, err = tree.Decode(s, ext)
	} else if ratchetTree != nil {
		t, err = tree.Decode(s, ratchetTree)
	} else {
		return nil, fmt.Errorf("%w: no ratchet tree", ErrInvalidWelcome)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	th, err := t.RootHash()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(th, gi.GroupContext.TreeHash) {
		return nil, fmt.Errorf("%w: tree hash does not match the group context", ErrInvalidWelcome)
	}
	pol, err := g.cfg.policy(gi.GroupContext.Extensions)
	if err != nil {
		return nil, err
	}
	if err := t.Validate(gi.GroupContext.GroupID, pol); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidWelcome, err)
	}
	signer := t.Leaf(gi.Signer)
	if gi.Signer >= t.LeafCount() || signer == nil {
		return nil, fmt.Errorf("%w: group info signer %d is blank", ErrInvalidWelcome, gi.Signer)
	}
	tbs, err := gi.TBS()
	if err != nil {
		return nil, err
	}
	if err := s.VerifyWithLabel(signer.SignatureKey, "GroupInfoTBS", tbs, gi.Signature); err != nil {
		return nil, fmt.Errorf("%w: group info signature: %w", ErrInvalidWelcome, err)
	}
	return t, nil
}
