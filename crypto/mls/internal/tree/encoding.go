package tree

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// Decode parses the ratchet_tree extension data, optional<Node>
// ratchet_tree<V> (RFC 9420 §12.4.3.3), into a Tree. It checks structure
// only — node kinds at their positions, a non-blank last node, sorted
// unmerged leaves inside each parent's subtree — not signatures or parent
// hashes; call Validate for that before trusting the tree.
func Decode(suite *ciphersuite.Suite, data []byte) (*Tree, error) {
	var rt wire.RatchetTree
	if err := codec.Unmarshal(data, &rt); err != nil {
		return nil, fmt.Errorf("decode ratchet tree: %w: %w", ErrMalformedTree, err)
	}
	return FromRatchetTree(suite, rt)
}

// FromRatchetTree builds a Tree from decoded ratchet_tree nodes, with the
// same structural checks as Decode. The nodes are used, not copied.
func FromRatchetTree(suite *ciphersuite.Suite, rt wire.RatchetTree) (*Tree, error) {
	nodes := []*wire.Node(rt)
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: empty node list", ErrMalformedTree)
	}
	if nodes[len(nodes)-1] == nil {
		return nil, fmt.Errorf("%w: last node is blank", ErrMalformedTree)
	}
	if len(nodes) > 2*MaxLeaves-1 {
		return nil, fmt.Errorf("%w: %d nodes", ErrMalformedTree, len(nodes))
	}
	// Extend to the smallest width 2^(d+1)-1 that holds every node.
	leaves := 1
	for 2*leaves-1 < len(nodes) {
		leaves *= 2
	}
	t := &Tree{
		suite:   suite,
		leaves:  make([]*wire.LeafNode, leaves),
		parents: make([]*wire.ParentNode, leaves-1),
		hashes:  make([][]byte, 2*leaves-1),
		encKeys: newKeyIndex(),
		sigKeys: newKeyIndex(),
	}
	for i, nd := range nodes {
		if nd == nil {
			continue
		}
		n := uint32(i)
		if n%2 == 0 {
			if nd.NodeType != wire.NodeTypeLeaf || nd.LeafNode == nil {
				return nil, fmt.Errorf("%w: node %d must be a leaf", ErrMalformedTree, n)
			}
			t.leaves[n/2] = nd.LeafNode
			t.indexKeys(n, nd.LeafNode.EncryptionKey)
			if _, dup := t.sigKeys.get(nd.LeafNode.SignatureKey); !dup {
				t.sigKeys.set(nd.LeafNode.SignatureKey, n/2)
			}
			continue
		}
		if nd.NodeType != wire.NodeTypeParent || nd.ParentNode == nil {
			return nil, fmt.Errorf("%w: node %d must be a parent", ErrMalformedTree, n)
		}
		first, count := leafRange(n)
		um := nd.ParentNode.UnmergedLeaves
		for k, u := range um {
			if k > 0 && um[k-1] >= u {
				return nil, fmt.Errorf("%w: unmerged leaves of node %d not strictly increasing", ErrMalformedTree, n)
			}
			if u < first || u >= first+count {
				return nil, fmt.Errorf("%w: unmerged leaf %d is not under node %d", ErrMalformedTree, u, n)
			}
		}
		t.parents[n/2] = nd.ParentNode
		t.indexKeys(n, nd.ParentNode.EncryptionKey)
	}
	return t, nil
}

func (t *Tree) indexKeys(n uint32, enc []byte) {
	if _, dup := t.encKeys.get(enc); !dup {
		t.encKeys.set(enc, n)
	}
}

// RatchetTree returns the tree as ratchet_tree nodes, without the blank
// nodes after the last non-blank one (RFC 9420 §12.4.3.3). Nodes are shared
// with the tree and must not be modified.
func (t *Tree) RatchetTree() wire.RatchetTree {
	w := int(t.Width())
	last := -1
	for n := w - 1; n >= 0; n-- {
		if !t.IsBlank(uint32(n)) {
			last = n
			break
		}
	}
	out := make([]*wire.Node, last+1)
	for n := 0; n <= last; n++ {
		if n%2 == 0 {
			if l := t.leaves[n/2]; l != nil {
				out[n] = &wire.Node{NodeType: wire.NodeTypeLeaf, LeafNode: l}
			}
		} else if p := t.parents[n/2]; p != nil {
			out[n] = &wire.Node{NodeType: wire.NodeTypeParent, ParentNode: p}
		}
	}
	return wire.RatchetTree(out)
}

// Encode returns the ratchet_tree extension data for the tree.
func (t *Tree) Encode() ([]byte, error) {
	rt := t.RatchetTree()
	b, err := codec.Marshal(&rt)
	if err != nil {
		return nil, fmt.Errorf("encode ratchet tree: %w", err)
	}
	return b, nil
}

// MarshalMLS writes the tree as optional<Node> ratchet_tree<V>.
func (t *Tree) MarshalMLS(w *codec.Writer) {
	rt := t.RatchetTree()
	rt.MarshalMLS(w)
}
