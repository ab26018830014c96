package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/medicus-health/medicus/server/store"
)

// AddKeyPackages stores a device's key packages of a cipher suite.
func (db *DB) AddKeyPackages(ctx context.Context, userID, deviceID string, suite uint16, pkgs [][]byte, lastResort []byte) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		for _, p := range pkgs {
			if _, err := tx.Exec(`INSERT INTO key_packages (user_id, device_id, suite, data) VALUES (?, ?, ?, ?)`, userID, deviceID, suite, p); err != nil {
				return fmt.Errorf("store key package of %s/%s: %w", userID, deviceID, err)
			}
		}
		if lastResort != nil {
			if _, err := tx.Exec(`DELETE FROM key_packages WHERE user_id = ? AND device_id = ? AND suite = ? AND last_resort = 1`, userID, deviceID, suite); err != nil {
				return fmt.Errorf("replace last-resort key package of %s/%s: %w", userID, deviceID, err)
			}
			if _, err := tx.Exec(`INSERT INTO key_packages (user_id, device_id, suite, data, last_resort) VALUES (?, ?, ?, ?, 1)`, userID, deviceID, suite, lastResort); err != nil {
				return fmt.Errorf("store last-resort key package of %s/%s: %w", userID, deviceID, err)
			}
		}
		return nil
	})
}

// ClaimKeyPackages consumes one key package of the suite per device of the
// user.
func (db *DB) ClaimKeyPackages(ctx context.Context, userID, deviceID string, suite uint16) ([]store.KeyPackage, error) {
	var out []store.KeyPackage
	err := db.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		rows, err := tx.Query(`SELECT device_id FROM devices WHERE user_id = ?1 AND (?2 = '' OR device_id = ?2) ORDER BY created_at, device_id`, userID, deviceID)
		if err != nil {
			return fmt.Errorf("devices of %s: %w", userID, err)
		}
		var devices []string
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				rows.Close()
				return err
			}
			devices = append(devices, d)
		}
		rows.Close()
		for _, d := range devices {
			var id int64
			var data []byte
			err := tx.QueryRow(`DELETE FROM key_packages WHERE id = (SELECT id FROM key_packages WHERE user_id = ? AND device_id = ? AND suite = ? AND last_resort = 0 ORDER BY id LIMIT 1) RETURNING id, data`, userID, d, suite).Scan(&id, &data)
			if err == nil {
				out = append(out, store.KeyPackage{DeviceID: d, Data: data})
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("claim key package of %s/%s: %w", userID, d, err)
			}
			err = tx.QueryRow(`SELECT data FROM key_packages WHERE user_id = ? AND device_id = ? AND suite = ? AND last_resort = 1`, userID, d, suite).Scan(&data)
			if err == nil {
				out = append(out, store.KeyPackage{DeviceID: d, Data: data, LastResort: true})
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("claim last-resort key package of %s/%s: %w", userID, d, err)
			}
		}
		return nil
	})
	return out, err
}

// CountKeyPackages reports how many unclaimed packages of the suite a
// device has.
func (db *DB) CountKeyPackages(ctx context.Context, userID, deviceID string, suite uint16) (int, bool, error) {
	var n, lr int
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(last_resort = 0), 0), COALESCE(SUM(last_resort = 1), 0) FROM key_packages WHERE user_id = ? AND device_id = ? AND suite = ?`, userID, deviceID, suite).Scan(&n, &lr)
	if err != nil {
		return 0, false, fmt.Errorf("count key packages of %s/%s: %w", userID, deviceID, err)
	}
	return n, lr > 0, nil
}

// QueueDeviceMessages queues messages, ignoring repeated transactions.
func (db *DB) QueueDeviceMessages(ctx context.Context, msgs []store.DeviceMessage, limit int) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		for _, m := range msgs {
			var queued int
			if err := tx.QueryRow(`SELECT COUNT(*) FROM device_messages WHERE target_user = ? AND target_device = ?`,
				m.TargetUser, m.TargetDevice).Scan(&queued); err != nil {
				return fmt.Errorf("count device messages of %s/%s: %w", m.TargetUser, m.TargetDevice, err)
			}
			if queued >= limit {
				// A repeat of a message already queued is not refused.
				var repeat bool
				if err := tx.QueryRow(`SELECT EXISTS (SELECT 1 FROM device_messages WHERE sender = ? AND sender_device = ? AND txn_id = ? AND target_user = ? AND target_device = ?)`,
					m.Sender, m.SenderDevice, m.TxnID, m.TargetUser, m.TargetDevice).Scan(&repeat); err != nil {
					return fmt.Errorf("look up device message %s: %w", m.TxnID, err)
				}
				if repeat {
					continue
				}
				return fmt.Errorf("device %s/%s has %d queued messages: %w", m.TargetUser, m.TargetDevice, queued, store.ErrQuota)
			}
			_, err := tx.Exec(`INSERT INTO device_messages (target_user, target_device, sender, sender_device, txn_id, kind, body, ts)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
				m.TargetUser, m.TargetDevice, m.Sender, m.SenderDevice, m.TxnID, m.Kind, m.Body, ms(m.Time))
			if err != nil {
				return fmt.Errorf("queue device message for %s/%s: %w", m.TargetUser, m.TargetDevice, err)
			}
		}
		return nil
	})
}

// DeviceMessagesAfter returns queued messages of a device with id > after.
func (db *DB) DeviceMessagesAfter(ctx context.Context, userID, deviceID string, after int64, limit int) ([]store.DeviceMessage, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, sender, sender_device, txn_id, kind, body, ts FROM device_messages
		WHERE target_user = ? AND target_device = ? AND id > ? ORDER BY id LIMIT ?`, userID, deviceID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("device messages of %s/%s: %w", userID, deviceID, err)
	}
	defer rows.Close()
	var out []store.DeviceMessage
	for rows.Next() {
		m := store.DeviceMessage{TargetUser: userID, TargetDevice: deviceID}
		var ts int64
		if err := rows.Scan(&m.ID, &m.Sender, &m.SenderDevice, &m.TxnID, &m.Kind, &m.Body, &ts); err != nil {
			return nil, fmt.Errorf("device messages of %s/%s: %w", userID, deviceID, err)
		}
		m.Time = fromMS(ts)
		out = append(out, m)
	}
	return out, rows.Err()
}

// AckDeviceMessages deletes a device's messages with id ≤ upTo.
func (db *DB) AckDeviceMessages(ctx context.Context, userID, deviceID string, upTo int64) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM device_messages WHERE target_user = ? AND target_device = ? AND id <= ?`, userID, deviceID, upTo)
		if err != nil {
			return fmt.Errorf("acknowledge device messages of %s/%s: %w", userID, deviceID, err)
		}
		return nil
	})
}

// AddMedia records a blob posted in a room.
func (db *DB) AddMedia(ctx context.Context, m store.Media) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO media (sha256, room_id, size, uploader, ts) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			m.SHA256, m.RoomID, m.Size, m.Uploader, ms(m.Time))
		if err != nil {
			return fmt.Errorf("record media %s: %w", m.SHA256, err)
		}
		return nil
	})
}

// MediaForMember returns the media record if the user may download it.
func (db *DB) MediaForMember(ctx context.Context, sha256, userID string) (store.Media, error) {
	var m store.Media
	var ts int64
	err := db.read.QueryRowContext(ctx, `SELECT md.sha256, md.room_id, md.size, md.uploader, md.ts FROM media md
		JOIN members mb ON mb.room_id = md.room_id AND mb.user_id = ? AND mb.membership = 'join'
		WHERE md.sha256 = ? LIMIT 1`, userID, sha256).Scan(&m.SHA256, &m.RoomID, &m.Size, &m.Uploader, &ts)
	if err != nil {
		return store.Media{}, notFound(err, "media "+sha256)
	}
	m.Time = fromMS(ts)
	return m, nil
}
