package tree

import (
	"fmt"
	"slices"

	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// AddLeaf places ln in the leftmost blank leaf, extending the tree to the
// right if there is none, and adds the new leaf index to the unmerged leaves
// of every non-blank parent on its direct path (RFC 9420 §12.1.1). It returns
// the new leaf's index. It checks only that the tree has room; validating ln
// (RFC 9420 §7.3, §10.1) is the caller's job, before adding.
func (t *Tree) AddLeaf(ln *wire.LeafNode) (uint32, error) {
	if ln == nil {
		return 0, fmt.Errorf("add leaf: %w: nil leaf node", ErrInvalidLeafNode)
	}
	i := t.firstBlankLeaf()
	if i == uint32(len(t.leaves)) {
		if err := t.extend(); err != nil {
			return 0, fmt.Errorf("add leaf: %w", err)
		}
	}
	t.setLeaf(i, ln)
	for _, p := range t.DirectPath(2 * i) {
		pn := t.parents[p/2]
		if pn == nil {
			continue
		}
		q := *pn
		// Unmerged leaves stay sorted (RFC 9420 §7.1); the new index is
		// normally the largest, but insert in order to be safe.
		at, found := slices.BinarySearch(q.UnmergedLeaves, i)
		if found {
			continue
		}
		q.UnmergedLeaves = slices.Insert(slices.Clone(q.UnmergedLeaves), at, i)
		t.setParent(p, &q)
	}
	return i, nil
}

// NextLeaf returns the index AddLeaf would assign: the leftmost blank leaf,
// or the first leaf of the extension if the tree is full.
func (t *Tree) NextLeaf() uint32 { return t.firstBlankLeaf() }

func (t *Tree) firstBlankLeaf() uint32 {
	for i, l := range t.leaves {
		if l == nil {
			return uint32(i)
		}
	}
	return uint32(len(t.leaves))
}

// extend doubles the number of leaves: the old tree becomes the left subtree
// of a new blank root and the right subtree is blank (RFC 9420 §7.7). Cached
// hashes of the old tree stay valid at the same node indices.
func (t *Tree) extend() error {
	n := len(t.leaves)
	if n >= MaxLeaves {
		return ErrTreeFull
	}
	t.leaves = append(t.leaves, make([]*wire.LeafNode, n)...)
	t.parents = append(t.parents, make([]*wire.ParentNode, n)...)
	t.hashes = append(t.hashes, make([][]byte, 2*n)...)
	return nil
}

// UpdateLeaf replaces the LeafNode of member i with ln and blanks the
// intermediate nodes of its direct path, as for an Update proposal
// (RFC 9420 §12.1.2). Validating ln is the caller's job.
func (t *Tree) UpdateLeaf(i uint32, ln *wire.LeafNode) error {
	if ln == nil {
		return fmt.Errorf("update leaf %d: %w: nil leaf node", i, ErrInvalidLeafNode)
	}
	if t.Leaf(i) == nil {
		return fmt.Errorf("update leaf %d: %w", i, ErrInvalidLeafIndex)
	}
	t.setLeaf(i, ln)
	t.blankDirectPath(2 * i)
	return nil
}

// RemoveLeaf blanks member i's leaf and its direct path, then truncates the
// tree while its right half is blank (RFC 9420 §12.1.3).
func (t *Tree) RemoveLeaf(i uint32) error {
	if t.Leaf(i) == nil {
		return fmt.Errorf("remove leaf %d: %w", i, ErrInvalidLeafIndex)
	}
	t.setLeaf(i, nil)
	t.blankDirectPath(2 * i)
	t.truncate()
	return nil
}

// blankDirectPath blanks every parent on the direct path of node n.
func (t *Tree) blankDirectPath(n uint32) {
	for _, p := range t.DirectPath(n) {
		if t.parents[p/2] != nil {
			t.setParent(p, nil)
		}
	}
}

// truncate removes the right half of the tree while it holds no non-blank
// leaf: the tree ends with 2^d leaves for the smallest d with 2^d greater
// than the rightmost non-blank leaf index (RFC 9420 §12.1.3). A tree keeps at
// least one leaf.
func (t *Tree) truncate() {
	last := -1
	for i := len(t.leaves) - 1; i >= 0; i-- {
		if t.leaves[i] != nil {
			last = i
			break
		}
	}
	n := len(t.leaves)
	for n > 1 && last < n/2 {
		n /= 2
	}
	if n == len(t.leaves) {
		return
	}
	// Drop key-index entries of parents in the removed part (blank in a
	// valid tree, but be exact) and of the old root.
	for p := n - 1; p < len(t.parents); p++ {
		if t.parents[p] != nil {
			t.setParentNoInvalidate(uint32(2*p+1), nil)
		}
	}
	for i := n; i < len(t.leaves); i++ {
		if t.leaves[i] != nil {
			t.setLeaf(uint32(i), nil) // unreachable: leaves past last are blank
		}
	}
	t.leaves = t.leaves[:n:n]
	t.parents = t.parents[: n-1 : n-1]
	t.hashes = t.hashes[: 2*n-1 : 2*n-1]
}

// setParentNoInvalidate clears a parent node that is being cut off the tree.
func (t *Tree) setParentNoInvalidate(n uint32, p *wire.ParentNode) {
	if old := t.parents[n/2]; old != nil {
		if v, ok := t.encKeys.get(old.EncryptionKey); ok && v == n {
			t.encKeys.del(old.EncryptionKey)
		}
	}
	t.parents[n/2] = p
}
