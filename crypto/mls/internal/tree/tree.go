// Package tree implements the MLS ratchet tree (RFC 9420 §4, §7): the array
// of optional leaf and parent nodes, resolutions and filtered direct paths,
// adding, updating and removing leaves, tree hashes and parent hashes with
// caching, validation of leaf nodes, KeyPackages and whole trees when joining,
// and TreeKEM — creating, merging and decrypting UpdatePaths.
//
// A Tree is a public view shared by all members; the private keys a member
// knows for its own leaf and direct path live separately in a PathKeys value,
// so the group state can persist them.
//
// Nodes held by a Tree are treated as immutable: the tree replaces a node
// instead of modifying it, so Clone is cheap and a LeafNode or ParentNode
// returned by an accessor stays valid. Callers must not modify nodes they
// pass in or get out.
//
// Tree hashes are cached per node and invalidated only along the direct path
// of a changed node, so operations on a tree of n leaves re-hash O(log n)
// nodes (extending the tree hashes the new blank subtree once).
package tree

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// MaxLeaves bounds the number of leaves of a tree this package builds or
// decodes, so node indices always fit in a uint32 with room to spare.
const MaxLeaves = 1 << 30

// Errors returned by this package. Callers distinguish them with errors.Is;
// returned errors wrap them with detail.
var (
	// ErrMalformedTree means a ratchet tree encoding is structurally invalid
	// (wrong node types at positions, trailing blank node, bad unmerged leaves).
	ErrMalformedTree = errors.New("mls tree: malformed ratchet tree")
	// ErrInvalidTree means a structurally sound tree fails the validity checks
	// for joining a group (RFC 9420 §7.9.2, §12.4.3.1).
	ErrInvalidTree = errors.New("mls tree: invalid ratchet tree")
	// ErrInvalidParentHash means a parent hash does not match (RFC 9420 §7.9.2).
	ErrInvalidParentHash = errors.New("mls tree: invalid parent hash")
	// ErrInvalidLeafNode means a LeafNode fails validation (RFC 9420 §7.3).
	ErrInvalidLeafNode = errors.New("mls tree: invalid leaf node")
	// ErrInvalidKeyPackage means a KeyPackage fails validation (RFC 9420 §10.1).
	ErrInvalidKeyPackage = errors.New("mls tree: invalid key package")
	// ErrDuplicateKey means an encryption or signature key already appears in
	// the tree where keys must be unique (RFC 9420 §7.3, §12.4.2).
	ErrDuplicateKey = errors.New("mls tree: duplicate key in tree")
	// ErrInvalidLeafIndex means a leaf index is outside the tree or names a
	// blank leaf where a member is required.
	ErrInvalidLeafIndex = errors.New("mls tree: invalid leaf index")
	// ErrInvalidUpdatePath means an UpdatePath does not fit the tree or its
	// derived keys do not match (RFC 9420 §7.5, §7.6).
	ErrInvalidUpdatePath = errors.New("mls tree: invalid update path")
	// ErrNoPrivateKey means the member holds no private key able to decrypt
	// the path secret meant for it (RFC 9420 §7.5).
	ErrNoPrivateKey = errors.New("mls tree: no private key for update path")
	// ErrTreeFull means adding a leaf would exceed MaxLeaves.
	ErrTreeFull = errors.New("mls tree: tree is full")
)

// Tree is a ratchet tree for one cipher suite: a full binary tree of
// 2^d leaves stored in array order (RFC 9420 Appendix C), each node optional.
// The zero value is not usable; build trees with New or Decode.
type Tree struct {
	suite   *ciphersuite.Suite
	leaves  []*wire.LeafNode   // leaf i is node 2i; nil = blank
	parents []*wire.ParentNode // parent p is node 2p+1; nil = blank
	hashes  [][]byte           // tree hash per node index; nil = not computed

	// encKeys maps each encryption key in the tree (leaf or parent) to its
	// node index, sigKeys each leaf signature key to its leaf index. They make
	// the uniqueness checks of RFC 9420 §7.3 O(1). A tree with duplicate keys
	// is rejected by Validate; the indexes then hold one of the duplicates.
	// They share storage with clones (see keyIndex), so Clone stays cheap.
	encKeys *keyIndex
	sigKeys *keyIndex
}

// New returns a one-leaf tree holding the group creator's leaf (RFC 9420 §11).
func New(suite *ciphersuite.Suite, creator *wire.LeafNode) *Tree {
	t := &Tree{
		suite:   suite,
		leaves:  []*wire.LeafNode{nil},
		parents: nil,
		hashes:  make([][]byte, 1),
		encKeys: newKeyIndex(),
		sigKeys: newKeyIndex(),
	}
	t.setLeaf(0, creator)
	return t
}

// Suite returns the tree's cipher suite.
func (t *Tree) Suite() *ciphersuite.Suite { return t.suite }

// Clone returns an independent copy of the tree. Nodes are shared (they are
// immutable), so the cost is one copy of the node and hash arrays and of the
// key indexes.
func (t *Tree) Clone() *Tree {
	return &Tree{
		suite:   t.suite,
		leaves:  append([]*wire.LeafNode(nil), t.leaves...),
		parents: append([]*wire.ParentNode(nil), t.parents...),
		hashes:  append([][]byte(nil), t.hashes...),
		encKeys: t.encKeys.clone(),
		sigKeys: t.sigKeys.clone(),
	}
}

// LeafCount returns the number of leaves, blank or not: a power of two.
func (t *Tree) LeafCount() uint32 { return uint32(len(t.leaves)) }

// Width returns the number of nodes, 2*LeafCount()-1.
func (t *Tree) Width() uint32 { return uint32(2*len(t.leaves) - 1) }

// Root returns the node index of the root.
func (t *Tree) Root() uint32 { return uint32(len(t.leaves) - 1) }

// Leaf returns the LeafNode at leaf index i, or nil if the leaf is blank or
// outside the tree.
func (t *Tree) Leaf(i uint32) *wire.LeafNode {
	if uint64(i) >= uint64(len(t.leaves)) {
		return nil
	}
	return t.leaves[i]
}

// Parent returns the ParentNode at node index n (odd), or nil if it is blank,
// a leaf position or outside the tree.
func (t *Tree) Parent(n uint32) *wire.ParentNode {
	if n%2 == 0 || uint64(n/2) >= uint64(len(t.parents)) {
		return nil
	}
	return t.parents[n/2]
}

// Members returns the leaf indices of all non-blank leaves in order.
func (t *Tree) Members() []uint32 {
	var out []uint32
	for i, l := range t.leaves {
		if l != nil {
			out = append(out, uint32(i))
		}
	}
	return out
}

// MemberCount returns the number of non-blank leaves.
func (t *Tree) MemberCount() int {
	n := 0
	for _, l := range t.leaves {
		if l != nil {
			n++
		}
	}
	return n
}

// IsBlank reports whether node index n is blank (or outside the tree).
func (t *Tree) IsBlank(n uint32) bool {
	if n%2 == 0 {
		return t.Leaf(n/2) == nil
	}
	return t.Parent(n) == nil
}

// encryptionKey returns the encryption key of node n, or nil if blank.
func (t *Tree) encryptionKey(n uint32) []byte {
	if n%2 == 0 {
		if l := t.leaves[n/2]; l != nil {
			return l.EncryptionKey
		}
		return nil
	}
	if p := t.parents[n/2]; p != nil {
		return p.EncryptionKey
	}
	return nil
}

// EncryptionKey returns the HPKE public key at node index n, or nil if the
// node is blank or outside the tree.
func (t *Tree) EncryptionKey(n uint32) []byte {
	if n >= t.Width() {
		return nil
	}
	return t.encryptionKey(n)
}

// HasEncryptionKey reports whether key is the encryption key of some node,
// and which.
func (t *Tree) HasEncryptionKey(key []byte) (node uint32, ok bool) {
	node, ok = t.encKeys.get(key)
	return node, ok
}

// HasSignatureKey reports whether key is the signature key of some leaf,
// and which.
func (t *Tree) HasSignatureKey(key []byte) (leaf uint32, ok bool) {
	leaf, ok = t.sigKeys.get(key)
	return leaf, ok
}

// FindLeaf returns the index of the leaf whose encryption and signature keys
// equal those of ln, as a joiner identifies its own leaf (RFC 9420 §12.4.3.1).
func (t *Tree) FindLeaf(ln *wire.LeafNode) (uint32, bool) {
	n, ok := t.encKeys.get(ln.EncryptionKey)
	if !ok || n%2 != 0 {
		return 0, false
	}
	l := t.leaves[n/2]
	if string(l.SignatureKey) != string(ln.SignatureKey) {
		return 0, false
	}
	return n / 2, true
}

// setLeaf replaces leaf i, keeping the key indexes and hash cache current.
func (t *Tree) setLeaf(i uint32, ln *wire.LeafNode) {
	n := 2 * i
	if old := t.leaves[i]; old != nil {
		if v, ok := t.encKeys.get(old.EncryptionKey); ok && v == n {
			t.encKeys.del(old.EncryptionKey)
		}
		if v, ok := t.sigKeys.get(old.SignatureKey); ok && v == i {
			t.sigKeys.del(old.SignatureKey)
		}
	}
	t.leaves[i] = ln
	if ln != nil {
		if _, dup := t.encKeys.get(ln.EncryptionKey); !dup {
			t.encKeys.set(ln.EncryptionKey, n)
		}
		if _, dup := t.sigKeys.get(ln.SignatureKey); !dup {
			t.sigKeys.set(ln.SignatureKey, i)
		}
	}
	t.invalidate(n)
}

// setParent replaces parent node n (odd), keeping indexes and cache current.
func (t *Tree) setParent(n uint32, p *wire.ParentNode) {
	if old := t.parents[n/2]; old != nil {
		if v, ok := t.encKeys.get(old.EncryptionKey); ok && v == n {
			t.encKeys.del(old.EncryptionKey)
		}
	}
	t.parents[n/2] = p
	if p != nil {
		if _, dup := t.encKeys.get(p.EncryptionKey); !dup {
			t.encKeys.set(p.EncryptionKey, n)
		}
	}
	t.invalidate(n)
}

// invalidate drops the cached tree hashes of node n and its ancestors. A
// node's hash is only ever computed after its descendants', so a node without
// a cached hash has none cached above it either, and the walk can stop there.
func (t *Tree) invalidate(n uint32) {
	root := t.Root()
	for {
		if t.hashes[n] == nil {
			return
		}
		t.hashes[n] = nil
		if n == root {
			return
		}
		n = parent(n)
	}
}

// String summarises the tree for debugging, without key material.
func (t *Tree) String() string {
	return fmt.Sprintf("ratchet tree: %d leaves, %d members", len(t.leaves), t.MemberCount())
}

// Array-based tree math for a full tree (RFC 9420 Appendix C). All node
// indices handled here are inside the tree, whose width is 2^(d+1)-1.

// level returns the level of node x: 0 for leaves, the number of trailing
// one bits otherwise.
func level(x uint32) uint32 { return uint32(bits.TrailingZeros32(^x)) }

func left(x uint32) uint32 {
	k := level(x)
	return x ^ (1 << (k - 1))
}

func right(x uint32) uint32 {
	k := level(x)
	return x ^ (3 << (k - 1))
}

func parent(x uint32) uint32 {
	k := level(x)
	b := (x >> (k + 1)) & 1
	return (x | (1 << k)) ^ (b << (k + 1))
}

func sibling(x uint32) uint32 {
	p := parent(x)
	if x < p {
		return right(p)
	}
	return left(p)
}

// leafRange returns the first leaf index under node x and the number of
// leaves under it.
func leafRange(x uint32) (first, count uint32) {
	k := level(x)
	return (x - (1<<k - 1)) / 2, 1 << k
}

// isAncestorOrSelf reports whether node a is node x or an ancestor of x.
func isAncestorOrSelf(a, x uint32) bool {
	first, count := leafRange(a)
	return x >= 2*first && x <= 2*(first+count-1)
}

// DirectPath returns the node indices of the direct path of node n, from
// its parent up to the root (RFC 9420 §4.1.2).
func (t *Tree) DirectPath(n uint32) []uint32 {
	root := t.Root()
	var out []uint32
	for n != root {
		n = parent(n)
		out = append(out, n)
	}
	return out
}

// Copath returns the siblings of node n and of each node in its direct path
// except the root (RFC 9420 §4.1.2).
func (t *Tree) Copath(n uint32) []uint32 {
	root := t.Root()
	var out []uint32
	for n != root {
		out = append(out, sibling(n))
		n = parent(n)
	}
	return out
}

// CommonAncestor returns the lowest common ancestor of two leaves.
func CommonAncestor(a, b uint32) uint32 {
	x, y := 2*a, 2*b
	if x == y {
		return x
	}
	var k uint32
	for x != y {
		x >>= 1
		y >>= 1
		k++
	}
	return (x << k) + (1 << (k - 1)) - 1
}

// Resolution returns the resolution of node n (RFC 9420 §4.1.1): the
// nearest non-blank nodes covering the subtree, each non-blank parent
// followed by its unmerged leaves (as node indices).
func (t *Tree) Resolution(n uint32) []uint32 {
	if n >= t.Width() {
		return nil
	}
	return t.resolve(n, nil, nil)
}

// resolve appends the resolution of n to out, leaving out the leaves in
// exclude (leaf indices), as for new members of a Commit (RFC 9420 §12.4.2).
func (t *Tree) resolve(n uint32, exclude map[uint32]bool, out []uint32) []uint32 {
	if n%2 == 0 {
		if t.leaves[n/2] != nil && !exclude[n/2] {
			out = append(out, n)
		}
		return out
	}
	if p := t.parents[n/2]; p != nil {
		out = append(out, n)
		for _, u := range p.UnmergedLeaves {
			if !exclude[u] {
				out = append(out, 2*u)
			}
		}
		return out
	}
	out = t.resolve(left(n), exclude, out)
	return t.resolve(right(n), exclude, out)
}

// resolutionEmpty reports whether node n's subtree has no non-blank node,
// stopping at the first one found.
func (t *Tree) resolutionEmpty(n uint32) bool {
	if n%2 == 0 {
		return t.leaves[n/2] == nil
	}
	if t.parents[n/2] != nil {
		return false
	}
	return t.resolutionEmpty(left(n)) && t.resolutionEmpty(right(n))
}

// FilteredDirectPath returns the filtered direct path of leaf i: its direct
// path without the nodes whose copath child has an empty resolution
// (RFC 9420 §4.1.2).
func (t *Tree) FilteredDirectPath(leaf uint32) []uint32 {
	fdp, _ := t.filteredDirectPath(leaf)
	return fdp
}

// filteredDirectPath returns the filtered direct path of leaf and, for each
// of its nodes, the copath child (the child not on the leaf's path).
func (t *Tree) filteredDirectPath(leaf uint32) (fdp, copath []uint32) {
	n := 2 * leaf
	root := t.Root()
	for n != root {
		s := sibling(n)
		p := parent(n)
		if !t.resolutionEmpty(s) {
			fdp = append(fdp, p)
			copath = append(copath, s)
		}
		n = p
	}
	return fdp, copath
}
