package wire

import (
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// BenchmarkMLSMessagePublicCommit decodes and re-encodes a PublicMessage
// commit carrying an UpdatePath.
func BenchmarkMLSMessagePublicCommit(b *testing.B) {
	m := sampleMessages()[2]
	data, err := codec.Marshal(&m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var got MLSMessage
		if err := codec.Unmarshal(data, &got); err != nil {
			b.Fatal(err)
		}
		if _, err := codec.Marshal(&got); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRatchetTreeDecode1000 decodes a ratchet_tree extension of 1,000
// leaves with every parent node set.
func BenchmarkRatchetTreeDecode1000(b *testing.B) {
	leaf := sampleLeaf(LeafNodeSourceCommit)
	leaf.EncryptionKey = make([]byte, 32)
	leaf.SignatureKey = make([]byte, 32)
	leaf.Signature = make([]byte, 64)
	rt := make(RatchetTree, 2*1000-1)
	for i := range rt {
		if i%2 == 0 {
			rt[i] = &Node{NodeType: NodeTypeLeaf, LeafNode: &leaf}
		} else {
			rt[i] = &Node{NodeType: NodeTypeParent, ParentNode: &ParentNode{EncryptionKey: make([]byte, 32), ParentHash: make([]byte, 32)}}
		}
	}
	data, err := codec.Marshal(&rt)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var got RatchetTree
		if err := codec.Unmarshal(data, &got); err != nil {
			b.Fatal(err)
		}
	}
}
