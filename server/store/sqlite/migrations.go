package sqlite

import (
	"database/sql"
	"fmt"
)

// migrations are applied in order; entry i brings the schema to version i+1.
// Never edit an applied migration: append a new one.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	role          TEXT NOT NULL,
	password_hash TEXT NOT NULL,
	disabled      INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);
CREATE TABLE devices (
	user_id      TEXT NOT NULL REFERENCES users(id),
	device_id    TEXT NOT NULL,
	name         TEXT NOT NULL DEFAULT '',
	token_hash   BLOB NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	PRIMARY KEY (user_id, device_id)
);
CREATE TABLE rooms (
	id         TEXT PRIMARY KEY,
	hub        TEXT NOT NULL,
	name       TEXT NOT NULL DEFAULT '',
	creator    TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	last_seq   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE members (
	room_id    TEXT NOT NULL REFERENCES rooms(id),
	user_id    TEXT NOT NULL,
	room_role  TEXT NOT NULL,
	membership TEXT NOT NULL,
	PRIMARY KEY (room_id, user_id)
);
CREATE INDEX members_by_user ON members(user_id);
CREATE TABLE events (
	stream      INTEGER PRIMARY KEY AUTOINCREMENT,
	room_id     TEXT NOT NULL REFERENCES rooms(id),
	seq         INTEGER NOT NULL,
	sender      TEXT NOT NULL,
	device_id   TEXT NOT NULL DEFAULT '',
	txn_id      TEXT,
	kind        TEXT NOT NULL,
	body        BLOB,
	ts          INTEGER NOT NULL,
	target_user TEXT,
	membership  TEXT,
	room_role   TEXT,
	UNIQUE (room_id, seq)
);
CREATE UNIQUE INDEX events_txn ON events(room_id, sender, device_id, txn_id) WHERE txn_id IS NOT NULL;
CREATE INDEX events_target ON events(target_user, stream) WHERE target_user IS NOT NULL;
CREATE INDEX events_room_stream ON events(room_id, stream);
CREATE TABLE key_packages (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id     TEXT NOT NULL,
	device_id   TEXT NOT NULL,
	data        BLOB NOT NULL,
	last_resort INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX key_packages_by_device ON key_packages(user_id, device_id, last_resort, id);
CREATE TABLE device_messages (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	target_user   TEXT NOT NULL,
	target_device TEXT NOT NULL,
	sender        TEXT NOT NULL,
	sender_device TEXT NOT NULL,
	txn_id        TEXT NOT NULL,
	kind          TEXT NOT NULL,
	body          BLOB NOT NULL,
	ts            INTEGER NOT NULL,
	UNIQUE (sender, sender_device, txn_id, target_user, target_device)
);
CREATE INDEX device_messages_by_target ON device_messages(target_user, target_device, id);
CREATE TABLE media (
	sha256   TEXT NOT NULL,
	room_id  TEXT NOT NULL REFERENCES rooms(id),
	size     INTEGER NOT NULL,
	uploader TEXT NOT NULL,
	ts       INTEGER NOT NULL,
	PRIMARY KEY (sha256, room_id)
);
CREATE TABLE audit_log (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	ts        INTEGER NOT NULL,
	actor     TEXT NOT NULL,
	device_id TEXT NOT NULL DEFAULT '',
	action    TEXT NOT NULL,
	target    TEXT NOT NULL DEFAULT '',
	address   TEXT NOT NULL DEFAULT ''
);
`,
	// 2: the hub's MLS epoch per room, so that it accepts exactly one
	// commit per epoch (DESIGN.md, principle 3).
	`ALTER TABLE rooms ADD COLUMN mls_epoch INTEGER NOT NULL DEFAULT 0;`,
	// 3: federation — rooms with members on other servers fan out through a
	// durable outbound queue per destination (docs/federation.md).
	`ALTER TABLE rooms ADD COLUMN federated INTEGER NOT NULL DEFAULT 0;
CREATE TABLE fed_outbound (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	destination TEXT NOT NULL,
	item        BLOB NOT NULL,
	created     INTEGER NOT NULL
);
CREATE INDEX fed_outbound_by_destination ON fed_outbound(destination, id);
CREATE TABLE media_remote (
	sha256  TEXT NOT NULL,
	room_id TEXT NOT NULL,
	origin  TEXT NOT NULL,
	PRIMARY KEY (sha256, room_id)
);`,
	// 4: a room may be restricted to listed servers (space-separated;
	// empty: every federated peer).
	`ALTER TABLE rooms ADD COLUMN allowed_servers TEXT NOT NULL DEFAULT '';`,
	// 5: joins of local users to followed rooms that the users asked for;
	// a hub cannot join a user who did not.
	`CREATE TABLE fed_join_requests (
	room_id TEXT NOT NULL,
	user_id TEXT NOT NULL,
	PRIMARY KEY (room_id, user_id)
);`,
	// 6: key packages are tagged with their MLS cipher suite, so that a
	// room in another suite claims matching ones; existing packages are
	// of the default suite 0x0001.
	`ALTER TABLE key_packages ADD COLUMN suite INTEGER NOT NULL DEFAULT 1;
DROP INDEX key_packages_by_device;
CREATE INDEX key_packages_by_device_suite ON key_packages(user_id, device_id, suite, last_resort, id);`,
	// 7: the hub's public view of a room's MLS group (crypto/mls
	// PublicGroup, serialized), for rooms whose clients published a
	// GroupInfo: the hub checks commits against the room policy in it.
	`ALTER TABLE rooms ADD COLUMN mls_public_group BLOB;`,
}

func migrate(db *sql.DB) error {
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	var current int
	if err := db.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return err
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this program (%d)", current, len(migrations))
	}
	for v := current; v < len(migrations); v++ {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now'))`, v+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("record migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit migration %d: %w", v+1, err)
		}
	}
	return nil
}
