package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/medicus-health/medicus/server/store"
)

// CreateUser stores a new account; store.ErrExists if the id is taken.
func (db *DB) CreateUser(ctx context.Context, u store.User) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO users (id, role, password_hash, disabled, created_at) VALUES (?, ?, ?, ?, ?)`,
			u.ID, u.Role, u.PasswordHash, u.Disabled, ms(u.CreatedAt))
		if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
			return fmt.Errorf("create user %s: %w", u.ID, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create user %s: %w", u.ID, err)
		}
		return nil
	})
}

// User returns an account by id.
func (db *DB) User(ctx context.Context, id string) (store.User, error) {
	var u store.User
	var created int64
	err := db.read.QueryRowContext(ctx, `SELECT id, role, password_hash, disabled, created_at FROM users WHERE id = ?`, id).
		Scan(&u.ID, &u.Role, &u.PasswordHash, &u.Disabled, &created)
	if err != nil {
		return store.User{}, notFound(err, "user "+id)
	}
	u.CreatedAt = fromMS(created)
	return u, nil
}

// Users lists all accounts ordered by id.
func (db *DB) Users(ctx context.Context) ([]store.User, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, role, disabled, created_at FROM users ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		var u store.User
		var created int64
		if err := rows.Scan(&u.ID, &u.Role, &u.Disabled, &created); err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		u.CreatedAt = fromMS(created)
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetUserDisabled disables or re-enables an account. Disabling also logs out
// all of the user's devices.
func (db *DB) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`UPDATE users SET disabled = ? WHERE id = ?`, disabled, id)
		if err != nil {
			return fmt.Errorf("disable user %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("disable user %s: %w", id, store.ErrNotFound)
		}
		if disabled {
			if _, err := tx.Exec(`DELETE FROM devices WHERE user_id = ?`, id); err != nil {
				return fmt.Errorf("log out devices of %s: %w", id, err)
			}
		}
		return nil
	})
}

// CreateDevice stores a new device with its token hash.
func (db *DB) CreateDevice(ctx context.Context, d store.Device) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO devices (user_id, device_id, name, token_hash, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)`,
			d.UserID, d.DeviceID, d.Name, d.TokenHash, ms(d.CreatedAt), ms(d.LastSeenAt))
		if err != nil {
			return fmt.Errorf("create device %s/%s: %w", d.UserID, d.DeviceID, err)
		}
		return nil
	})
}

// DeviceByToken finds the device whose access token hashes to tokenHash.
func (db *DB) DeviceByToken(ctx context.Context, tokenHash []byte) (store.Device, error) {
	var d store.Device
	var created, seen int64
	err := db.read.QueryRowContext(ctx, `SELECT user_id, device_id, name, created_at, last_seen_at FROM devices WHERE token_hash = ?`, tokenHash).
		Scan(&d.UserID, &d.DeviceID, &d.Name, &created, &seen)
	if err != nil {
		return store.Device{}, notFound(err, "device by token")
	}
	d.CreatedAt, d.LastSeenAt = fromMS(created), fromMS(seen)
	d.TokenHash = tokenHash
	return d, nil
}

// Devices lists a user's devices.
func (db *DB) Devices(ctx context.Context, userID string) ([]store.Device, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT user_id, device_id, name, created_at, last_seen_at FROM devices WHERE user_id = ? ORDER BY created_at, device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		var d store.Device
		var created, seen int64
		if err := rows.Scan(&d.UserID, &d.DeviceID, &d.Name, &created, &seen); err != nil {
			return nil, fmt.Errorf("list devices of %s: %w", userID, err)
		}
		d.CreatedAt, d.LastSeenAt = fromMS(created), fromMS(seen)
		out = append(out, d)
	}
	return out, rows.Err()
}

// DeleteDevice removes a device, its key packages and its queued messages.
func (db *DB) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM devices WHERE user_id = ? AND device_id = ?`, userID, deviceID)
		if err != nil {
			return fmt.Errorf("delete device %s/%s: %w", userID, deviceID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("delete device %s/%s: %w", userID, deviceID, store.ErrNotFound)
		}
		if _, err := tx.Exec(`DELETE FROM key_packages WHERE user_id = ? AND device_id = ?`, userID, deviceID); err != nil {
			return fmt.Errorf("delete key packages of %s/%s: %w", userID, deviceID, err)
		}
		if _, err := tx.Exec(`DELETE FROM device_messages WHERE target_user = ? AND target_device = ?`, userID, deviceID); err != nil {
			return fmt.Errorf("delete device messages of %s/%s: %w", userID, deviceID, err)
		}
		return nil
	})
}

// TouchDevice records when a device was last seen.
func (db *DB) TouchDevice(ctx context.Context, userID, deviceID string, at time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE devices SET last_seen_at = ? WHERE user_id = ? AND device_id = ?`, ms(at), userID, deviceID)
		return err
	})
}

// Audit appends an entry to the audit log.
func (db *DB) Audit(ctx context.Context, e store.AuditEntry) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO audit_log (ts, actor, device_id, action, target, address) VALUES (?, ?, ?, ?, ?, ?)`,
			ms(e.Time), e.Actor, e.DeviceID, e.Action, e.Target, e.Address)
		if err != nil {
			return fmt.Errorf("audit %s: %w", e.Action, err)
		}
		return nil
	})
}

// AuditLog returns the newest entries first.
func (db *DB) AuditLog(ctx context.Context, limit int) ([]store.AuditEntry, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT ts, actor, device_id, action, target, address FROM audit_log ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var ts int64
		if err := rows.Scan(&ts, &e.Actor, &e.DeviceID, &e.Action, &e.Target, &e.Address); err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		e.Time = fromMS(ts)
		out = append(out, e)
	}
	return out, rows.Err()
}
