package state

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestMemoryBackend checks the in-memory backend against the same contract
// as the SQLite file: sealed at rest, names hidden, atomic updates, ordered
// message ranges, tampering detected, and the lock enforced.
func TestMemoryBackend(t *testing.T) {
	ctx := context.Background()
	b := NewMemoryBackend()
	s, err := OpenBackend(ctx, b, Lock{Passphrase: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("group state of !icu-freiburg: patient Erika Mustermann")
	if err := s.Put(ctx, "group:!icu-freiburg", secret); err != nil {
		t.Fatal(err)
	}
	for seq := int64(9); seq >= 1; seq -= 2 {
		if err := s.Update(ctx, func(tx *Tx) error {
			return tx.PutMessage("!icu-freiburg", seq, fmt.Appendf(nil, "lactate %d mmol/L, bed 12", seq))
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, plain := range []string{"Erika", "icu-freiburg", "lactate", "group:"} {
		if bytes.Contains(b.Dump(), []byte(plain)) {
			t.Errorf("memory backend holds %q in the clear", plain)
		}
	}

	// A failing update stores nothing.
	boom := errors.New("boom")
	if err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.Put("cursor", []byte("42")); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update: %v, want boom", err)
	}
	if _, err := s.Get(ctx, "cursor"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cursor after failed update: %v, want ErrNotFound", err)
	}

	msgs, err := s.Messages(ctx, "!icu-freiburg", 4, 2)
	if err != nil || len(msgs) != 2 || msgs[0].Seq != 5 || msgs[1].Seq != 7 || string(msgs[0].Value) != "lactate 5 mmol/L, bed 12" {
		t.Fatalf("Messages(from 4, limit 2): %+v, %v", msgs, err)
	}
	if got, err := s.Message(ctx, "!icu-freiburg", 9); err != nil || string(got) != "lactate 9 mmol/L, bed 12" {
		t.Fatalf("Message 9: %q, %v", got, err)
	}
	if _, err := s.Message(ctx, "!icu-freiburg", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Message 2: %v, want ErrNotFound", err)
	}

	// Swapping sealed values between names is detected.
	s.Put(ctx, "a", []byte("value a"))
	s.Put(ctx, "b", []byte("value b"))
	b.kv[string(s.name("a"))] = b.kv[string(s.name("b"))]
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped value: %v, want ErrCorrupt", err)
	}
	if err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted: %v, want ErrNotFound", err)
	}
	s.Close()
	if _, err := s.Get(ctx, "group:!icu-freiburg"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}

	// The same bytes reopen only with the right passphrase.
	b.closed = false
	if _, err := OpenBackend(ctx, b, Lock{Passphrase: "wrong"}); !errors.Is(err, ErrLocked) {
		t.Fatalf("wrong lock: %v, want ErrLocked", err)
	}
	b.closed = false
	s, err = OpenBackend(ctx, b, Lock{Passphrase: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "group:!icu-freiburg"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Get after reopen: %q, %v", got, err)
	}
}
