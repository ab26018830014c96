package state

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// Backend keeps a Store's sealed bytes. Keys and values reach it already
// sealed (values) or keyed by HMAC (names), so a Backend never sees
// plaintext. Methods that find nothing return an error wrapping ErrNotFound.
type Backend interface {
	// Meta returns the unencrypted metadata value name (the wrapped state key).
	Meta(ctx context.Context, name string) ([]byte, error)
	// PutMeta stores a metadata value.
	PutMeta(ctx context.Context, name string, value []byte) error
	// Get returns the sealed value under key k.
	Get(ctx context.Context, k []byte) ([]byte, error)
	// Delete removes the value under key k, if any.
	Delete(ctx context.Context, k []byte) error
	// Update applies every write fn makes to its BackendTx atomically, or
	// none of them if fn fails.
	Update(ctx context.Context, fn func(BackendTx) error) error
	// Message returns the sealed message of room (an HMAC) at seq.
	Message(ctx context.Context, room []byte, seq int64) ([]byte, error)
	// Messages returns up to limit sealed messages of room with seq ≥ from,
	// in order of seq.
	Messages(ctx context.Context, room []byte, from int64, limit int) ([]StoredMessage, error)
	// Close releases the backend.
	Close() error
}

// BackendTx collects the writes of one Backend.Update.
type BackendTx interface {
	// Put stores the sealed value v under key k.
	Put(k, v []byte) error
	// PutMessage stores the sealed message v of room at seq.
	PutMessage(room []byte, seq int64, v []byte) error
}

// Store is an open, unlocked state. It is safe for concurrent use.
type Store struct {
	b      Backend
	enc    cipherAEAD
	macKey []byte
}

type cipherAEAD interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	NonceSize() int
}

// OpenBackend unlocks the state kept by b, creating a new state key wrapped
// to lock if b holds none. It fails with ErrLocked if lock does not unwrap
// the stored key. The Store owns b: Store.Close closes it, and so does a
// failed OpenBackend.
func OpenBackend(ctx context.Context, b Backend, lock Lock) (*Store, error) {
	s, err := openBackend(ctx, b, lock)
	if err != nil {
		b.Close()
		return nil, err
	}
	return s, nil
}

func openBackend(ctx context.Context, b Backend, lock Lock) (*Store, error) {
	key, err := stateKey(ctx, b, lock)
	if err != nil {
		return nil, err
	}
	s := &Store{b: b}
	encKey, err := hkdf.Key(sha256.New, key, nil, "medicus state encryption", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	if s.macKey, err = hkdf.Key(sha256.New, key, nil, "medicus state names", 32); err != nil {
		return nil, err
	}
	if s.enc, err = chacha20poly1305.NewX(encKey); err != nil {
		return nil, err
	}
	return s, nil
}

// NewMemory returns a new, empty state kept in memory, sealed exactly as
// on disk. It is lost when the process ends.
func NewMemory(ctx context.Context, lock Lock) (*Store, error) {
	return OpenBackend(ctx, NewMemoryBackend(), lock)
}

// stateKey unwraps the stored state key, or makes and stores one.
func stateKey(ctx context.Context, b Backend, lock Lock) ([]byte, error) {
	wrapped, err := b.Meta(ctx, "state_key")
	if errors.Is(err, ErrNotFound) {
		key := make([]byte, 32)
		rand.Read(key)
		r, err := lock.recipient()
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		w, err := age.Encrypt(&buf, r)
		if err != nil {
			return nil, fmt.Errorf("wrap state key: %w", err)
		}
		w.Write(key)
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("wrap state key: %w", err)
		}
		if err := b.PutMeta(ctx, "state_key", buf.Bytes()); err != nil {
			return nil, fmt.Errorf("store state key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state key: %w", err)
	}
	id, err := lock.identity()
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(bytes.NewReader(wrapped), id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLocked, err)
	}
	key, err := io.ReadAll(io.LimitReader(r, 64))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%w: state key unreadable", ErrLocked)
	}
	return key, nil
}

// Close closes the backend.
func (s *Store) Close() error { return s.b.Close() }

func (s *Store) name(n string) []byte {
	m := hmac.New(sha256.New, s.macKey)
	m.Write([]byte(n))
	return m.Sum(nil)
}

func (s *Store) seal(value, ad []byte) []byte {
	nonce := make([]byte, s.enc.NonceSize(), s.enc.NonceSize()+len(value)+16)
	rand.Read(nonce)
	return s.enc.Seal(nonce, nonce, value, ad)
}

func (s *Store) open(sealed, ad []byte) ([]byte, error) {
	n := s.enc.NonceSize()
	if len(sealed) < n {
		return nil, ErrCorrupt
	}
	v, err := s.enc.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return v, nil
}

// Put stores value under name, replacing any previous value.
func (s *Store) Put(ctx context.Context, name string, value []byte) error {
	return s.Update(ctx, func(tx *Tx) error { return tx.Put(name, value) })
}

// Get returns the value stored under name, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	k := s.name(name)
	sealed, err := s.b.Get(ctx, k)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	v, err := s.open(sealed, k)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return v, nil
}

// Delete removes the value under name, if any.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.b.Delete(ctx, s.name(name)); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// Update runs fn in one transaction: the values it puts are stored together
// or not at all (e.g. a group state and the cursor of the message that
// produced it).
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	return s.b.Update(ctx, func(btx BackendTx) error { return fn(&Tx{s: s, tx: btx}) })
}

// Tx is a state update in progress.
type Tx struct {
	s  *Store
	tx BackendTx
}

// Put stores value under name in the transaction.
func (t *Tx) Put(name string, value []byte) error {
	k := t.s.name(name)
	if err := t.tx.Put(k, t.s.seal(value, k)); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	return nil
}

// PutMessage stores a decrypted message of a room at its sequence number.
func (t *Tx) PutMessage(room string, seq int64, value []byte) error {
	r := t.s.name("room:" + room)
	if err := t.tx.PutMessage(r, seq, t.s.seal(value, messageAD(r, seq))); err != nil {
		return fmt.Errorf("store message %d of %s: %w", seq, room, err)
	}
	return nil
}

func messageAD(room []byte, seq int64) []byte {
	return fmt.Appendf(bytes.Clone(room), "/%d", seq)
}

// Message returns the stored message of a room at seq, or ErrNotFound.
func (s *Store) Message(ctx context.Context, room string, seq int64) ([]byte, error) {
	r := s.name("room:" + room)
	sealed, err := s.b.Message(ctx, r, seq)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("message %d of %s: %w", seq, room, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read message %d of %s: %w", seq, room, err)
	}
	return s.open(sealed, messageAD(r, seq))
}

// StoredMessage is one entry of the message cache.
type StoredMessage struct {
	Seq   int64
	Value []byte
}

// Messages returns up to limit stored messages of a room with seq ≥ from,
// in order.
func (s *Store) Messages(ctx context.Context, room string, from int64, limit int) ([]StoredMessage, error) {
	r := s.name("room:" + room)
	sealed, err := s.b.Messages(ctx, r, from, limit)
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", room, err)
	}
	for i := range sealed {
		if sealed[i].Value, err = s.open(sealed[i].Value, messageAD(r, sealed[i].Seq)); err != nil {
			return nil, fmt.Errorf("message %d of %s: %w", sealed[i].Seq, room, err)
		}
	}
	return sealed, nil
}
