package secrettree

import (
	"bytes"
	"testing"
)

// BenchmarkNext measures one sender key/nonce derivation (three
// DeriveTreeSecret calls), the per-message cost of an application message.
func BenchmarkNext(b *testing.B) {
	tr := New(suite1(b), bytes.Repeat([]byte{1}, 32), 1000)
	if _, err := tr.Next(7, Application); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Next(7, Application); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstKeyOfLeaf measures a receiver's first key from a new sender
// in a 10,000-member tree: a fresh tree, the walk down 14 levels, both
// ratchet secrets and generation 0.
func BenchmarkFirstKeyOfLeaf(b *testing.B) {
	s := suite1(b)
	secret := bytes.Repeat([]byte{1}, 32)
	b.ReportAllocs()
	for b.Loop() {
		tr := New(s, secret, 10000)
		if _, err := tr.Get(9999, Application, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetOutOfOrder measures receiving in swapped pairs (every other
// message late), so half the keys go through the skipped-key window.
func BenchmarkGetOutOfOrder(b *testing.B) {
	tr := New(suite1(b), bytes.Repeat([]byte{1}, 32), 1000)
	g := uint32(0)
	b.ReportAllocs()
	for b.Loop() {
		if g >= 1<<31 {
			b.Fatal("generation space exhausted")
		}
		if _, err := tr.Get(3, Application, g+1); err != nil {
			b.Fatal(err)
		}
		if _, err := tr.Get(3, Application, g); err != nil {
			b.Fatal(err)
		}
		g += 2
	}
}
