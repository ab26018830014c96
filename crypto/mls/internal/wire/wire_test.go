package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

func sampleLeaf(src LeafNodeSource) LeafNode {
	ln := LeafNode{
		EncryptionKey: []byte("enc"),
		SignatureKey:  []byte("sig"),
		Credential:    Credential{CredentialType: CredentialTypeX509, Certificates: [][]byte{[]byte("leaf"), []byte("ca")}},
		Capabilities: Capabilities{
			Versions: []ProtocolVersion{1, 0x0a0a}, CipherSuites: nil, Extensions: []ExtensionType{0x1a1a},
			Proposals: []ProposalType{0x2a2a}, Credentials: []CredentialType{1, 2},
		},
		LeafNodeSource: src,
		Extensions:     []Extension{{ExtensionType: 0x3a3a, ExtensionData: []byte("grease")}},
		Signature:      []byte("signature"),
	}
	switch src {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime = &Lifetime{NotBefore: 1, NotAfter: 2}
	case LeafNodeSourceCommit:
		ln.ParentHash = []byte("ph")
	}
	return ln
}

// roundTrip encodes v, decodes into fresh, re-encodes and compares bytes.
func roundTrip(t *testing.T, name string, v codec.Marshaler, fresh codec.Unmarshaler) {
	t.Helper()
	b, err := codec.Marshal(v)
	if err != nil {
		t.Fatalf("%s: marshal: %v", name, err)
	}
	if err := codec.Unmarshal(b, fresh); err != nil {
		t.Fatalf("%s: unmarshal: %v", name, err)
	}
	b2, err := codec.Marshal(fresh.(codec.Marshaler))
	if err != nil {
		t.Fatalf("%s: re-marshal: %v", name, err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("%s: round trip changed the encoding", name)
	}
}

func TestRoundTrips(t *testing.T) {
	for _, src := range []LeafNodeSource{LeafNodeSourceKeyPackage, LeafNodeSourceUpdate, LeafNodeSourceCommit} {
		ln := sampleLeaf(src)
		roundTrip(t, "leaf node", &ln, &LeafNode{})
	}
	kp := KeyPackage{Version: 1, CipherSuite: 1, InitKey: []byte("init"), LeafNode: sampleLeaf(LeafNodeSourceKeyPackage), Signature: []byte("s")}
	roundTrip(t, "key package", &kp, &KeyPackage{})
	leaf := sampleLeaf(LeafNodeSourceCommit)
	rt := RatchetTree{{NodeType: NodeTypeLeaf, LeafNode: &leaf}, nil, {NodeType: NodeTypeLeaf, LeafNode: &leaf},
		{NodeType: NodeTypeParent, ParentNode: &ParentNode{EncryptionKey: []byte("p"), UnmergedLeaves: []uint32{2}}}, {NodeType: NodeTypeLeaf, LeafNode: &leaf}}
	roundTrip(t, "ratchet tree", &rt, &RatchetTree{})
	up := UpdatePath{LeafNode: leaf, Nodes: []UpdatePathNode{{EncryptionKey: []byte("k"), EncryptedPathSecret: []HPKECiphertext{{KEMOutput: []byte("e"), Ciphertext: []byte("c")}}}}}
	roundTrip(t, "update path", &up, &UpdatePath{})
	gc := GroupContext{Version: 1, CipherSuite: 3, GroupID: []byte("g"), Epoch: 9, TreeHash: []byte("t"), Extensions: []Extension{{ExtensionType: 3}}}
	roundTrip(t, "group context", &gc, &GroupContext{})
	for _, p := range []Proposal{
		{ProposalType: ProposalTypeAdd, Add: &Add{KeyPackage: kp}},
		{ProposalType: ProposalTypeUpdate, Update: &Update{LeafNode: sampleLeaf(LeafNodeSourceUpdate)}},
		{ProposalType: ProposalTypeRemove, Remove: &Remove{Removed: 7}},
	} {
		roundTrip(t, "proposal", &p, &Proposal{})
	}
}

func TestLeafTBSBindsGroupForUpdateAndCommit(t *testing.T) {
	kpLeaf := sampleLeaf(LeafNodeSourceKeyPackage)
	a, _ := kpLeaf.TBS([]byte("g1"), 1)
	b, _ := kpLeaf.TBS([]byte("g2"), 2)
	if !bytes.Equal(a, b) {
		t.Error("key_package LeafNodeTBS depends on the group")
	}
	c := sampleLeaf(LeafNodeSourceCommit)
	a, _ = c.TBS([]byte("g1"), 1)
	b, _ = c.TBS([]byte("g1"), 2)
	if bytes.Equal(a, b) {
		t.Error("commit LeafNodeTBS does not depend on the leaf index")
	}
}

func TestDecodeRejectsUnknownSelectors(t *testing.T) {
	cases := map[string]struct {
		data []byte
		v    codec.Unmarshaler
	}{
		"credential type": {[]byte{0x0a, 0x0a, 0}, &Credential{}},
		"node type":       {[]byte{3}, &Node{}},
		"proposal type":   {[]byte{0x0a, 0x0a}, &Proposal{}},
	}
	for name, c := range cases {
		if err := codec.Unmarshal(c.data, c.v); !errors.Is(err, ErrUnknownValue) {
			t.Errorf("%s: %v, want ErrUnknownValue", name, err)
		}
	}
	ln := sampleLeaf(LeafNodeSourceUpdate)
	var w codec.Writer
	w.WriteOpaque(ln.EncryptionKey)
	w.WriteOpaque(ln.SignatureKey)
	ln.Credential.MarshalMLS(&w)
	ln.Capabilities.MarshalMLS(&w)
	w.WriteUint8(9) // no such leaf_node_source
	WriteExtensions(&w, nil)
	w.WriteOpaque(nil)
	b, _ := w.Bytes()
	if err := codec.Unmarshal(b, &LeafNode{}); !errors.Is(err, ErrUnknownValue) {
		t.Errorf("leaf node source 9: %v, want ErrUnknownValue", err)
	}
	dup := []Extension{{ExtensionType: 5}, {ExtensionType: 5}}
	gc := GroupContext{Extensions: dup}
	b, _ = codec.Marshal(&gc)
	if err := codec.Unmarshal(b, &GroupContext{}); !errors.Is(err, codec.ErrInvalidValue) {
		t.Errorf("duplicate extensions: %v, want ErrInvalidValue", err)
	}
}

// fuzzRoundTrip checks that decoding never panics and that whatever decodes
// re-encodes to the same bytes (the encoding is canonical).
func fuzzRoundTrip[T any, P interface {
	*T
	codec.Marshaler
	codec.Unmarshaler
}](t *testing.T, data []byte) {
	var v T
	if err := codec.Unmarshal(data, P(&v)); err != nil {
		return
	}
	b, err := codec.Marshal(P(&v))
	if err != nil {
		t.Fatalf("re-marshal: %v", err)
	}
	if !bytes.Equal(b, data) {
		t.Fatalf("re-encoding differs:\n got %x\nwant %x", b, data)
	}
}

func FuzzKeyPackage(f *testing.F) {
	kp := KeyPackage{Version: 1, CipherSuite: 1, InitKey: []byte("init"), LeafNode: sampleLeaf(LeafNodeSourceKeyPackage)}
	b, _ := codec.Marshal(&kp)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[KeyPackage](t, data) })
}

func FuzzUpdatePath(f *testing.F) {
	up := UpdatePath{LeafNode: sampleLeaf(LeafNodeSourceCommit), Nodes: []UpdatePathNode{{EncryptionKey: []byte("k"), EncryptedPathSecret: []HPKECiphertext{{}}}}}
	b, _ := codec.Marshal(&up)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[UpdatePath](t, data) })
}

func FuzzRatchetTree(f *testing.F) {
	leaf := sampleLeaf(LeafNodeSourceUpdate)
	rt := RatchetTree{{NodeType: NodeTypeLeaf, LeafNode: &leaf}, {NodeType: NodeTypeParent, ParentNode: &ParentNode{}}, nil}
	b, _ := codec.Marshal(&rt)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[RatchetTree](t, data) })
}

func FuzzProposal(f *testing.F) {
	p := Proposal{ProposalType: ProposalTypeRemove, Remove: &Remove{Removed: 1}}
	b, _ := codec.Marshal(&p)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[Proposal](t, data) })
}
