package wire

import "github.com/medicus-health/medicus/crypto/mls/internal/codec"

// LeafNodeHashInput returns the encoding of TreeHashInput for a leaf
// (RFC 9420 §7.8): node_type leaf, leaf_index and optional<LeafNode>
// (leaf is nil for a blank leaf).
func LeafNodeHashInput(leafIndex uint32, leaf *LeafNode) ([]byte, error) {
	var w codec.Writer
	w.WriteUint8(uint8(NodeTypeLeaf))
	w.WriteUint32(leafIndex)
	w.WriteOptional(leaf != nil, func(w *codec.Writer) { leaf.MarshalMLS(w) })
	return w.Bytes()
}

// ParentNodeHashInput returns the encoding of TreeHashInput for a parent
// (RFC 9420 §7.8): node_type parent, optional<ParentNode> (parent is nil for
// a blank node) and the tree hashes of the left and right subtrees.
func ParentNodeHashInput(parent *ParentNode, leftHash, rightHash []byte) ([]byte, error) {
	var w codec.Writer
	w.WriteUint8(uint8(NodeTypeParent))
	w.WriteOptional(parent != nil, func(w *codec.Writer) { parent.MarshalMLS(w) })
	w.WriteOpaque(leftHash)
	w.WriteOpaque(rightHash)
	return w.Bytes()
}

// ParentHashInput returns the encoding of ParentHashInput (RFC 9420 §7.9):
// the parent's encryption key, its own parent hash, and the tree hash of the
// child's sibling as it was before the update.
func ParentHashInput(encryptionKey, parentHash, originalSiblingTreeHash []byte) ([]byte, error) {
	var w codec.Writer
	w.WriteOpaque(encryptionKey)
	w.WriteOpaque(parentHash)
	w.WriteOpaque(originalSiblingTreeHash)
	return w.Bytes()
}
