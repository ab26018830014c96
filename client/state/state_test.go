//go:build !js

package state

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestStateRoundTripAndLocking(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "state.key")
	if err := GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	for _, lock := range []Lock{{Passphrase: "correct horse battery staple"}, {KeyFile: keyFile}} {
		path := filepath.Join(dir, "state-"+lock.Passphrase[:min(3, len(lock.Passphrase))]+".db")
		s, err := Open(ctx, path, lock)
		if err != nil {
			t.Fatal(err)
		}
		secret := []byte("group state of !icu-freiburg: patient Erika Mustermann")
		if err := s.Put(ctx, "group:!icu-freiburg", secret); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, func(tx *Tx) error {
			return tx.PutMessage("!icu-freiburg", 7, []byte("lactate 4.1 mmol/L, bed 12"))
		}); err != nil {
			t.Fatal(err)
		}
		s.Close()

		// The file holds neither values nor names in the clear.
		raw := readAll(t, path)
		for _, plain := range []string{"Erika", "icu-freiburg", "lactate", "group:"} {
			if bytes.Contains(raw, []byte(plain)) {
				t.Errorf("state file contains %q in the clear", plain)
			}
		}
		// The wrong secret does not open it.
		wrong := Lock{Passphrase: "wrong"}
		if lock.Passphrase == "" {
			other := filepath.Join(dir, "other.key")
			os.Remove(other)
			GenerateKeyFile(other)
			wrong = Lock{KeyFile: other}
		}
		if _, err := Open(ctx, path, wrong); !errors.Is(err, ErrLocked) {
			t.Fatalf("wrong lock: %v, want ErrLocked", err)
		}
		s, err = Open(ctx, path, lock)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "group:!icu-freiburg")
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("Get after reopen: %q, %v", got, err)
		}
		msgs, err := s.Messages(ctx, "!icu-freiburg", 1, 10)
		if err != nil || len(msgs) != 1 || msgs[0].Seq != 7 || string(msgs[0].Value) != "lactate 4.1 mmol/L, bed 12" {
			t.Fatalf("Messages: %+v, %v", msgs, err)
		}
		if _, err := s.Get(ctx, "absent"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("absent: %v", err)
		}
		s.Close()
	}
}

func TestStateDetectsTampering(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(ctx, path, Lock{Passphrase: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Put(ctx, "a", []byte("value a"))
	s.Put(ctx, "b", []byte("value b"))
	// Swapping two sealed values (same key, other name) is detected.
	if _, err := s.b.(sqliteBackend).db.Exec(`UPDATE kv SET v = (SELECT v FROM kv WHERE k = ?) WHERE k = ?`, s.name("b"), s.name("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped value: %v, want ErrCorrupt", err)
	}
	if err := s.Update(ctx, func(tx *Tx) error { return tx.PutMessage("r", 1, []byte("m1")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.b.(sqliteBackend).db.Exec(`UPDATE messages SET seq = 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Message(ctx, "r", 2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("moved message: %v, want ErrCorrupt", err)
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err == nil {
			all = append(all, b...)
		}
	}
	return all
}
