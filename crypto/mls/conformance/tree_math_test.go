package conformance

import (
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
)

func init() { register("tree-math", runTreeMath) }

// treeMathCase is one case of tree-math.json (test-vectors.md, "Tree Math");
// null entries mean the relation does not exist.
type treeMathCase struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

// runTreeMath checks the array-based tree relations (RFC 9420 Appendix C).
func runTreeMath(t *testing.T, raw json.RawMessage) {
	var c treeMathCase
	decodeCase(t, raw, &c)
	if got := tree.NodeWidth(c.NLeaves); got != c.NNodes {
		t.Errorf("NodeWidth(%d) = %d, want %d", c.NLeaves, got, c.NNodes)
	}
	if got := tree.RootOf(c.NLeaves); got != c.Root {
		t.Errorf("RootOf(%d) = %d, want %d", c.NLeaves, got, c.Root)
	}
	check := func(name string, want []*uint32, f func(x uint32) (uint32, bool)) {
		if len(want) != int(c.NNodes) {
			t.Errorf("%s: %d entries for %d nodes", name, len(want), c.NNodes)
			return
		}
		for i, w := range want {
			got, ok := f(uint32(i))
			switch {
			case w == nil && ok:
				t.Errorf("%s(%d) = %d, want none", name, i, got)
			case w != nil && (!ok || got != *w):
				t.Errorf("%s(%d) = %d, %v; want %d", name, i, got, ok, *w)
			}
		}
	}
	check("left", c.Left, tree.LeftChild)
	check("right", c.Right, tree.RightChild)
	check("parent", c.Parent, func(x uint32) (uint32, bool) { return tree.ParentOf(x, c.NLeaves) })
	check("sibling", c.Sibling, func(x uint32) (uint32, bool) { return tree.SiblingOf(x, c.NLeaves) })
}
