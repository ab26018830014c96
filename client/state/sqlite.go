//go:build !js

package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

const schema = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS messages (room BLOB NOT NULL, seq INTEGER NOT NULL, v BLOB NOT NULL, PRIMARY KEY (room, seq));
`

// Exists reports whether a state file exists at path.
func Exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Open opens the state file at path, creating it and its directory (with a
// new state key wrapped to lock) if it does not exist. It fails with
// ErrLocked if lock does not unwrap an existing file's key.
func Open(ctx context.Context, path string, lock Lock) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
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
	return OpenBackend(ctx, sqliteBackend{db}, lock)
}

// sqliteBackend keeps sealed state in a SQLite database.
type sqliteBackend struct{ db *sql.DB }

func (b sqliteBackend) Close() error { return b.db.Close() }

func (b sqliteBackend) Meta(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := b.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return v, err
}

func (b sqliteBackend) PutMeta(ctx context.Context, name string, value []byte) error {
	_, err := b.db.ExecContext(ctx, `INSERT INTO meta (name, value) VALUES (?, ?)`, name, value)
	return err
}

func (b sqliteBackend) Get(ctx context.Context, k []byte) ([]byte, error) {
	var v []byte
	err := b.db.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = ?`, k).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return v, err
}

func (b sqliteBackend) Delete(ctx context.Context, k []byte) error {
	_, err := b.db.ExecContext(ctx, `DELETE FROM kv WHERE k = ?`, k)
	return err
}

func (b sqliteBackend) Update(ctx context.Context, fn func(BackendTx) error) error {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin state update: %w", err)
	}
	defer tx.Rollback()
	if err := fn(sqliteTx{ctx, tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit state update: %w", err)
	}
	return nil
}

type sqliteTx struct {
	ctx context.Context
	tx  *sql.Tx
}

func (t sqliteTx) Put(k, v []byte) error {
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, k, v)
	return err
}

func (t sqliteTx) PutMessage(room []byte, seq int64, v []byte) error {
	_, err := t.tx.ExecContext(t.ctx, `INSERT INTO messages (room, seq, v) VALUES (?, ?, ?) ON CONFLICT (room, seq) DO UPDATE SET v = excluded.v`, room, seq, v)
	return err
}

func (b sqliteBackend) Message(ctx context.Context, room []byte, seq int64) ([]byte, error) {
	var v []byte
	err := b.db.QueryRowContext(ctx, `SELECT v FROM messages WHERE room = ? AND seq = ?`, room, seq).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return v, err
}

func (b sqliteBackend) Messages(ctx context.Context, room []byte, from int64, limit int) ([]StoredMessage, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT seq, v FROM messages WHERE room = ? AND seq >= ? ORDER BY seq LIMIT ?`, room, from, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []StoredMessage
	for rows.Next() {
		var m StoredMessage
		if err := rows.Scan(&m.Seq, &m.Value); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
