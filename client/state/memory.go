package state

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
)

// ErrClosed means the backend was closed.
var ErrClosed = errors.New("state: closed")

// MemoryBackend keeps sealed state in memory, on every platform: for
// tests, and for sessions that must leave nothing behind. Dump shows what
// it holds, to check that it is sealed.
type MemoryBackend struct {
	mu     sync.Mutex
	closed bool
	meta   map[string][]byte
	kv     map[string][]byte
	msgs   map[string]map[int64][]byte
}

// NewMemoryBackend returns an empty MemoryBackend.
func NewMemoryBackend() *MemoryBackend {
	return &MemoryBackend{meta: map[string][]byte{}, kv: map[string][]byte{}, msgs: map[string]map[int64][]byte{}}
}

// Dump returns every stored byte string (metadata, keys, values), as an
// attacker reading the backend would see them.
func (b *MemoryBackend) Dump() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	var buf bytes.Buffer
	for k, v := range b.meta {
		buf.WriteString(k)
		buf.Write(v)
	}
	for k, v := range b.kv {
		buf.WriteString(k)
		buf.Write(v)
	}
	for r, m := range b.msgs {
		buf.WriteString(r)
		for _, v := range m {
			buf.Write(v)
		}
	}
	return buf.Bytes()
}

func (b *MemoryBackend) check() error {
	if b.closed {
		return ErrClosed
	}
	return nil
}

// Close implements Backend.
func (b *MemoryBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// Meta implements Backend.
func (b *MemoryBackend) Meta(_ context.Context, name string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return nil, err
	}
	v, ok := b.meta[name]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

// PutMeta implements Backend.
func (b *MemoryBackend) PutMeta(_ context.Context, name string, value []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return err
	}
	b.meta[name] = bytes.Clone(value)
	return nil
}

// Get implements Backend.
func (b *MemoryBackend) Get(_ context.Context, k []byte) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return nil, err
	}
	v, ok := b.kv[string(k)]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

// Delete implements Backend.
func (b *MemoryBackend) Delete(_ context.Context, k []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return err
	}
	delete(b.kv, string(k))
	return nil
}

// Update implements Backend: fn's writes are buffered and applied together
// only if fn succeeds.
func (b *MemoryBackend) Update(ctx context.Context, fn func(BackendTx) error) error {
	var w writes
	if err := fn(&w); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return err
	}
	for _, p := range w.kv {
		b.kv[string(p.k)] = p.v
	}
	for _, m := range w.msgs {
		room := b.msgs[string(m.room)]
		if room == nil {
			room = map[int64][]byte{}
			b.msgs[string(m.room)] = room
		}
		room[m.seq] = m.v
	}
	return nil
}

// writes buffers the writes of one update, for backends that apply them
// at commit.
type writes struct {
	kv   []struct{ k, v []byte }
	msgs []struct {
		room []byte
		seq  int64
		v    []byte
	}
}

func (w *writes) Put(k, v []byte) error {
	w.kv = append(w.kv, struct{ k, v []byte }{bytes.Clone(k), bytes.Clone(v)})
	return nil
}

func (w *writes) PutMessage(room []byte, seq int64, v []byte) error {
	w.msgs = append(w.msgs, struct {
		room []byte
		seq  int64
		v    []byte
	}{bytes.Clone(room), seq, bytes.Clone(v)})
	return nil
}

// Message implements Backend.
func (b *MemoryBackend) Message(_ context.Context, room []byte, seq int64) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return nil, err
	}
	v, ok := b.msgs[string(room)][seq]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

// Messages implements Backend.
func (b *MemoryBackend) Messages(_ context.Context, room []byte, from int64, limit int) ([]StoredMessage, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(); err != nil {
		return nil, err
	}
	var seqs []int64
	for seq := range b.msgs[string(room)] {
		if seq >= from {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	if limit >= 0 && len(seqs) > limit {
		seqs = seqs[:limit]
	}
	out := make([]StoredMessage, 0, len(seqs))
	for _, seq := range seqs {
		out = append(out, StoredMessage{Seq: seq, Value: bytes.Clone(b.msgs[string(room)][seq])})
	}
	return out, nil
}
