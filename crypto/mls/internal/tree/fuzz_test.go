package tree

import (
	"bytes"
	"testing"
)

// FuzzDecodeValidate feeds arbitrary bytes to the ratchet tree decoder and,
// when they decode, to hashing, resolution and full validation: none may
// panic, and a decoded tree must re-encode to the same bytes.
func FuzzDecodeValidate(f *testing.F) {
	s := testSuite(f, suite1)
	for _, n := range []int{1, 2, 3, 5} {
		g := newGroup(f, s, n)
		if n > 1 {
			g.commit(f, 0)
		}
		if n > 3 {
			if _, err := g.tree.AddLeaf(newMember(f, s, "late").leaf); err != nil {
				f.Fatal(err)
			}
		}
		enc, err := g.tree.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add([]byte{})
	f.Add([]byte{0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := Decode(s, data)
		if err != nil {
			return
		}
		enc, err := tr.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", enc, data)
		}
		if _, err := tr.RootHash(); err != nil {
			t.Fatalf("tree hash: %v", err)
		}
		for n := uint32(0); n < tr.Width() && n < 256; n++ {
			tr.Resolution(n)
		}
		_ = tr.VerifyParentHashes()
		_ = tr.Validate([]byte("group"), nil)
		for _, l := range tr.Members() {
			tr.FilteredDirectPath(l)
		}
	})
}

// TestPopulatedGroupIsValid checks the benchmark fixture: every parent is
// non-blank and the tree passes full validation.
func TestPopulatedGroupIsValid(t *testing.T) {
	g := populatedGroup(t, 100)
	for p := uint32(1); p < g.tree.Width(); p += 2 {
		// A parent is populated when both its subtrees hold members.
		first, _ := leafRange(right(p))
		if first < 100 && g.tree.Parent(p) == nil {
			t.Fatalf("parent %d is blank in the populated tree", p)
		}
	}
	if err := g.tree.Validate(g.id, nil); err != nil {
		t.Fatalf("populated tree invalid: %v", err)
	}
}
