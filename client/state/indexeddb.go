//go:build js && wasm

package state

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"syscall/js"
	"time"
)

// In a browser the state lives in IndexedDB: one database per profile,
// named by the path the client would use for its state file. The backend
// stores exactly the sealed bytes the SQLite backend stores; the browser
// (and anyone who copies its profile) sees only ciphertext and HMAC names.

const idbVersion = 1

// Exists reports whether the IndexedDB database named path holds a state.
func Exists(path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := openIDB(ctx, path)
	if err != nil {
		return false
	}
	defer b.Close()
	_, err = b.Meta(ctx, "state_key")
	return err == nil
}

// Open opens the IndexedDB database named path, creating it (with a new
// state key wrapped to lock) if it holds no state. It fails with ErrLocked
// if lock does not unwrap the stored key. It blocks on the browser's event
// loop, so it must not be called from a JavaScript callback directly (run
// it in a goroutine).
func Open(ctx context.Context, path string, lock Lock) (*Store, error) {
	b, err := openIDB(ctx, path)
	if err != nil {
		return nil, err
	}
	return OpenBackend(ctx, b, lock)
}

// Remove deletes the IndexedDB database named path with every key and
// message in it (log out).
func Remove(ctx context.Context, path string) error {
	_, err := await(ctx, js.Global().Get("indexedDB").Call("deleteDatabase", path))
	return err
}

type idbBackend struct{ db js.Value }

func openIDB(ctx context.Context, name string) (*idbBackend, error) {
	idb := js.Global().Get("indexedDB")
	if idb.IsUndefined() {
		return nil, errors.New("state: this browser has no IndexedDB")
	}
	req := idb.Call("open", name, idbVersion)
	upgrade := js.FuncOf(func(js.Value, []js.Value) any {
		db := req.Get("result")
		names := db.Get("objectStoreNames")
		for _, s := range []string{"meta", "kv", "messages"} {
			if !names.Call("contains", s).Bool() {
				db.Call("createObjectStore", s)
			}
		}
		return nil
	})
	defer upgrade.Release()
	req.Set("onupgradeneeded", upgrade)
	db, err := await(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("open IndexedDB %s: %w", name, err)
	}
	return &idbBackend{db: db}, nil
}

// await waits for an IDBRequest (or, with event "complete", an
// IDBTransaction) to finish.
func await(ctx context.Context, req js.Value) (js.Value, error) {
	return awaitEvent(ctx, req, "onsuccess", func() js.Value { return req.Get("result") })
}

func awaitEvent(ctx context.Context, target js.Value, onDone string, result func() js.Value) (js.Value, error) {
	type outcome struct {
		v   js.Value
		err error
	}
	ch := make(chan outcome, 1)
	ok := js.FuncOf(func(js.Value, []js.Value) any {
		ch <- outcome{v: result()}
		return nil
	})
	fail := js.FuncOf(func(js.Value, []js.Value) any {
		msg := "aborted"
		if e := target.Get("error"); e.Truthy() {
			msg = e.Get("name").String() + ": " + e.Get("message").String()
		}
		ch <- outcome{err: errors.New("IndexedDB: " + msg)}
		return nil
	})
	defer ok.Release()
	defer fail.Release()
	target.Set(onDone, ok)
	target.Set("onerror", fail)
	if onDone == "oncomplete" {
		target.Set("onabort", fail)
	}
	select {
	case o := <-ch:
		return o.v, o.err
	case <-ctx.Done():
		return js.Undefined(), ctx.Err()
	}
}

func (b *idbBackend) store(name, mode string) js.Value {
	return b.db.Call("transaction", name, mode).Call("objectStore", name)
}

func toJS(p []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(p))
	js.CopyBytesToJS(a, p)
	return a
}

func fromJS(v js.Value) ([]byte, error) {
	if !v.InstanceOf(js.Global().Get("Uint8Array")) {
		return nil, ErrCorrupt
	}
	p := make([]byte, v.Get("length").Int())
	js.CopyBytesToGo(p, v)
	return p, nil
}

func (b *idbBackend) Close() error {
	b.db.Call("close")
	return nil
}

func (b *idbBackend) getFrom(ctx context.Context, storeName string, key any) ([]byte, error) {
	v, err := await(ctx, b.store(storeName, "readonly").Call("get", key))
	if err != nil {
		return nil, err
	}
	if v.IsUndefined() {
		return nil, ErrNotFound
	}
	return fromJS(v)
}

func (b *idbBackend) Meta(ctx context.Context, name string) ([]byte, error) {
	return b.getFrom(ctx, "meta", name)
}

func (b *idbBackend) PutMeta(ctx context.Context, name string, value []byte) error {
	_, err := await(ctx, b.store("meta", "readwrite").Call("add", toJS(value), name))
	return err
}

func (b *idbBackend) Get(ctx context.Context, k []byte) ([]byte, error) {
	return b.getFrom(ctx, "kv", hex.EncodeToString(k))
}

func (b *idbBackend) Delete(ctx context.Context, k []byte) error {
	_, err := await(ctx, b.store("kv", "readwrite").Call("delete", hex.EncodeToString(k)))
	return err
}

func messageKey(room []byte, seq int64) js.Value {
	return js.ValueOf([]any{hex.EncodeToString(room), seq})
}

// Update buffers fn's writes and applies them in one readwrite
// transaction, which IndexedDB commits atomically.
func (b *idbBackend) Update(ctx context.Context, fn func(BackendTx) error) error {
	var w writes
	if err := fn(&w); err != nil {
		return err
	}
	if len(w.kv) == 0 && len(w.msgs) == 0 {
		return nil
	}
	tx := b.db.Call("transaction", js.ValueOf([]any{"kv", "messages"}), "readwrite")
	kv, msgs := tx.Call("objectStore", "kv"), tx.Call("objectStore", "messages")
	for _, p := range w.kv {
		kv.Call("put", toJS(p.v), hex.EncodeToString(p.k))
	}
	for _, m := range w.msgs {
		obj := js.Global().Get("Object").New()
		obj.Set("seq", m.seq)
		obj.Set("v", toJS(m.v))
		msgs.Call("put", obj, messageKey(m.room, m.seq))
	}
	_, err := awaitEvent(ctx, tx, "oncomplete", js.Undefined)
	if err != nil {
		return fmt.Errorf("commit state update: %w", err)
	}
	return nil
}

func (b *idbBackend) Message(ctx context.Context, room []byte, seq int64) ([]byte, error) {
	v, err := await(ctx, b.store("messages", "readonly").Call("get", messageKey(room, seq)))
	if err != nil {
		return nil, err
	}
	if v.IsUndefined() {
		return nil, ErrNotFound
	}
	return fromJS(v.Get("v"))
}

func (b *idbBackend) Messages(ctx context.Context, room []byte, from int64, limit int) ([]StoredMessage, error) {
	if limit == 0 {
		return nil, nil
	}
	r := hex.EncodeToString(room)
	keyRange := js.Global().Get("IDBKeyRange").Call("bound",
		js.ValueOf([]any{r, from}), js.ValueOf([]any{r, js.Global().Get("Number").Get("MAX_SAFE_INTEGER")}))
	args := []any{keyRange}
	if limit > 0 {
		args = append(args, limit)
	}
	all, err := await(ctx, b.store("messages", "readonly").Call("getAll", args...))
	if err != nil {
		return nil, err
	}
	n := all.Get("length").Int()
	out := make([]StoredMessage, 0, n)
	for i := range n {
		o := all.Index(i)
		v, err := fromJS(o.Get("v"))
		if err != nil {
			return nil, err
		}
		out = append(out, StoredMessage{Seq: int64(o.Get("seq").Float()), Value: v})
	}
	return out, nil
}
