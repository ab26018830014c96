package tree

import (
	"fmt"
	"sync"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// populatedGroup builds a group of n members in which every parent node is
// non-blank and the tree is valid: members are added, then every other leaf
// refreshes its path (without encrypting, which a populated tree does not
// need), and finally the last member commits for real so it holds its path
// keys. Groups are cached across benchmarks.
var populated sync.Map // int → *group

func populatedGroup(b testing.TB, n int) *group {
	if g, ok := populated.Load(n); ok {
		return g.(*group)
	}
	s := testSuite(b, suite1)
	g := newGroup(b, s, n)
	for l := uint32(0); l < uint32(n); l += 2 {
		populatePath(b, g, l)
	}
	g.commitQuiet(b, uint32(n-1))
	populated.Store(n, g)
	return g
}

// populatePath gives leaf l a fresh path with derived keys and valid parent
// hashes, as a commit would, but sends no ciphertexts.
func populatePath(b testing.TB, g *group, l uint32) {
	b.Helper()
	t := g.tree
	fdp, copath := t.filteredDirectPath(l)
	pubs := make([][]byte, len(fdp))
	ps := randomBytes(g.suite.Nh())
	for m := range fdp {
		var err error
		if _, pubs[m], err = nodeKeyPair(g.suite, ps); err != nil {
			b.Fatal(err)
		}
		ps, _ = g.suite.DeriveSecret(ps, "path")
	}
	ph, err := t.applyPath(l, fdp, copath, pubs)
	if err != nil {
		b.Fatal(err)
	}
	ln := *t.Leaf(l)
	ln.LeafNodeSource = wire.LeafNodeSourceCommit
	ln.Lifetime = nil
	ln.ParentHash = ph
	signLeaf(b, g.members[l].signer, &ln, g.id, l)
	t.setLeaf(l, &ln)
}

// commitQuiet has leaf c commit and keeps only the committer's keys.
func (g *group) commitQuiet(b testing.TB, c uint32) *PathResult {
	b.Helper()
	res, err := g.tree.CreateUpdatePath(PathParams{Leaf: c, LeafNode: g.tree.Leaf(c), Signer: g.members[c].signer,
		GroupID: g.id, GroupContext: g.groupContext})
	if err != nil {
		b.Fatal(err)
	}
	g.keys[c] = res.Keys
	return res
}

var benchSizes = []int{1000, 10000}

// BenchmarkTreeHashUpdate measures replacing one leaf (an Update) and
// recomputing the root tree hash: O(log n) hashes thanks to the cache.
func BenchmarkTreeHashUpdate(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			g := populatedGroup(b, n)
			tr := g.tree.Clone()
			s := g.suite
			leaves := make([]*wire.LeafNode, 64)
			for i := range leaves {
				leaves[i] = fakeLeaf(s)
				leaves[i].LeafNodeSource = wire.LeafNodeSourceUpdate
				leaves[i].Lifetime = nil
			}
			i := 0
			for b.Loop() {
				if err := tr.UpdateLeaf(uint32(i%n), leaves[i%len(leaves)]); err != nil {
					b.Fatal(err)
				}
				if _, err := tr.RootHash(); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkCreateUpdatePath measures a committer cloning the tree and
// creating an UpdatePath in a populated tree (RFC 9420 §7.4–§7.6).
func BenchmarkCreateUpdatePath(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			g := populatedGroup(b, n)
			p := PathParams{Leaf: 0, LeafNode: g.tree.Leaf(0), Signer: g.members[0].signer,
				GroupID: g.id, GroupContext: g.groupContext}
			for b.Loop() {
				if _, err := g.tree.Clone().CreateUpdatePath(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProcessUpdatePath measures a receiver cloning the tree,
// validating the committer's leaf, merging the path, hashing the tree and
// decrypting its path secret (RFC 9420 §7.5).
func BenchmarkProcessUpdatePath(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			g := populatedGroup(b, n)
			res, err := g.tree.Clone().CreateUpdatePath(PathParams{Leaf: 0, LeafNode: g.tree.Leaf(0),
				Signer: g.members[0].signer, GroupID: g.id, GroupContext: g.groupContext})
			if err != nil {
				b.Fatal(err)
			}
			me := g.keys[uint32(n-1)]
			check := LeafCheck{Source: wire.LeafNodeSourceCommit, GroupID: g.id, LeafIndex: 0}
			for b.Loop() {
				tr := g.tree.Clone()
				if err := tr.ValidateLeafNode(&res.Path.LeafNode, check, nil); err != nil {
					b.Fatal(err)
				}
				if err := tr.MergeUpdatePath(0, res.Path); err != nil {
					b.Fatal(err)
				}
				th, err := tr.RootHash()
				if err != nil {
					b.Fatal(err)
				}
				gc, _ := g.groupContext(th)
				if _, err := me.DecryptUpdatePath(tr, 0, res.Path, nil, gc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkJoinValidate measures what a joiner does with the ratchet_tree
// extension: decode, tree hash and full validation (RFC 9420 §12.4.3.1).
func BenchmarkJoinValidate(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			g := populatedGroup(b, n)
			enc, err := g.tree.Encode()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(enc)))
			for b.Loop() {
				tr, err := Decode(g.suite, enc)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tr.RootHash(); err != nil {
					b.Fatal(err)
				}
				if err := tr.Validate(g.id, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCreateUpdatePathBareTree measures creating an UpdatePath in a
// tree fresh from Adds (no parent nodes): one HPKE encryption per member.
func BenchmarkCreateUpdatePathBareTree(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			g := newGroup(b, testSuite(b, suite1), n)
			p := PathParams{Leaf: 0, LeafNode: g.tree.Leaf(0), Signer: g.members[0].signer,
				GroupID: g.id, GroupContext: g.groupContext}
			for b.Loop() {
				if _, err := g.tree.Clone().CreateUpdatePath(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
