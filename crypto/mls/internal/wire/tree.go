package wire

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// LeafNode describes a member in the ratchet tree (RFC 9420 §7.2). Lifetime
// is set only for the key_package source, ParentHash only for commit.
type LeafNode struct {
	EncryptionKey  []byte
	SignatureKey   []byte
	Credential     Credential
	Capabilities   Capabilities
	LeafNodeSource LeafNodeSource
	Lifetime       *Lifetime
	ParentHash     []byte
	Extensions     []Extension
	Signature      []byte
}

func (l *LeafNode) marshalContent(w *codec.Writer) {
	w.WriteOpaque(l.EncryptionKey)
	w.WriteOpaque(l.SignatureKey)
	l.Credential.MarshalMLS(w)
	l.Capabilities.MarshalMLS(w)
	w.WriteUint8(uint8(l.LeafNodeSource))
	switch l.LeafNodeSource {
	case LeafNodeSourceKeyPackage:
		lt := l.Lifetime
		if lt == nil {
			lt = &Lifetime{}
		}
		w.WriteUint64(lt.NotBefore)
		w.WriteUint64(lt.NotAfter)
	case LeafNodeSourceCommit:
		w.WriteOpaque(l.ParentHash)
	}
	WriteExtensions(w, l.Extensions)
}

// MarshalMLS encodes the leaf node. A key_package leaf without Lifetime is
// written with a zero lifetime.
func (l *LeafNode) MarshalMLS(w *codec.Writer) {
	l.marshalContent(w)
	w.WriteOpaque(l.Signature)
}

// TBS returns the LeafNodeTBS encoding the signature covers (RFC 9420 §7.2):
// the fields above the signature, then group_id and leaf_index for the
// update and commit sources.
func (l *LeafNode) TBS(groupID []byte, leafIndex uint32) ([]byte, error) {
	var w codec.Writer
	l.marshalContent(&w)
	if l.LeafNodeSource == LeafNodeSourceUpdate || l.LeafNodeSource == LeafNodeSourceCommit {
		w.WriteOpaque(groupID)
		w.WriteUint32(leafIndex)
	}
	return w.Bytes()
}

// UnmarshalMLS decodes a leaf node; an unknown source fails with ErrUnknownValue.
func (l *LeafNode) UnmarshalMLS(r *codec.Reader) error {
	*l = LeafNode{}
	var err error
	if l.EncryptionKey, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("leaf node encryption key: %w", err)
	}
	if l.SignatureKey, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("leaf node signature key: %w", err)
	}
	if err = l.Credential.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("leaf node: %w", err)
	}
	if err = l.Capabilities.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("leaf node: %w", err)
	}
	src, err := r.ReadUint8()
	if err != nil {
		return fmt.Errorf("leaf node source: %w", err)
	}
	l.LeafNodeSource = LeafNodeSource(src)
	switch l.LeafNodeSource {
	case LeafNodeSourceKeyPackage:
		var lt Lifetime
		if lt.NotBefore, err = r.ReadUint64(); err != nil {
			return fmt.Errorf("leaf node lifetime: %w", err)
		}
		if lt.NotAfter, err = r.ReadUint64(); err != nil {
			return fmt.Errorf("leaf node lifetime: %w", err)
		}
		l.Lifetime = &lt
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		if l.ParentHash, err = r.ReadOpaque(); err != nil {
			return fmt.Errorf("leaf node parent hash: %w", err)
		}
	default:
		return fmt.Errorf("%w: leaf node source %d", ErrUnknownValue, src)
	}
	if err = ReadExtensions(r, &l.Extensions); err != nil {
		return fmt.Errorf("leaf node extensions: %w", err)
	}
	if l.Signature, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("leaf node signature: %w", err)
	}
	return nil
}

// ParentNode is a parent node of the ratchet tree (RFC 9420 §7.1).
type ParentNode struct {
	EncryptionKey  []byte
	ParentHash     []byte
	UnmergedLeaves []uint32
}

// MarshalMLS encodes the parent node.
func (p *ParentNode) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(p.EncryptionKey)
	w.WriteOpaque(p.ParentHash)
	w.WriteVector(func(w *codec.Writer) {
		for _, u := range p.UnmergedLeaves {
			w.WriteUint32(u)
		}
	})
}

// UnmarshalMLS decodes a parent node.
func (p *ParentNode) UnmarshalMLS(r *codec.Reader) error {
	*p = ParentNode{}
	var err error
	if p.EncryptionKey, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("parent node encryption key: %w", err)
	}
	if p.ParentHash, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("parent node parent hash: %w", err)
	}
	err = r.ReadNested(func(r *codec.Reader) error {
		if r.Len()%4 != 0 {
			return fmt.Errorf("%w: vector of uint32 has length %d", codec.ErrTruncated, r.Len())
		}
		if r.Len() > 0 {
			p.UnmergedLeaves = make([]uint32, 0, r.Len()/4)
		}
		for !r.Empty() {
			v, err := r.ReadUint32()
			if err != nil {
				return err
			}
			p.UnmergedLeaves = append(p.UnmergedLeaves, v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("parent node unmerged leaves: %w", err)
	}
	return nil
}

// Node is a non-blank ratchet tree node: a leaf or a parent (RFC 9420 §12.4.3.3).
type Node struct {
	NodeType   NodeType
	LeafNode   *LeafNode
	ParentNode *ParentNode
}

// MarshalMLS encodes the node.
func (n *Node) MarshalMLS(w *codec.Writer) {
	w.WriteUint8(uint8(n.NodeType))
	switch n.NodeType {
	case NodeTypeLeaf:
		n.LeafNode.MarshalMLS(w)
	case NodeTypeParent:
		n.ParentNode.MarshalMLS(w)
	}
}

// UnmarshalMLS decodes a node; an unknown node type fails with ErrUnknownValue.
func (n *Node) UnmarshalMLS(r *codec.Reader) error {
	t, err := r.ReadUint8()
	if err != nil {
		return fmt.Errorf("node type: %w", err)
	}
	*n = Node{NodeType: NodeType(t)}
	switch n.NodeType {
	case NodeTypeLeaf:
		n.LeafNode = &LeafNode{}
		return n.LeafNode.UnmarshalMLS(r)
	case NodeTypeParent:
		n.ParentNode = &ParentNode{}
		return n.ParentNode.UnmarshalMLS(r)
	}
	return fmt.Errorf("%w: node type %d", ErrUnknownValue, t)
}

// RatchetTree is optional<Node> ratchet_tree<V>, the ratchet_tree extension
// (RFC 9420 §12.4.3.3); nil entries are blank nodes.
type RatchetTree []*Node

// MarshalMLS encodes the node list.
func (rt *RatchetTree) MarshalMLS(w *codec.Writer) {
	w.WriteVector(func(w *codec.Writer) {
		for _, n := range *rt {
			w.WriteOptional(n != nil, func(w *codec.Writer) { n.MarshalMLS(w) })
		}
	})
}

// UnmarshalMLS decodes the node list. Structural checks (last node
// non-blank, node kinds at positions) belong to the tree package.
func (rt *RatchetTree) UnmarshalMLS(r *codec.Reader) error {
	*rt = nil
	return r.ReadVector(func(r *codec.Reader) error {
		present, err := r.ReadOptional()
		if err != nil {
			return fmt.Errorf("ratchet tree node: %w", err)
		}
		if !present {
			*rt = append(*rt, nil)
			return nil
		}
		n := &Node{}
		if err := n.UnmarshalMLS(r); err != nil {
			return fmt.Errorf("ratchet tree node %d: %w", len(*rt), err)
		}
		*rt = append(*rt, n)
		return nil
	})
}

// KeyPackage is a client's pre-published invitation material (RFC 9420 §10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite ciphersuite.ID
	InitKey     []byte
	LeafNode    LeafNode
	Extensions  []Extension
	Signature   []byte
}

func (k *KeyPackage) marshalContent(w *codec.Writer) {
	w.WriteUint16(uint16(k.Version))
	w.WriteUint16(uint16(k.CipherSuite))
	w.WriteOpaque(k.InitKey)
	k.LeafNode.MarshalMLS(w)
	WriteExtensions(w, k.Extensions)
}

// MarshalMLS encodes the KeyPackage.
func (k *KeyPackage) MarshalMLS(w *codec.Writer) {
	k.marshalContent(w)
	w.WriteOpaque(k.Signature)
}

// TBS returns the KeyPackageTBS encoding its signature covers (RFC 9420 §10).
func (k *KeyPackage) TBS() ([]byte, error) {
	var w codec.Writer
	k.marshalContent(&w)
	return w.Bytes()
}

// UnmarshalMLS decodes a KeyPackage.
func (k *KeyPackage) UnmarshalMLS(r *codec.Reader) error {
	*k = KeyPackage{}
	v, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("key package version: %w", err)
	}
	k.Version = ProtocolVersion(v)
	cs, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("key package cipher suite: %w", err)
	}
	k.CipherSuite = ciphersuite.ID(cs)
	if k.InitKey, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("key package init key: %w", err)
	}
	if err = k.LeafNode.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("key package: %w", err)
	}
	if err = ReadExtensions(r, &k.Extensions); err != nil {
		return fmt.Errorf("key package extensions: %w", err)
	}
	if k.Signature, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("key package signature: %w", err)
	}
	return nil
}
