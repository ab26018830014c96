package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/medicus-health/medicus/server/store"
)

// RoomPublicGroup returns the room's serialized public MLS group, nil if
// none was published.
func (db *DB) RoomPublicGroup(ctx context.Context, roomID string) ([]byte, error) {
	var data []byte
	err := db.read.QueryRowContext(ctx, `SELECT mls_public_group FROM rooms WHERE id = ?`, roomID).Scan(&data)
	if err != nil {
		return nil, notFound(err, "room "+roomID)
	}
	return data, nil
}

// SetRoomPublicGroup stores the room's first public MLS group state,
// published at epoch.
func (db *DB) SetRoomPublicGroup(ctx context.Context, roomID string, epoch uint64, data []byte) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		var current int64
		var old []byte
		if err := tx.QueryRow(`SELECT mls_epoch, mls_public_group FROM rooms WHERE id = ?`, roomID).Scan(&current, &old); err != nil {
			return notFound(err, "room "+roomID)
		}
		if old != nil {
			return fmt.Errorf("room %s has a public group already: %w", roomID, store.ErrConflict)
		}
		if uint64(current) != epoch {
			return fmt.Errorf("public group of %s for epoch %d, but the room is at %d: %w", roomID, epoch, current, store.ErrConflict)
		}
		if _, err := tx.Exec(`UPDATE rooms SET mls_public_group = ? WHERE id = ?`, data, roomID); err != nil {
			return fmt.Errorf("store public group of %s: %w", roomID, err)
		}
		return nil
	})
}
