package tree

// Exported array-based tree math for a full tree of nLeaves leaves (a power
// of two), as in RFC 9420 Appendix C. The second result is false where the
// relation does not exist (children of a leaf, parent or sibling of the root,
// nodes outside the tree).

// NodeWidth returns the number of nodes of a tree with nLeaves leaves.
func NodeWidth(nLeaves uint32) uint32 {
	if nLeaves == 0 {
		return 0
	}
	return 2*(nLeaves-1) + 1
}

// RootOf returns the root node index of a tree with nLeaves leaves.
func RootOf(nLeaves uint32) uint32 { return nLeaves - 1 }

// LeftChild returns the left child of node x.
func LeftChild(x uint32) (uint32, bool) {
	if level(x) == 0 {
		return 0, false
	}
	return left(x), true
}

// RightChild returns the right child of node x.
func RightChild(x uint32) (uint32, bool) {
	if level(x) == 0 {
		return 0, false
	}
	return right(x), true
}

// ParentOf returns the parent of node x in a tree of nLeaves leaves.
func ParentOf(x, nLeaves uint32) (uint32, bool) {
	if x >= NodeWidth(nLeaves) || x == RootOf(nLeaves) {
		return 0, false
	}
	return parent(x), true
}

// SiblingOf returns the sibling of node x in a tree of nLeaves leaves.
func SiblingOf(x, nLeaves uint32) (uint32, bool) {
	if x >= NodeWidth(nLeaves) || x == RootOf(nLeaves) {
		return 0, false
	}
	return sibling(x), true
}
