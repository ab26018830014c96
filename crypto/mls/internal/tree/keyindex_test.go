package tree

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// checkIndexes compares the key indexes with a scan of the tree.
func checkIndexes(t *testing.T, tr *Tree, label string) {
	t.Helper()
	want := 0
	for n := uint32(0); n < tr.Width(); n++ {
		k := tr.encryptionKey(n)
		if k == nil {
			continue
		}
		want++
		if got, ok := tr.HasEncryptionKey(k); !ok || got != n {
			t.Fatalf("%s: encryption key of node %d indexed at %d, %v", label, n, got, ok)
		}
		if n%2 == 0 {
			if got, ok := tr.HasSignatureKey(tr.leaves[n/2].SignatureKey); !ok || got != n/2 {
				t.Fatalf("%s: signature key of leaf %d indexed at %d, %v", label, n/2, got, ok)
			}
		}
	}
	count := 0
	for key := range tr.encKeys.base {
		if d, ok := tr.encKeys.delta[key]; !ok || d >= 0 {
			count++
		}
	}
	for key, d := range tr.encKeys.delta {
		if _, inBase := tr.encKeys.base[key]; !inBase && d >= 0 {
			count++
		}
	}
	if count != want {
		t.Fatalf("%s: index holds %d encryption keys, tree has %d", label, count, want)
	}
}

// TestKeyIndexesSurviveClonesAndMutations mutates a tree and its clones
// independently and checks every index against the tree after each step:
// clones share index storage, so a write to one must never show in another.
func TestKeyIndexesSurviveClonesAndMutations(t *testing.T) {
	s := testSuite(t, suite1)
	rng := rand.New(rand.NewPCG(7, 9))
	trees := []*Tree{New(s, fakeLeaf(s))}
	for step := 0; step < 3000; step++ {
		i := rng.IntN(len(trees))
		tr := trees[i]
		switch op := rng.IntN(10); {
		case op < 4:
			if _, err := tr.AddLeaf(fakeLeaf(s)); err != nil {
				t.Fatal(err)
			}
		case op < 6:
			if m := tr.Members(); len(m) > 1 {
				if err := tr.RemoveLeaf(m[rng.IntN(len(m))]); err != nil {
					t.Fatal(err)
				}
			}
		case op < 8:
			m := tr.Members()
			l := m[rng.IntN(len(m))]
			ln := fakeLeaf(s)
			ln.LeafNodeSource = wire.LeafNodeSourceUpdate
			ln.Lifetime = nil
			if rng.IntN(2) == 0 {
				ln.SignatureKey = tr.Leaf(l).SignatureKey // same member, new encryption key
			}
			if err := tr.UpdateLeaf(l, ln); err != nil {
				t.Fatal(err)
			}
			if p := parent(2 * l); p < tr.Width() && rng.IntN(2) == 0 {
				tr.setParent(p, &wire.ParentNode{EncryptionKey: randomBytes(32)})
			}
		default:
			if len(trees) < 8 {
				trees = append(trees, tr.Clone())
			} else {
				trees[rng.IntN(len(trees))] = tr.Clone()
			}
		}
		for j, other := range trees {
			checkIndexes(t, other, fmt.Sprintf("step %d, tree %d", step, j))
		}
	}
}
