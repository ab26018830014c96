package mls

import (
	"bytes"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// pastEpoch is what decrypting and authenticating a delayed application
// message of a past epoch needs (RFC 9420 §15.3): the epoch's group
// context and tree (for the sender's signature key and the signed content),
// its sender data secret and its secret tree, whose used keys stay erased.
type pastEpoch struct {
	ctx        wire.GroupContext
	tree       *tree.Tree
	senderData []byte
	secretTree *secrettree.Tree
}

func (p *pastEpoch) erase() {
	p.secretTree.Erase()
	clear(p.senderData)
}

// retainEpoch moves the current epoch's application decryption state into
// g.past before a new epoch is installed, when Config.PastEpochs asks for
// it, and erases what falls out of the window. The handshake keys of the
// retained secret tree are never used again.
func (g *Group) retainEpoch() {
	keep := 0
	if g.cfg != nil {
		keep = g.cfg.PastEpochs
	}
	if keep <= 0 || g.secretTree == nil || g.removed {
		return
	}
	g.past = append(g.past, &pastEpoch{ctx: g.ctx, tree: g.tree, senderData: g.secrets.senderData, secretTree: g.secretTree})
	// Detach them so that eraseEpoch leaves the retained copies alone.
	g.secretTree, g.secrets.senderData = nil, nil
	for len(g.past) > keep {
		g.past[0].erase()
		g.past = g.past[1:]
	}
}

// processPastEpoch handles a PrivateMessage of a retained past epoch; ok is
// false for any other message, which ProcessMessage then handles as usual.
// Only application messages are accepted: handshake messages of a past
// epoch can no longer change anything.
func (g *Group) processPastEpoch(m *wire.MLSMessage) (res *Result, ok bool, err error) {
	if m.WireFormat != wire.WireFormatPrivateMessage || m.PrivateMessage.Epoch == g.ctx.Epoch || !bytes.Equal(m.PrivateMessage.GroupID, g.ctx.GroupID) {
		return nil, false, nil
	}
	var pe *pastEpoch
	for _, p := range g.past {
		if p.ctx.Epoch == m.PrivateMessage.Epoch {
			pe = p
		}
	}
	if pe == nil {
		return nil, false, nil
	}
	if m.PrivateMessage.ContentType != wire.ContentTypeApplication {
		return nil, true, fmt.Errorf("%w: handshake message of past epoch %d", ErrWrongEpoch, pe.ctx.Epoch)
	}
	// A read-only view of the past epoch; unprotect consumes the key in
	// the retained secret tree.
	view := &Group{cfg: g.cfg, suite: g.suite, ctx: pe.ctx, tree: pe.tree, secretTree: pe.secretTree,
		secrets: epochSecrets{senderData: pe.senderData}}
	ac, err := view.unprotect(m)
	if err != nil {
		return nil, true, err
	}
	res = &Result{Kind: ResultApplication, SenderType: uint8(ac.Content.Sender.SenderType), Sender: ac.Content.Sender.LeafIndex,
		ApplicationData: ac.Content.ApplicationData, AuthenticatedData: ac.Content.AuthenticatedData}
	c := pe.tree.Leaf(ac.Content.Sender.LeafIndex).Credential
	res.SenderCredential = &c
	return res, true, nil
}
