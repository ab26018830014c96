package wire

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// HPKECiphertext is an HPKE encapsulation and ciphertext (RFC 9420 §7.6).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

// MarshalMLS encodes the ciphertext.
func (c *HPKECiphertext) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(c.KEMOutput)
	w.WriteOpaque(c.Ciphertext)
}

// UnmarshalMLS decodes a ciphertext.
func (c *HPKECiphertext) UnmarshalMLS(r *codec.Reader) error {
	var err error
	if c.KEMOutput, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("hpke ciphertext kem output: %w", err)
	}
	if c.Ciphertext, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("hpke ciphertext: %w", err)
	}
	return nil
}

// UpdatePathNode carries a new public key and the path secret encrypted to
// each node of the copath resolution (RFC 9420 §7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte
	EncryptedPathSecret []HPKECiphertext
}

// UpdatePath is a committer's new leaf and filtered direct path (RFC 9420 §7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

// MarshalMLS encodes the update path.
func (u *UpdatePath) MarshalMLS(w *codec.Writer) {
	u.LeafNode.MarshalMLS(w)
	w.WriteVector(func(w *codec.Writer) {
		for i := range u.Nodes {
			n := &u.Nodes[i]
			w.WriteOpaque(n.EncryptionKey)
			w.WriteVector(func(w *codec.Writer) {
				for j := range n.EncryptedPathSecret {
					n.EncryptedPathSecret[j].MarshalMLS(w)
				}
			})
		}
	})
}

// UnmarshalMLS decodes an update path of at most MaxUpdatePathNodes nodes.
func (u *UpdatePath) UnmarshalMLS(r *codec.Reader) error {
	*u = UpdatePath{}
	if err := u.LeafNode.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("update path: %w", err)
	}
	err := r.ReadVector(func(r *codec.Reader) error {
		if len(u.Nodes) >= MaxUpdatePathNodes {
			return fmt.Errorf("%w: more than %d update path nodes", ErrTooMany, MaxUpdatePathNodes)
		}
		var n UpdatePathNode
		var err error
		if n.EncryptionKey, err = r.ReadOpaque(); err != nil {
			return err
		}
		err = r.ReadVector(func(r *codec.Reader) error {
			var c HPKECiphertext
			if err := c.UnmarshalMLS(r); err != nil {
				return err
			}
			n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
			return nil
		})
		if err != nil {
			return err
		}
		u.Nodes = append(u.Nodes, n)
		return nil
	})
	if err != nil {
		return fmt.Errorf("update path nodes: %w", err)
	}
	return nil
}

// GroupContext is the group's shared state summary (RFC 9420 §8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             ciphersuite.ID
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              []Extension
}

// MarshalMLS encodes the group context.
func (g *GroupContext) MarshalMLS(w *codec.Writer) {
	w.WriteUint16(uint16(g.Version))
	w.WriteUint16(uint16(g.CipherSuite))
	w.WriteOpaque(g.GroupID)
	w.WriteUint64(g.Epoch)
	w.WriteOpaque(g.TreeHash)
	w.WriteOpaque(g.ConfirmedTranscriptHash)
	WriteExtensions(w, g.Extensions)
}

// UnmarshalMLS decodes a group context.
func (g *GroupContext) UnmarshalMLS(r *codec.Reader) error {
	*g = GroupContext{}
	v, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("group context version: %w", err)
	}
	g.Version = ProtocolVersion(v)
	cs, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("group context cipher suite: %w", err)
	}
	g.CipherSuite = ciphersuite.ID(cs)
	if g.GroupID, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("group context group id: %w", err)
	}
	if g.Epoch, err = r.ReadUint64(); err != nil {
		return fmt.Errorf("group context epoch: %w", err)
	}
	if g.TreeHash, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("group context tree hash: %w", err)
	}
	if g.ConfirmedTranscriptHash, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("group context transcript hash: %w", err)
	}
	if err = ReadExtensions(r, &g.Extensions); err != nil {
		return fmt.Errorf("group context extensions: %w", err)
	}
	return nil
}
