package conformance

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

func init() { register("tree-operations", runTreeOperations) }

// treeOperationsCase is one case of tree-operations.json (test-vectors.md,
// "Tree Operations").
type treeOperationsCase struct {
	CipherSuite    uint16   `json:"cipher_suite"`
	TreeBefore     hexBytes `json:"tree_before"`
	Proposal       hexBytes `json:"proposal"`
	ProposalSender uint32   `json:"proposal_sender"`
	TreeHashBefore hexBytes `json:"tree_hash_before"`
	TreeAfter      hexBytes `json:"tree_after"`
	TreeHashAfter  hexBytes `json:"tree_hash_after"`
}

// runTreeOperations applies an Add, Update or Remove proposal to tree_before
// (RFC 9420 §12.1.1–§12.1.3) and compares the encoded result and tree hashes.
func runTreeOperations(t *testing.T, raw json.RawMessage) {
	var c treeOperationsCase
	decodeCase(t, raw, &c)
	suite, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	tr, err := tree.Decode(suite, c.TreeBefore)
	if err != nil {
		t.Fatalf("decode tree_before: %v", err)
	}
	h, err := tr.RootHash()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h, c.TreeHashBefore) {
		t.Errorf("tree hash before = %x, want %x", h, []byte(c.TreeHashBefore))
	}
	var p wire.Proposal
	if err := codec.Unmarshal(c.Proposal, &p); err != nil {
		t.Fatalf("decode proposal: %v", err)
	}
	switch {
	case p.Add != nil:
		_, err = tr.AddLeaf(&p.Add.KeyPackage.LeafNode)
	case p.Update != nil:
		err = tr.UpdateLeaf(c.ProposalSender, &p.Update.LeafNode)
	case p.Remove != nil:
		err = tr.RemoveLeaf(p.Remove.Removed)
	default:
		t.Fatalf("proposal type %d is not add, update or remove", p.ProposalType)
	}
	if err != nil {
		t.Fatalf("apply proposal: %v", err)
	}
	after, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, c.TreeAfter) {
		t.Errorf("tree after = %x\nwant %x", after, []byte(c.TreeAfter))
	}
	h, err = tr.RootHash()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h, c.TreeHashAfter) {
		t.Errorf("tree hash after = %x, want %x", h, []byte(c.TreeHashAfter))
	}
	// The cached hash must equal a hash of the re-decoded tree.
	fresh, err := tree.Decode(suite, after)
	if err != nil {
		t.Fatalf("decode tree after: %v", err)
	}
	if fh, _ := fresh.RootHash(); !bytes.Equal(fh, h) {
		t.Errorf("cached tree hash %x differs from recomputed %x", h, fh)
	}
}
