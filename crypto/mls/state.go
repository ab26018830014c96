package mls

import (
	"fmt"
	"maps"
	"slices"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// stateVersion is the version of the Marshal encoding.
const stateVersion = 1

// maxStateSize bounds the input of UnmarshalGroup (a 10,000-member tree is
// a few MiB).
const maxStateSize = 64 << 20

// Marshal encodes the group state so the application can persist it: the
// GroupContext, the ratchet tree, the own private path keys and signature
// key, the current epoch's secrets, the interim transcript hash, pending
// proposals and own pending Update keys, and the retained resumption PSKs.
// The encoding contains private keys: store it encrypted. A staged own
// commit is not included (commit again after loading). The secret tree is
// rebuilt from the epoch's encryption secret when loading; the own ratchets
// skip every generation already used, so no key and nonce is reused, but
// messages received before Marshal could be accepted again after loading —
// persist after each epoch change and deduplicate application messages.
func (g *Group) Marshal() ([]byte, error) {
	var w codec.Writer
	w.WriteUint8(stateVersion)
	g.ctx.MarshalMLS(&w)
	g.tree.MarshalMLS(&w)
	w.WriteBool(g.keys != nil)
	if g.keys != nil {
		g.keys.MarshalMLS(&w)
	}
	w.WriteOpaque(g.sigKey)
	s := &g.secrets
	for _, b := range [][]byte{s.senderData, s.exporter, s.authenticator, s.external, s.confirmation, s.membership, s.resumption, s.init, g.encryptionSecret, g.interim, g.confTag} {
		w.WriteOpaque(b)
	}
	w.WriteUint32(g.sentGen[0])
	w.WriteUint32(g.sentGen[1])
	w.WriteVector(func(w *codec.Writer) {
		for _, p := range g.pending {
			w.WriteOpaque(p.ref)
			p.proposal.MarshalMLS(w)
			p.sender.MarshalMLS(w)
		}
	})
	w.WriteVector(func(w *codec.Writer) {
		for _, u := range g.pendingUpdates {
			w.WriteOpaque(u.pub)
			w.WriteOpaque(u.priv)
		}
	})
	w.WriteVector(func(w *codec.Writer) {
		for _, ep := range slices.Sorted(maps.Keys(g.resumption)) {
			w.WriteUint64(ep)
			w.WriteOpaque(g.resumption[ep])
		}
	})
	w.WriteBool(g.removed)
	w.WriteOptional(g.reinit != nil, func(w *codec.Writer) { g.reinit.MarshalMLS(w) })
	return w.Bytes()
}

// UnmarshalGroup loads a group state written by Marshal. cfg supplies the
// application's validator and PSK store, as for the other constructors.
func UnmarshalGroup(cfg *Config, data []byte) (g *Group, err error) {
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrInvalidState, len(data))
	}
	if cfg == nil {
		cfg = &Config{}
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrInvalidState, err)
			g = nil
		}
	}()
	r := codec.NewReader(data)
	v, err := r.ReadUint8()
	if err != nil {
		return nil, err
	}
	if v != stateVersion {
		return nil, fmt.Errorf("state version %d", v)
	}
	g = &Group{cfg: cfg, resumption: map[uint64][]byte{}}
	if err := g.ctx.UnmarshalMLS(r); err != nil {
		return nil, err
	}
	if g.suite, err = lookup(g.ctx.CipherSuite); err != nil {
		return nil, err
	}
	var rt wire.RatchetTree
	if err := rt.UnmarshalMLS(r); err != nil {
		return nil, err
	}
	if g.tree, err = tree.FromRatchetTree(g.suite, rt); err != nil {
		return nil, err
	}
	hasKeys, err := r.ReadBool()
	if err != nil {
		return nil, err
	}
	if hasKeys {
		g.keys = &tree.PathKeys{}
		if err := g.keys.UnmarshalMLS(r); err != nil {
			return nil, err
		}
		if g.keys.LeafIndex() >= g.tree.LeafCount() || g.tree.Leaf(g.keys.LeafIndex()) == nil {
			return nil, fmt.Errorf("own leaf %d is blank", g.keys.LeafIndex())
		}
		if err := g.keys.CheckConsistent(g.tree); err != nil {
			return nil, err
		}
	}
	if g.sigKey, err = r.ReadOpaque(); err != nil {
		return nil, err
	}
	s := &g.secrets
	for _, dst := range []*[]byte{&s.senderData, &s.exporter, &s.authenticator, &s.external, &s.confirmation, &s.membership, &s.resumption, &s.init, &g.encryptionSecret, &g.interim, &g.confTag} {
		if *dst, err = r.ReadOpaque(); err != nil {
			return nil, err
		}
	}
	for i := range g.sentGen {
		if g.sentGen[i], err = r.ReadUint32(); err != nil {
			return nil, err
		}
	}
	err = r.ReadVector(func(r *codec.Reader) error {
		p := &pendingProposal{proposal: &wire.Proposal{}}
		var err error
		if p.ref, err = r.ReadOpaque(); err != nil {
			return err
		}
		if err := p.proposal.UnmarshalMLS(r); err != nil {
			return err
		}
		if err := p.sender.UnmarshalMLS(r); err != nil {
			return err
		}
		g.pending = append(g.pending, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.ReadVector(func(r *codec.Reader) error {
		var u pendingUpdate
		var err error
		if u.pub, err = r.ReadOpaque(); err != nil {
			return err
		}
		if u.priv, err = r.ReadOpaque(); err != nil {
			return err
		}
		g.pendingUpdates = append(g.pendingUpdates, u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = r.ReadVector(func(r *codec.Reader) error {
		ep, err := r.ReadUint64()
		if err != nil {
			return err
		}
		psk, err := r.ReadOpaque()
		g.resumption[ep] = psk
		return err
	})
	if err != nil {
		return nil, err
	}
	if g.removed, err = r.ReadBool(); err != nil {
		return nil, err
	}
	hasReinit, err := r.ReadOptional()
	if err != nil {
		return nil, err
	}
	if hasReinit {
		g.reinit = &wire.ReInit{}
		if err := g.reinit.UnmarshalMLS(r); err != nil {
			return nil, err
		}
	}
	if err := r.Finish(); err != nil {
		return nil, err
	}
	if g.signer, err = g.suite.NewSigner(g.sigKey); err != nil {
		return nil, err
	}
	if g.removed {
		return g, nil
	}
	if g.keys == nil || len(g.encryptionSecret) != g.suite.Nh() || len(g.interim) != g.suite.Nh() || len(g.secrets.senderData) != g.suite.Nh() {
		return nil, fmt.Errorf("secret lengths")
	}
	g.secretTree = secrettree.New(g.suite, g.encryptionSecret, g.tree.LeafCount())
	for kind, n := range g.sentGen {
		if n > 0 {
			if _, err := g.secretTree.Get(g.keys.LeafIndex(), secrettree.ContentKind(kind), n-1); err != nil {
				return nil, err
			}
		}
	}
	return g, nil
}
