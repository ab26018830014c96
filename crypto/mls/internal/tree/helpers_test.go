package tree

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// member is a test client: its signing and leaf keys.
type member struct {
	signer   *ciphersuite.Signer
	leafPriv []byte
	leaf     *wire.LeafNode
}

func testSuite(t testing.TB, id ciphersuite.ID) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(id)
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", uint16(id), err)
	}
	return s
}

func testCapabilities(suite *ciphersuite.Suite) wire.Capabilities {
	return wire.Capabilities{
		Versions:     []wire.ProtocolVersion{wire.ProtocolVersionMLS10},
		CipherSuites: []ciphersuite.ID{suite.ID()},
		Credentials:  []wire.CredentialType{wire.CredentialTypeBasic},
	}
}

// newMember makes a client with a signed key_package leaf.
func newMember(t testing.TB, suite *ciphersuite.Suite, name string) *member {
	t.Helper()
	sigPriv, sigPub, err := suite.GenerateSignatureKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	signer, err := suite.NewSigner(sigPriv)
	if err != nil {
		t.Fatal(err)
	}
	encPriv, encPub, err := suite.GenerateKEMKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	ln := &wire.LeafNode{
		EncryptionKey:  encPub,
		SignatureKey:   sigPub,
		Credential:     wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: []byte(name)},
		Capabilities:   testCapabilities(suite),
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime:       &wire.Lifetime{NotBefore: 0, NotAfter: 1<<63 - 1},
	}
	signLeaf(t, signer, ln, nil, 0)
	return &member{signer: signer, leafPriv: encPriv, leaf: ln}
}

func signLeaf(t testing.TB, signer *ciphersuite.Signer, ln *wire.LeafNode, groupID []byte, leaf uint32) {
	t.Helper()
	tbs, err := ln.TBS(groupID, leaf)
	if err != nil {
		t.Fatal(err)
	}
	if ln.Signature, err = signer.SignWithLabel(labelLeafNodeTBS, tbs); err != nil {
		t.Fatal(err)
	}
}

// keyPackage wraps m's leaf in a signed KeyPackage with a fresh init key.
func keyPackage(t testing.TB, suite *ciphersuite.Suite, m *member) *wire.KeyPackage {
	t.Helper()
	_, initPub, err := suite.GenerateKEMKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	kp := &wire.KeyPackage{
		Version:     wire.ProtocolVersionMLS10,
		CipherSuite: suite.ID(),
		InitKey:     initPub,
		LeafNode:    *m.leaf,
	}
	tbs, err := kp.TBS()
	if err != nil {
		t.Fatal(err)
	}
	if kp.Signature, err = m.signer.SignWithLabel(labelKeyPackageTBS, tbs); err != nil {
		t.Fatal(err)
	}
	return kp
}

// group is a test group: a tree and every member's private state.
type group struct {
	suite   *ciphersuite.Suite
	id      []byte
	tree    *Tree
	members map[uint32]*member
	keys    map[uint32]*PathKeys
	epoch   uint64
}

func (g *group) groupContext(treeHash []byte) ([]byte, error) {
	gc := wire.GroupContext{
		Version:     wire.ProtocolVersionMLS10,
		CipherSuite: g.suite.ID(),
		GroupID:     g.id,
		Epoch:       g.epoch,
		TreeHash:    treeHash,
	}
	return codec.Marshal(&gc)
}

// newGroup builds a group of n members added without paths (a bare tree).
func newGroup(t testing.TB, suite *ciphersuite.Suite, n int) *group {
	t.Helper()
	g := &group{suite: suite, id: []byte("test group"), members: map[uint32]*member{}, keys: map[uint32]*PathKeys{}}
	for i := 0; i < n; i++ {
		m := newMember(t, suite, fmt.Sprintf("member %d", i))
		var idx uint32
		if i == 0 {
			g.tree = New(suite, m.leaf)
		} else {
			var err error
			if idx, err = g.tree.AddLeaf(m.leaf); err != nil {
				t.Fatal(err)
			}
		}
		g.members[idx] = m
		g.keys[idx] = NewPathKeys(idx, m.leafPriv, m.leaf.EncryptionKey)
	}
	return g
}

// commit has member c create an UpdatePath, and every other member merge and
// decrypt it; it fails the test unless all agree on the commit secret.
func (g *group) commit(t testing.TB, c uint32) {
	t.Helper()
	g.epoch++
	next := g.tree.Clone()
	res, err := next.CreateUpdatePath(PathParams{
		Leaf: c, LeafNode: g.tree.Leaf(c), Signer: g.members[c].signer,
		GroupID: g.id, GroupContext: g.groupContext,
	})
	if err != nil {
		t.Fatalf("commit by %d: %v", c, err)
	}
	want, _ := next.RootHash()
	for j, k := range g.keys {
		if j == c {
			continue
		}
		recv := g.tree.Clone()
		if err := recv.ValidateLeafNode(&res.Path.LeafNode, LeafCheck{Source: wire.LeafNodeSourceCommit, GroupID: g.id, LeafIndex: c}, nil); err != nil {
			t.Fatalf("leaf %d validating commit by %d: %v", j, c, err)
		}
		if err := recv.MergeUpdatePath(c, res.Path); err != nil {
			t.Fatalf("leaf %d merging commit by %d: %v", j, c, err)
		}
		th, _ := recv.RootHash()
		if string(th) != string(want) {
			t.Fatalf("leaf %d: tree hash differs from committer's", j)
		}
		gc, _ := g.groupContext(th)
		dp, err := k.DecryptUpdatePath(recv, c, res.Path, nil, gc)
		if err != nil {
			t.Fatalf("leaf %d decrypting commit by %d: %v", j, c, err)
		}
		if string(dp.CommitSecret) != string(res.CommitSecret) {
			t.Fatalf("leaf %d: commit secret differs from committer's", j)
		}
		g.keys[j] = dp.Keys
	}
	g.keys[c] = res.Keys
	g.tree = next
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// fakeLeaf returns a structurally valid leaf with random keys and no valid
// signature, for tests of tree structure and hashing only.
func fakeLeaf(suite *ciphersuite.Suite) *wire.LeafNode {
	return &wire.LeafNode{
		EncryptionKey:  randomBytes(32),
		SignatureKey:   randomBytes(32),
		Credential:     wire.Credential{CredentialType: wire.CredentialTypeBasic, Identity: randomBytes(8)},
		Capabilities:   testCapabilities(suite),
		LeafNodeSource: wire.LeafNodeSourceKeyPackage,
		Lifetime:       &wire.Lifetime{NotBefore: 0, NotAfter: 1<<63 - 1},
		Signature:      randomBytes(64),
	}
}

// recomputedRootHash hashes a copy of t from scratch, ignoring its cache.
func recomputedRootHash(t testing.TB, tr *Tree) []byte {
	t.Helper()
	c := tr.Clone()
	clear(c.hashes)
	h, err := c.RootHash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func timeNow() time.Time { return time.Now() }
