package wire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/bits"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// TestTreeHashInputsMatchVectors recomputes every node's tree hash of the
// tree-validation vectors from LeafNodeHashInput and ParentNodeHashInput
// (RFC 9420 §7.8), which checks both encodings byte for byte.
func TestTreeHashInputsMatchVectors(t *testing.T) {
	dir := os.Getenv("MLS_TEST_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "..", "..", "shared", "mls-test-vectors")
	}
	path := filepath.Join(dir, "tree-validation.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("tree-validation vectors not found at %s (set MLS_TEST_VECTORS): %v", path, err)
	}
	var cases []struct {
		CipherSuite uint16   `json:"cipher_suite"`
		Tree        string   `json:"tree"`
		TreeHashes  []string `json:"tree_hashes"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		suite, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		raw, _ := hex.DecodeString(c.Tree)
		var rt RatchetTree
		if err := codec.Unmarshal(raw, &rt); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		n := len(c.TreeHashes)
		for len(rt) < n {
			rt = append(rt, nil)
		}
		var hash func(x int) []byte
		hash = func(x int) []byte {
			level := bits.TrailingZeros(^uint(x))
			var in []byte
			var err error
			if level == 0 {
				var leaf *LeafNode
				if rt[x] != nil {
					leaf = rt[x].LeafNode
				}
				in, err = LeafNodeHashInput(uint32(x/2), leaf)
			} else {
				var parent *ParentNode
				if rt[x] != nil {
					parent = rt[x].ParentNode
				}
				half := 1 << (level - 1)
				in, err = ParentNodeHashInput(parent, hash(x-half), hash(x+half))
			}
			if err != nil {
				t.Fatal(err)
			}
			return suite.Hash(in)
		}
		for x, want := range c.TreeHashes {
			w, _ := hex.DecodeString(want)
			if got := hash(x); !bytes.Equal(got, w) {
				t.Errorf("case %d node %d: tree hash %x, want %x", i, x, got, w)
			}
		}
	}
}
