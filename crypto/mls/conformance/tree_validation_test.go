package conformance

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
)

func init() { register("tree-validation", runTreeValidation) }

// treeValidationCase is one case of tree-validation.json (test-vectors.md,
// "Tree Validation").
type treeValidationCase struct {
	CipherSuite uint16     `json:"cipher_suite"`
	Tree        hexBytes   `json:"tree"`
	GroupID     hexBytes   `json:"group_id"`
	Resolutions [][]uint32 `json:"resolutions"`
	TreeHashes  []hexBytes `json:"tree_hashes"`
}

// runTreeValidation checks the tree hash and resolution of every node, that
// every parent node is parent-hash valid, and that every leaf is valid with
// its signature checked against group_id — as when joining (RFC 9420 §12.4.3.1).
func runTreeValidation(t *testing.T, raw json.RawMessage) {
	var c treeValidationCase
	decodeCase(t, raw, &c)
	suite, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	tr, err := tree.Decode(suite, c.Tree)
	if err != nil {
		t.Fatalf("decode tree: %v", err)
	}
	if len(c.TreeHashes) != int(tr.Width()) || len(c.Resolutions) != int(tr.Width()) {
		t.Fatalf("tree has %d nodes; vector lists %d tree hashes and %d resolutions", tr.Width(), len(c.TreeHashes), len(c.Resolutions))
	}
	for i := range c.TreeHashes {
		n := uint32(i)
		h, err := tr.NodeHash(n)
		if err != nil {
			t.Fatalf("tree hash of node %d: %v", n, err)
		}
		if !bytes.Equal(h, c.TreeHashes[i]) {
			t.Errorf("tree hash of node %d = %x, want %x", n, h, []byte(c.TreeHashes[i]))
		}
		if got := tr.Resolution(n); !slices.Equal(got, c.Resolutions[i]) && !(len(got) == 0 && len(c.Resolutions[i]) == 0) {
			t.Errorf("resolution of node %d = %v, want %v", n, got, c.Resolutions[i])
		}
	}
	if err := tr.VerifyParentHashes(); err != nil {
		t.Errorf("parent hashes: %v", err)
	}
	if err := tr.Validate(c.GroupID, nil); err != nil {
		t.Errorf("validate tree: %v", err)
	}
}
