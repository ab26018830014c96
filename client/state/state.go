// Package state is the client's local store: MLS group states, keys, sync
// cursors and the decrypted message cache, in a SQLite file that is
// encrypted at rest.
//
// A random 256-bit state key encrypts every value (XChaCha20-Poly1305, with
// the row's name as associated data) and keys every row name (HMAC-SHA-256),
// so the file shows neither content nor room or user names. The state key is
// stored in the file wrapped with filippo.io/age, to a passphrase (scrypt)
// or to an X25519 identity kept in a separate key file: a stolen state file
// reveals nothing without one of them.
package state

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Errors callers distinguish with errors.Is.
var (
	// ErrNotFound means no value is stored under the name.
	ErrNotFound = errors.New("state: not found")
	// ErrLocked means the passphrase or key file does not unlock the state.
	ErrLocked = errors.New("state: wrong passphrase or key file")
	// ErrCorrupt means a stored value failed authentication.
	ErrCorrupt = errors.New("state: stored value is corrupt or was tampered with")
)

const schema = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (room BLOB NOT NULL, seq INTEGER NOT NULL, v BLOB NOT NULL, PRIMARY KEY (room, seq));
`

// Lock names how the state key is wrapped: exactly one of Passphrase and
// KeyFile is set. KeyFile is an age X25519 identity file (as made by
// age-keygen or GenerateKeyFile).
type Lock struct {
	Passphrase string
	KeyFile    string
}

func (l Lock) recipient() (age.Recipient, error) {
	switch {
	case l.Passphrase != "" && l.KeyFile == "":
		r, err := age.NewScryptRecipient(l.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		return r, nil
	case l.KeyFile != "" && l.Passphrase == "":
		id, err := readKeyFile(l.KeyFile)
		if err != nil {
			return nil, err
		}
		return id.Recipient(), nil
	}
	return nil, errors.New("state: give either a passphrase or a key file")
}

func (l Lock) identity() (age.Identity, error) {
	if l.KeyFile != "" {
		return readKeyFile(l.KeyFile)
	}
	id, err := age.NewScryptIdentity(l.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	return id, nil
}

func readKeyFile(path string) (*age.X25519Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("parse key file %s: %w", path, err)
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return x, nil
		}
	}
	return nil, fmt.Errorf("key file %s holds no X25519 identity", path)
}

// GenerateKeyFile writes a new age X25519 identity to path (mode 0600).
func GenerateKeyFile(path string) error {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := fmt.Fprintf(f, "# medicus client state key\n# public key: %s\n%s\n", id.Recipient(), id); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Store is an open state file. It is safe for concurrent use.
type Store struct {
	db     *sql.DB
	enc    cipherAEAD
	macKey []byte
}

type cipherAEAD interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	NonceSize() int
}

// Exists reports whether a state file exists at path.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Open opens the state file at path, creating it (with a new state key
// wrapped to lock) if it does not exist. It fails with ErrLocked if lock
// does not unwrap an existing file's key.
func Open(ctx context.Context, path string, lock Lock) (*Store, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("state schema: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, err
	}
	key, err := stateKey(ctx, db, lock)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db}
	encKey, err := hkdf.Key(sha256.New, key, nil, "medicus state encryption", chacha20poly1305.KeySize)
	if err != nil {
		db.Close()
		return nil, err
	}
	if s.macKey, err = hkdf.Key(sha256.New, key, nil, "medicus state names", 32); err != nil {
		db.Close()
		return nil, err
	}
	if s.enc, err = chacha20poly1305.NewX(encKey); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// stateKey unwraps the stored state key, or makes and stores one.
func stateKey(ctx context.Context, db *sql.DB, lock Lock) ([]byte, error) {
	var wrapped []byte
	err := db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = 'state_key'`).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
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
		if _, err := db.ExecContext(ctx, `INSERT INTO meta (name, value) VALUES ('state_key', ?)`, buf.Bytes()); err != nil {
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

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

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
	k := s.name(name)
	if _, err := s.db.ExecContext(ctx, `INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, k, s.seal(value, k)); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	return nil
}

// Get returns the value stored under name, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	k := s.name(name)
	var sealed []byte
	err := s.db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = ?`, k).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
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
	if _, err := s.db.ExecContext(ctx, `DELETE FROM kv WHERE k = ?`, s.name(name)); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// Update runs fn in one transaction: the values it puts are stored together
// or not at all (e.g. a group state and the cursor of the message that
// produced it).
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin state update: %w", err)
	}
	defer sqlTx.Rollback()
	if err := fn(&Tx{s: s, tx: sqlTx, ctx: ctx}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit state update: %w", err)
	}
	return nil
}

// Tx is a state update in progress.
type Tx struct {
	s   *Store
	tx  *sql.Tx
	ctx context.Context
}

// Put stores value under name in the transaction.
func (t *Tx) Put(name string, value []byte) error {
	k := t.s.name(name)
	if _, err := t.tx.ExecContext(t.ctx, `INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, k, t.s.seal(value, k)); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	return nil
}

// PutMessage stores a decrypted message of a room at its sequence number.
func (t *Tx) PutMessage(room string, seq int64, value []byte) error {
	r := t.s.name("room:" + room)
	if _, err := t.tx.ExecContext(t.ctx, `INSERT INTO messages (room, seq, v) VALUES (?, ?, ?) ON CONFLICT (room, seq) DO UPDATE SET v = excluded.v`,
		r, seq, t.s.seal(value, messageAD(r, seq))); err != nil {
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
	var sealed []byte
	err := s.db.QueryRowContext(ctx, `SELECT v FROM messages WHERE room = ? AND seq = ?`, r, seq).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
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
	rows, err := s.db.QueryContext(ctx, `SELECT seq, v FROM messages WHERE room = ? AND seq >= ? ORDER BY seq LIMIT ?`, r, from, limit)
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", room, err)
	}
	defer rows.Close()
	var out []StoredMessage
	for rows.Next() {
		var m StoredMessage
		var sealed []byte
		if err := rows.Scan(&m.Seq, &sealed); err != nil {
			return nil, fmt.Errorf("messages of %s: %w", room, err)
		}
		if m.Value, err = s.open(sealed, messageAD(r, m.Seq)); err != nil {
			return nil, fmt.Errorf("message %d of %s: %w", m.Seq, room, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// SealFile writes data to path (mode 0600, failing if it exists), encrypted
// with age to lock: for secrets that leave the state file, such as an
// exported identity key.
func SealFile(path string, data []byte, lock Lock) error {
	r, err := lock.recipient()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w, err := age.Encrypt(f, r)
	if err == nil {
		_, err = w.Write(data)
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// maxSealedFile bounds what OpenSealedFile reads.
const maxSealedFile = 1 << 20

// OpenSealedFile decrypts a file written by SealFile; it fails with
// ErrLocked if lock does not open it.
func OpenSealedFile(path string, lock Lock) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	id, err := lock.identity()
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(io.LimitReader(f, maxSealedFile), id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLocked, err)
	}
	return io.ReadAll(io.LimitReader(r, maxSealedFile))
}
