package tree

import (
	"fmt"
	"slices"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// NodeType values of TreeHashInput (RFC 9420 §7.8).
const (
	nodeTypeLeaf   = 1
	nodeTypeParent = 2
)

// RootHash returns the tree hash of the root (RFC 9420 §7.8), computing only
// the node hashes not already cached.
func (t *Tree) RootHash() ([]byte, error) {
	return t.NodeHash(t.Root())
}

// NodeHash returns the tree hash of node n (RFC 9420 §7.8).
func (t *Tree) NodeHash(n uint32) ([]byte, error) {
	if n >= t.Width() {
		return nil, fmt.Errorf("tree hash of node %d: %w", n, ErrInvalidLeafIndex)
	}
	return t.hash(n)
}

// hash returns the cached tree hash of node n, computing it (and any stale
// descendants) if needed. Recursion depth is the tree height.
func (t *Tree) hash(n uint32) ([]byte, error) {
	if h := t.hashes[n]; h != nil {
		return h, nil
	}
	var h []byte
	var err error
	if n%2 == 0 {
		h, err = t.leafHash(n/2, t.leaves[n/2])
	} else {
		var l, r []byte
		if l, err = t.hash(left(n)); err != nil {
			return nil, err
		}
		if r, err = t.hash(right(n)); err != nil {
			return nil, err
		}
		h, err = t.parentHashInputHash(t.parents[n/2], l, r)
	}
	if err != nil {
		return nil, err
	}
	t.hashes[n] = h
	return h, nil
}

// leafHash hashes TreeHashInput{leaf, LeafNodeHashInput{leaf_index, optional<LeafNode>}}.
func (t *Tree) leafHash(i uint32, ln *wire.LeafNode) ([]byte, error) {
	var w codec.Writer
	w.WriteUint8(nodeTypeLeaf)
	w.WriteUint32(i)
	w.WriteOptional(ln != nil, func(w *codec.Writer) { ln.MarshalMLS(w) })
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("tree hash of leaf %d: %w", i, err)
	}
	return t.suite.Hash(b), nil
}

// parentHashInputHash hashes TreeHashInput{parent, ParentNodeHashInput{
// optional<ParentNode>, left_hash, right_hash}}.
func (t *Tree) parentHashInputHash(p *wire.ParentNode, l, r []byte) ([]byte, error) {
	var w codec.Writer
	w.WriteUint8(nodeTypeParent)
	w.WriteOptional(p != nil, func(w *codec.Writer) { p.MarshalMLS(w) })
	w.WriteOpaque(l)
	w.WriteOpaque(r)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("tree hash of parent: %w", err)
	}
	return t.suite.Hash(b), nil
}

// treeHashWithout returns the tree hash of node n in the tree modified as
// for an original sibling tree hash (RFC 9420 §7.9): each leaf in excluded
// (sorted leaf indices) is blanked and removed from every unmerged_leaves
// list. Subtrees holding no excluded leaf reuse the cached hashes, so the
// extra work is O(len(excluded) · height).
func (t *Tree) treeHashWithout(n uint32, excluded []uint32) ([]byte, error) {
	first, count := leafRange(n)
	lo, _ := slices.BinarySearch(excluded, first)
	if lo == len(excluded) || excluded[lo] >= first+count {
		return t.hash(n)
	}
	if n%2 == 0 {
		return t.leafHash(n/2, nil) // the only leaf here is excluded
	}
	l, err := t.treeHashWithout(left(n), excluded)
	if err != nil {
		return nil, err
	}
	r, err := t.treeHashWithout(right(n), excluded)
	if err != nil {
		return nil, err
	}
	p := t.parents[n/2]
	if p != nil {
		kept := make([]uint32, 0, len(p.UnmergedLeaves))
		for _, u := range p.UnmergedLeaves {
			if _, found := slices.BinarySearch(excluded, u); !found {
				kept = append(kept, u)
			}
		}
		if len(kept) != len(p.UnmergedLeaves) {
			q := *p
			q.UnmergedLeaves = kept
			p = &q
		}
	}
	return t.parentHashInputHash(p, l, r)
}

// parentHash computes the parent hash of a node with the given encryption key
// and parent_hash field, given the original tree hash of its copath child:
// Hash(ParentHashInput) (RFC 9420 §7.9).
func (t *Tree) parentHash(encryptionKey, parentHash, originalSiblingTreeHash []byte) ([]byte, error) {
	var w codec.Writer
	w.WriteOpaque(encryptionKey)
	w.WriteOpaque(parentHash)
	w.WriteOpaque(originalSiblingTreeHash)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("parent hash: %w", err)
	}
	return t.suite.Hash(b), nil
}

// parentHashOf computes the parent hash of non-blank parent node p with
// copath child s, using the original sibling tree hash (RFC 9420 §7.9).
func (t *Tree) parentHashOf(p, s uint32) ([]byte, error) {
	pn := t.parents[p/2]
	var excluded []uint32
	if len(pn.UnmergedLeaves) > 0 {
		excluded = slices.Clone(pn.UnmergedLeaves)
		slices.Sort(excluded)
	}
	osth, err := t.treeHashWithout(s, excluded)
	if err != nil {
		return nil, err
	}
	return t.parentHash(pn.EncryptionKey, pn.ParentHash, osth)
}

// nodeParentHash returns the parent_hash field of node n, and whether the
// node carries one (non-blank parents always do; leaves only with source
// commit).
func (t *Tree) nodeParentHash(n uint32) ([]byte, bool) {
	if n%2 == 0 {
		l := t.leaves[n/2]
		if l == nil || l.LeafNodeSource != wire.LeafNodeSourceCommit {
			return nil, false
		}
		return l.ParentHash, true
	}
	p := t.parents[n/2]
	if p == nil {
		return nil, false
	}
	return p.ParentHash, true
}

// VerifyParentHashes checks that every non-blank parent node is parent-hash
// valid (RFC 9420 §7.9.2), top down: for each non-blank parent P there must be
// exactly one node D, in the resolution of one of P's children C, whose
// parent_hash is P's parent hash with the other child S as copath child, and
// such that P's unmerged leaves under C are exactly resolution(C) without D.
// Since each D names exactly one P by its hash, chains from every parent down
// to a leaf follow by induction on the tree height.
func (t *Tree) VerifyParentHashes() error {
	var res []uint32
	for pi, pn := range t.parents {
		if pn == nil {
			continue
		}
		p := uint32(2*pi + 1)
		matches := 0
		for _, side := range [2][2]uint32{{left(p), right(p)}, {right(p), left(p)}} {
			c, s := side[0], side[1]
			ph, err := t.parentHashOf(p, s)
			if err != nil {
				return err
			}
			res = t.resolve(c, nil, res[:0])
			for _, d := range res {
				dph, ok := t.nodeParentHash(d)
				if !ok || string(dph) != string(ph) {
					continue
				}
				if t.unmergedMatch(pn, c, res, d) {
					matches++
				}
			}
		}
		if matches != 1 {
			return fmt.Errorf("%w: parent node %d has %d valid parent-hash links (want 1)", ErrInvalidParentHash, p, matches)
		}
	}
	return nil
}

// unmergedMatch reports whether P's unmerged leaves under child c equal the
// resolution of c without d (RFC 9420 §7.9.2, third criterion).
func (t *Tree) unmergedMatch(pn *wire.ParentNode, c uint32, res []uint32, d uint32) bool {
	first, count := leafRange(c)
	var want []uint32 // node indices of P's unmerged leaves under c
	for _, u := range pn.UnmergedLeaves {
		if u >= first && u < first+count {
			want = append(want, 2*u)
		}
	}
	if len(want) != len(res)-1 {
		return false
	}
	rest := make([]uint32, 0, len(res)-1)
	for _, r := range res {
		if r != d {
			rest = append(rest, r)
		}
	}
	slices.Sort(rest)
	slices.Sort(want)
	return slices.Equal(rest, want)
}
