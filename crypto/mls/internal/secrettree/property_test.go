package secrettree

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// TestRandomArrivalOrder delivers a sender's messages in random order with
// duplicates and forged generations mixed in: every genuine generation
// inside the window yields the sender's key exactly once, duplicates are
// refused, and discarded forgeries change nothing.
func TestRandomArrivalOrder(t *testing.T) {
	const n = 200 // < MaxSkipped, so any order stays inside the window
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		snd, rcv := newPair(t)
		leaf := uint32(rng.IntN(8))
		kind := ContentKind(rng.IntN(2))
		sent := make([]KeyNonce, n)
		for i := range sent {
			kn, err := snd.Next(leaf, kind)
			if err != nil {
				t.Fatal(err)
			}
			sent[i] = kn
		}
		got := make([]bool, n)
		for _, g := range rng.Perm(n) {
			if rng.IntN(4) == 0 { // a forged message for a random generation, discarded
				if p, err := rcv.Peek(leaf, kind, uint32(rng.IntN(MaxForwardDistance))); err == nil {
					p.Discard()
				}
			}
			p, err := rcv.Peek(leaf, kind, uint32(g))
			if err != nil {
				t.Fatalf("seed %d: generation %d: %v", seed, g, err)
			}
			if !bytes.Equal(p.Key, sent[g].Key) || !bytes.Equal(p.Nonce, sent[g].Nonce) {
				t.Fatalf("seed %d: generation %d: key differs from the sender's", seed, g)
			}
			if err := p.Consume(); err != nil {
				t.Fatalf("seed %d: consume %d: %v", seed, g, err)
			}
			got[g] = true
			if d := rng.IntN(n); got[d] { // a replay of something already received
				if _, err := rcv.Get(leaf, kind, uint32(d)); !errors.Is(err, ErrGenerationConsumed) {
					t.Fatalf("seed %d: replay of %d: %v, want ErrGenerationConsumed", seed, d, err)
				}
			}
		}
		if r := rcv.ratchets[leaf][kind]; len(r.skipped) != 0 || r.generation != n {
			t.Errorf("seed %d: ratchet at %d with %d skipped keys, want %d and 0", seed, r.generation, len(r.skipped), n)
		}
	}
}
