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
