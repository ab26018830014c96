package secrettree

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
)

func newPair(t *testing.T) (sender, receiver *Tree) {
	t.Helper()
	s, err := ciphersuite.Lookup(1)
	if err != nil {
		t.Fatal(err)
	}
	secret := bytes.Repeat([]byte{9}, 32)
	return New(s, secret, 5), New(s, secret, 5)
}

func TestSenderAndReceiverAgreeOutOfOrder(t *testing.T) {
	snd, rcv := newPair(t)
	var sent []KeyNonce
	for i := 0; i < 5; i++ {
		kn, err := snd.Next(3, Application)
		if err != nil {
			t.Fatal(err)
		}
		if kn.Generation != uint32(i) {
			t.Fatalf("generation %d, want %d", kn.Generation, i)
		}
		sent = append(sent, kn)
	}
	for _, i := range []int{4, 0, 2, 1, 3} {
		kn, err := rcv.Get(3, Application, sent[i].Generation)
		if err != nil {
			t.Fatalf("generation %d: %v", i, err)
		}
		if !bytes.Equal(kn.Key, sent[i].Key) || !bytes.Equal(kn.Nonce, sent[i].Nonce) {
			t.Fatalf("generation %d: keys differ", i)
		}
	}
	// Each generation can be used once (forward secrecy, replay protection).
	if _, err := rcv.Get(3, Application, 2); !errors.Is(err, ErrGenerationConsumed) {
		t.Errorf("second Get of generation 2: %v, want ErrGenerationConsumed", err)
	}
	// Handshake and application ratchets are independent.
	h, _ := snd.Next(3, Handshake)
	if bytes.Equal(h.Key, sent[0].Key) {
		t.Error("handshake key equals application key")
	}
}

func TestBoundsAndErrors(t *testing.T) {
	_, rcv := newPair(t)
	if _, err := rcv.Get(8, Application, 0); !errors.Is(err, ErrLeafIndex) {
		t.Errorf("leaf 8 of 8: %v, want ErrLeafIndex", err)
	}
	if _, err := rcv.Get(1, Application, MaxForwardDistance+1); !errors.Is(err, ErrGenerationTooFar) {
		t.Errorf("far generation: %v, want ErrGenerationTooFar", err)
	}
	if _, err := rcv.Get(1, Application, MaxSkipped+10); err != nil {
		t.Fatal(err)
	}
	// The oldest skipped keys beyond MaxSkipped were deleted.
	if _, err := rcv.Get(1, Application, 0); !errors.Is(err, ErrGenerationConsumed) {
		t.Errorf("generation 0 after skipping %d: %v, want ErrGenerationConsumed", MaxSkipped+10, err)
	}
	if _, err := rcv.Get(1, Application, MaxSkipped+9); err != nil {
		t.Errorf("recent skipped generation: %v", err)
	}
	// Deriving one leaf consumes the node secrets above it, but siblings
	// stay derivable.
	for l := uint32(0); l < 8; l++ {
		if _, err := rcv.Get(l, Handshake, 0); err != nil {
			t.Fatalf("leaf %d: %v", l, err)
		}
	}
	if len(rcv.nodes) != 0 {
		t.Errorf("%d node secrets left after deriving every leaf, want 0", len(rcv.nodes))
	}
}

func suite1(t testing.TB) *ciphersuite.Suite {
	t.Helper()
	s, err := ciphersuite.Lookup(ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConfiguredWindow(t *testing.T) {
	s := suite1(t)
	secret := bytes.Repeat([]byte{7}, 32)
	cfg := Config{MaxForwardDistance: 10, MaxSkipped: 4}
	snd, rcv := New(s, secret, 2), NewWithConfig(s, secret, 2, cfg)
	var sent []KeyNonce
	for i := 0; i < 30; i++ {
		kn, err := snd.Next(1, Handshake)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, kn)
	}
	if _, err := rcv.Get(1, Handshake, 11); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("jump of 11 with MaxForwardDistance 10: %v, want ErrGenerationTooFar", err)
	}
	kn, err := rcv.Get(1, Handshake, 10)
	if err != nil || !bytes.Equal(kn.Key, sent[10].Key) {
		t.Fatalf("jump of 10: %v", err)
	}
	// Ratchet now at 11: the window keeps generations 7..9 (at most 4
	// behind the next generation); 0..6 are gone.
	for g := uint32(0); g < 7; g++ {
		if _, err := rcv.Get(1, Handshake, g); !errors.Is(err, ErrGenerationConsumed) {
			t.Errorf("generation %d outside the window: %v, want ErrGenerationConsumed", g, err)
		}
	}
	for g := uint32(7); g < 10; g++ {
		kn, err := rcv.Get(1, Handshake, g)
		if err != nil || !bytes.Equal(kn.Key, sent[g].Key) || !bytes.Equal(kn.Nonce, sent[g].Nonce) {
			t.Errorf("generation %d inside the window: %v", g, err)
		}
	}
	// Skipped keys leave the window as the ratchet moves on.
	if _, err := rcv.Get(1, Handshake, 13); err != nil {
		t.Fatal(err)
	}
	if got := len(rcv.ratchets[1][Handshake].skipped); got > int(cfg.MaxSkipped) {
		t.Errorf("%d skipped keys kept, want at most %d", got, cfg.MaxSkipped)
	}
	if _, err := rcv.Get(1, Handshake, 20); err != nil {
		t.Fatal(err)
	}
	for g := uint32(11); g < 17; g++ {
		if _, err := rcv.Get(1, Handshake, g); !errors.Is(err, ErrGenerationConsumed) {
			t.Errorf("generation %d after moving to 20: %v, want ErrGenerationConsumed", g, err)
		}
	}
	if kn, err := rcv.Get(1, Handshake, 17); err != nil || !bytes.Equal(kn.Key, sent[17].Key) {
		t.Errorf("generation 17 inside the window: %v", err)
	}
}

func TestSkippedKeysStayBoundedUnderReordering(t *testing.T) {
	_, rcv := newPair(t)
	// Messages always arrive in swapped pairs: every odd generation skips
	// one key that is fetched right after. Bookkeeping must not grow.
	for g := uint32(0); g < 5000; g += 2 {
		if _, err := rcv.Get(2, Application, g+1); err != nil {
			t.Fatal(err)
		}
		if _, err := rcv.Get(2, Application, g); err != nil {
			t.Fatal(err)
		}
	}
	r := rcv.ratchets[2][Application]
	if len(r.skipped) != 0 {
		t.Errorf("%d skipped keys left, want 0", len(r.skipped))
	}
}

func TestReuseRefused(t *testing.T) {
	snd, rcv := newPair(t)
	kn, err := snd.Next(0, Application)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rcv.Get(0, Application, 0)
	if err != nil || !bytes.Equal(got.Key, kn.Key) {
		t.Fatalf("first Get: %v", err)
	}
	if _, err := rcv.Get(0, Application, 0); !errors.Is(err, ErrGenerationConsumed) {
		t.Errorf("second Get of the ratchet's last generation: %v, want ErrGenerationConsumed", err)
	}
	// The sender never hands out the same generation twice.
	kn2, err := snd.Next(0, Application)
	if err != nil || kn2.Generation != 1 || bytes.Equal(kn2.Key, kn.Key) {
		t.Errorf("second Next = generation %d, %v; want a fresh generation 1", kn2.Generation, err)
	}
	if _, err := rcv.Get(0, ContentKind(7), 0); err == nil {
		t.Error("unknown content kind accepted")
	}
}

func TestLazyDerivationAndErasureInLargeTree(t *testing.T) {
	s := suite1(t)
	secret := bytes.Repeat([]byte{3}, 32)
	const members = 10000 // rounded up to 16384 leaves, depth 14
	tr := New(s, secret, members)
	root := tr.nLeaves - 1
	if _, err := tr.Get(9999, Application, 0); err != nil {
		t.Fatal(err)
	}
	// Only the copath of leaf 9999 is stored: one secret per level.
	if got := len(tr.nodes); got != 14 {
		t.Errorf("%d node secrets stored after one leaf, want 14 (its copath)", got)
	}
	if _, ok := tr.nodes[root]; ok {
		t.Error("root secret kept after deriving its children")
	}
	if _, ok := tr.nodes[2*9999]; ok {
		t.Error("leaf secret kept after deriving its ratchets")
	}
	// A second tree from the same secret agrees on another leaf derived in
	// a different order (same keys whatever the access pattern).
	tr2 := New(s, secret, members)
	a, err := tr2.Get(0, Handshake, 3)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.Get(0, Handshake, 3)
	if err != nil || !bytes.Equal(a.Key, b.Key) {
		t.Fatalf("leaf 0 keys differ between access orders: %v", err)
	}
	if len(tr.nodes) > 2*14 {
		t.Errorf("%d node secrets after two leaves, want at most %d", len(tr.nodes), 2*14)
	}
}

func TestErase(t *testing.T) {
	snd, rcv := newPair(t)
	if _, err := rcv.Get(1, Application, 5); err != nil {
		t.Fatal(err)
	}
	r := rcv.ratchets[1][Application]
	secret := r.secret
	skipped := r.skipped[2]
	var nodeSecrets [][]byte
	for _, s := range rcv.nodes {
		nodeSecrets = append(nodeSecrets, s)
	}
	rcv.Erase()
	zero := func(b []byte) bool { return bytes.Count(b, []byte{0}) == len(b) }
	if !zero(secret) || !zero(skipped.Key) || !zero(skipped.Nonce) {
		t.Error("ratchet secret or skipped key not zeroed by Erase")
	}
	for _, s := range nodeSecrets {
		if !zero(s) {
			t.Error("node secret not zeroed by Erase")
		}
	}
	if _, err := rcv.Get(1, Application, 2); !errors.Is(err, ErrErased) {
		t.Errorf("Get after Erase: %v, want ErrErased", err)
	}
	if _, err := rcv.Next(0, Handshake); !errors.Is(err, ErrErased) {
		t.Errorf("Next after Erase: %v, want ErrErased", err)
	}
	// The other tree is unaffected.
	if _, err := snd.Next(1, Application); err != nil {
		t.Error(err)
	}
}

func TestSenderDataSample(t *testing.T) {
	s := suite1(t)
	secret := bytes.Repeat([]byte{1}, 32)
	long := bytes.Repeat([]byte{0xaa}, 100)
	k1, n1, err := SenderDataKeyNonce(s, secret, long)
	if err != nil {
		t.Fatal(err)
	}
	// Only the first Nh bytes of the ciphertext are sampled.
	k2, n2, _ := SenderDataKeyNonce(s, secret, append(long[:s.Nh():s.Nh()], 0xbb))
	if !bytes.Equal(k1, k2) || !bytes.Equal(n1, n2) {
		t.Error("bytes after the sample changed the sender data key")
	}
	k3, _, _ := SenderDataKeyNonce(s, secret, long[:5])
	if bytes.Equal(k1, k3) || len(k1) != s.Nk() || len(n1) != s.Nn() {
		t.Error("short ciphertext sample gave the same key, or wrong key/nonce sizes")
	}
}

func TestPeekDiscardLeavesRatchetUnchanged(t *testing.T) {
	snd, rcv := newPair(t)
	var sent []KeyNonce
	for i := 0; i < 600; i++ {
		kn, err := snd.Next(4, Application)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, kn)
	}
	// Generation 3 arrives first: 0..2 are kept as skipped keys.
	if kn, err := rcv.Get(4, Application, 3); err != nil || !bytes.Equal(kn.Key, sent[3].Key) {
		t.Fatalf("Get 3: %v", err)
	}
	// A forged message claims generation 590 and fails to open: Discard must
	// neither advance the ratchet nor evict 0..2 from the window.
	p, err := rcv.Peek(4, Application, 590)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Key, sent[590].Key) || !bytes.Equal(p.Nonce, sent[590].Nonce) {
		t.Fatal("Peek 590: wrong key")
	}
	p.Discard()
	if zero := make([]byte, len(p.Key)); !bytes.Equal(p.Key, zero) {
		t.Error("Discard did not zero the peeked key")
	}
	if r := rcv.ratchets[4][Application]; r.generation != 4 || len(r.skipped) != 3 {
		t.Fatalf("after Discard: ratchet at %d with %d skipped keys, want 4 and 3", r.generation, len(r.skipped))
	}
	// A skipped key peeked and discarded stays available, even if the
	// caller zeroes what Peek returned.
	p, err = rcv.Peek(4, Application, 1)
	if err != nil || !bytes.Equal(p.Key, sent[1].Key) {
		t.Fatalf("Peek 1: %v", err)
	}
	clear(p.Key)
	p.Discard()
	for _, g := range []uint32{1, 0, 2, 4} {
		p, err := rcv.Peek(4, Application, g)
		if err != nil || !bytes.Equal(p.Key, sent[g].Key) || !bytes.Equal(p.Nonce, sent[g].Nonce) {
			t.Fatalf("Peek %d after discards: %v", g, err)
		}
		if err := p.Consume(); err != nil {
			t.Fatalf("Consume %d: %v", g, err)
		}
		if err := p.Consume(); !errors.Is(err, ErrStale) {
			t.Errorf("second Consume of %d: %v, want ErrStale", g, err)
		}
		if _, err := rcv.Get(4, Application, g); !errors.Is(err, ErrGenerationConsumed) {
			t.Errorf("Get %d after Consume: %v, want ErrGenerationConsumed", g, err)
		}
	}
	// Two pending keys ahead of the ratchet: the second is stale once the
	// first is consumed, and consuming it must not rewind the ratchet.
	p1, err := rcv.Peek(4, Application, 7)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := rcv.Peek(4, Application, 6)
	if err != nil {
		t.Fatal(err)
	}
	if err := p1.Consume(); err != nil {
		t.Fatal(err)
	}
	if err := p2.Consume(); !errors.Is(err, ErrStale) {
		t.Fatalf("stale Consume: %v, want ErrStale", err)
	}
	if kn, err := rcv.Get(4, Application, 6); err != nil || !bytes.Equal(kn.Key, sent[6].Key) {
		t.Errorf("generation 6 after the stale Consume: %v", err)
	}
	if kn, err := rcv.Get(4, Application, 8); err != nil || !bytes.Equal(kn.Key, sent[8].Key) {
		t.Errorf("generation 8: %v", err)
	}
}
