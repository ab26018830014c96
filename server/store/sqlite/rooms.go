package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

const eventColumns = `stream, room_id, seq, sender, device_id, kind, body, ts, COALESCE(target_user, ''), COALESCE(membership, ''), COALESCE(room_role, '')`

// Statements of the append path, prepared once (see hotStatements).
const (
	qNextSeq     = `UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq, hub, federated`
	qInsertEvent = `INSERT INTO events (room_id, seq, sender, device_id, txn_id, kind, body, ts, target_user, membership, room_role)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING stream`
	// qCheckAppend reads, in one step, the sender's membership and the
	// stream position of an earlier event with the same transaction id.
	qCheckAppend = `SELECT (SELECT membership FROM members WHERE room_id = ?1 AND user_id = ?2),
		(SELECT stream FROM events WHERE room_id = ?1 AND sender = ?2 AND device_id = ?3 AND txn_id = ?4)`
	qEventByStream = `SELECT ` + eventColumns + ` FROM events WHERE stream = ?`
)

type scanner interface{ Scan(dest ...any) error }

func scanEvent(s scanner) (proto.Event, error) {
	var ev proto.Event
	var ts int64
	var target, membership, roomRole string
	if err := s.Scan(&ev.Stream, &ev.RoomID, &ev.Seq, &ev.Sender, &ev.DeviceID, &ev.Kind, &ev.Body, &ts, &target, &membership, &roomRole); err != nil {
		return proto.Event{}, err
	}
	ev.Time = fromMS(ts)
	if ev.Kind == proto.KindMember {
		ev.Member = &proto.MembershipChange{UserID: target, Membership: membership, RoomRole: roomRole, By: ev.Sender}
	}
	return ev, nil
}

func queryEvents(ctx context.Context, db *sql.DB, what, query string, args ...any) ([]proto.Event, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []proto.Event
	for rows.Next() {
		ev, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// appendEvent assigns the room's next sequence number to ev and inserts it.
// Stream positions come from the AUTOINCREMENT key, so they grow in commit
// order: the single writer makes the two orders agree.
func (db *DB) appendEvent(tx *sql.Tx, ev *proto.Event, txnID *string) error {
	upd, err := db.stmt(tx, qNextSeq)
	if err != nil {
		return err
	}
	var hub string
	var federated bool
	if err := upd.QueryRow(ev.RoomID).Scan(&ev.Seq, &hub, &federated); err != nil {
		return notFound(err, "room "+ev.RoomID)
	}
	var target, membership, roomRole any
	if ev.Member != nil {
		target, membership, roomRole = ev.Member.UserID, ev.Member.Membership, ev.Member.RoomRole
	}
	ins, err := db.stmt(tx, qInsertEvent)
	if err != nil {
		return err
	}
	err = ins.QueryRow(
		ev.RoomID, ev.Seq, ev.Sender, ev.DeviceID, txnID, ev.Kind, ev.Body, ms(ev.Time), target, membership, roomRole).Scan(&ev.Stream)
	if err != nil {
		return fmt.Errorf("append to room %s: %w", ev.RoomID, err)
	}
	db.committing = append(db.committing, *ev)
	if hub == db.serverName && (federated || (ev.Member != nil && serverOf(ev.Member.UserID) != db.serverName)) {
		return db.fanOut(tx, ev)
	}
	return nil
}

func memberOf(tx *sql.Tx, roomID, userID string) (store.Member, error) {
	m := store.Member{RoomID: roomID, UserID: userID}
	err := tx.QueryRow(`SELECT m.room_role, m.membership, COALESCE(u.role, '') FROM members m LEFT JOIN users u ON u.id = m.user_id WHERE m.room_id = ? AND m.user_id = ?`, roomID, userID).
		Scan(&m.RoomRole, &m.Membership, &m.Role)
	if errors.Is(err, sql.ErrNoRows) {
		var role string
		if err := tx.QueryRow(`SELECT role FROM users WHERE id = ?`, userID).Scan(&role); err == nil {
			m.Role = role
		}
		return m, nil
	}
	return m, err
}

// CreateRoom stores a room with its creator as a joined moderator.
func (db *DB) CreateRoom(ctx context.Context, r store.Room, creatorDevice string) (proto.Event, error) {
	var ev proto.Event
	err := db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO rooms (id, hub, name, creator, created_at, allowed_servers) VALUES (?, ?, ?, ?, ?, ?)`,
			r.ID, r.Hub, r.Name, r.Creator, ms(r.CreatedAt), strings.Join(r.AllowedServers, " "))
		if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
			return fmt.Errorf("create room %s: %w", r.ID, store.ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create room %s: %w", r.ID, err)
		}
		if _, err := tx.Exec(`INSERT INTO members (room_id, user_id, room_role, membership) VALUES (?, ?, ?, ?)`,
			r.ID, r.Creator, proto.RoomRoleModerator, proto.MembershipJoin); err != nil {
			return fmt.Errorf("add creator to room %s: %w", r.ID, err)
		}
		ev = proto.Event{RoomID: r.ID, Sender: r.Creator, DeviceID: creatorDevice, Kind: proto.KindMember, Time: r.CreatedAt,
			Member: &proto.MembershipChange{UserID: r.Creator, Membership: proto.MembershipJoin, RoomRole: proto.RoomRoleModerator, By: r.Creator}}
		return db.appendEvent(tx, &ev, nil)
	})
	return ev, err
}

// Room returns a room by id.
func (db *DB) Room(ctx context.Context, id string) (store.Room, error) {
	var r store.Room
	var created int64
	var allowed string
	err := db.read.QueryRowContext(ctx, `SELECT id, hub, name, creator, created_at, allowed_servers FROM rooms WHERE id = ?`, id).
		Scan(&r.ID, &r.Hub, &r.Name, &r.Creator, &created, &allowed)
	if err != nil {
		return store.Room{}, notFound(err, "room "+id)
	}
	r.CreatedAt = fromMS(created)
	r.AllowedServers = strings.Fields(allowed)
	return r, nil
}

// Member returns a user's membership; store.ErrNotFound if it never had one.
func (db *DB) Member(ctx context.Context, roomID, userID string) (store.Member, error) {
	m := store.Member{RoomID: roomID, UserID: userID}
	err := db.read.QueryRowContext(ctx, `SELECT m.room_role, m.membership, COALESCE(u.role, '') FROM members m LEFT JOIN users u ON u.id = m.user_id WHERE m.room_id = ? AND m.user_id = ?`, roomID, userID).
		Scan(&m.RoomRole, &m.Membership, &m.Role)
	if err != nil {
		return store.Member{}, notFound(err, "member "+userID+" of "+roomID)
	}
	return m, nil
}

// Members lists a room's members, including those who left.
func (db *DB) Members(ctx context.Context, roomID string) ([]store.Member, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT m.user_id, m.room_role, m.membership, COALESCE(u.role, '') FROM members m LEFT JOIN users u ON u.id = m.user_id WHERE m.room_id = ? ORDER BY m.user_id`, roomID)
	if err != nil {
		return nil, fmt.Errorf("members of %s: %w", roomID, err)
	}
	defer rows.Close()
	var out []store.Member
	for rows.Next() {
		m := store.Member{RoomID: roomID}
		if err := rows.Scan(&m.UserID, &m.RoomRole, &m.Membership, &m.Role); err != nil {
			return nil, fmt.Errorf("members of %s: %w", roomID, err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// RoomsOf lists the rooms where the user is invited or joined.
func (db *DB) RoomsOf(ctx context.Context, userID string) ([]store.Room, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT r.id, r.hub, r.name, r.creator, r.created_at, r.mls_epoch FROM rooms r JOIN members m ON m.room_id = r.id
		WHERE m.user_id = ? AND m.membership IN ('invite', 'join') ORDER BY r.created_at, r.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("rooms of %s: %w", userID, err)
	}
	defer rows.Close()
	var out []store.Room
	for rows.Next() {
		var r store.Room
		var created, epoch int64
		if err := rows.Scan(&r.ID, &r.Hub, &r.Name, &r.Creator, &created, &epoch); err != nil {
			return nil, fmt.Errorf("rooms of %s: %w", userID, err)
		}
		r.Epoch = uint64(epoch)
		r.CreatedAt = fromMS(created)
		out = append(out, r)
	}
	return out, rows.Err()
}

// LastSeq returns the highest sequence number in a room.
func (db *DB) LastSeq(ctx context.Context, roomID string) (int64, error) {
	var seq int64
	if err := db.read.QueryRowContext(ctx, `SELECT last_seq FROM rooms WHERE id = ?`, roomID).Scan(&seq); err != nil {
		return 0, notFound(err, "room "+roomID)
	}
	return seq, nil
}

// UpdateMembership applies a membership change after u.Check approves it.
func (db *DB) UpdateMembership(ctx context.Context, u store.MembershipUpdate) (proto.Event, error) {
	var ev proto.Event
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var exists int
		if err := tx.QueryRow(`SELECT 1 FROM rooms WHERE id = ?`, u.RoomID).Scan(&exists); err != nil {
			return notFound(err, "room "+u.RoomID)
		}
		actor, err := memberOf(tx, u.RoomID, u.Actor)
		if err != nil {
			return fmt.Errorf("membership of %s: %w", u.Actor, err)
		}
		target, err := memberOf(tx, u.RoomID, u.Target)
		if err != nil {
			return fmt.Errorf("membership of %s: %w", u.Target, err)
		}
		if u.Check != nil {
			if err := u.Check(actor, target); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(`INSERT INTO members (room_id, user_id, room_role, membership) VALUES (?, ?, ?, ?)
			ON CONFLICT (room_id, user_id) DO UPDATE SET room_role = excluded.room_role, membership = excluded.membership`,
			u.RoomID, u.Target, u.RoomRole, u.Membership); err != nil {
			return fmt.Errorf("set membership of %s in %s: %w", u.Target, u.RoomID, err)
		}
		ev = proto.Event{RoomID: u.RoomID, Sender: u.Actor, DeviceID: u.DeviceID, Kind: proto.KindMember, Time: time.Now(),
			Member: &proto.MembershipChange{UserID: u.Target, Membership: u.Membership, RoomRole: u.RoomRole, By: u.Actor}}
		return db.appendEvent(tx, &ev, nil)
	})
	return ev, err
}

// AppendMessage adds a message to a room log; the sender must be joined.
func (db *DB) AppendMessage(ctx context.Context, a store.Append) (proto.Event, bool, error) {
	var ev proto.Event
	duplicate := false
	err := db.tx(ctx, func(tx *sql.Tx) error {
		check, err := db.stmt(tx, qCheckAppend)
		if err != nil {
			return err
		}
		var membership sql.NullString
		var prev sql.NullInt64
		var txn *string // NULL when there is no transaction id: matches nothing
		if a.TxnID != "" {
			txn = &a.TxnID
		}
		if err := check.QueryRow(a.RoomID, a.Sender, a.DeviceID, txn).Scan(&membership, &prev); err != nil {
			return fmt.Errorf("check append to %s: %w", a.RoomID, err)
		}
		if prev.Valid {
			// A repeated transaction: answer with the original event.
			q, err := db.stmt(tx, qEventByStream)
			if err != nil {
				return err
			}
			if ev, err = scanEvent(q.QueryRow(prev.Int64)); err != nil {
				return fmt.Errorf("look up transaction %s: %w", a.TxnID, err)
			}
			duplicate = true
			return nil
		}
		if membership.String != proto.MembershipJoin {
			return fmt.Errorf("%s is not a joined member of %s: %w", a.Sender, a.RoomID, store.ErrForbidden)
		}
		if a.Epoch != nil {
			if err := checkEpoch(tx, a.RoomID, *a.Epoch, a.Kind == proto.KindMLSCommit); err != nil {
				return err
			}
			if a.Kind == proto.KindMLSCommit && a.PublicGroup != nil {
				if _, err := tx.Exec(`UPDATE rooms SET mls_public_group = ? WHERE id = ?`, a.PublicGroup, a.RoomID); err != nil {
					return fmt.Errorf("store public group of %s: %w", a.RoomID, err)
				}
			}
		}
		ev = proto.Event{RoomID: a.RoomID, Sender: a.Sender, DeviceID: a.DeviceID, Kind: a.Kind, Body: a.Body, Time: time.Now()}
		return db.appendEvent(tx, &ev, txn)
	})
	return ev, duplicate, err
}

// checkEpoch fails with a *store.StaleEpochError if the room is not at
// epoch, and moves it to epoch+1 if advance is set: the hub accepts exactly
// one commit per epoch (RFC 9420 §14 leaves ordering to the Delivery
// Service), and application messages only for the current epoch, which every
// member can still decrypt.
func checkEpoch(tx *sql.Tx, roomID string, epoch uint64, advance bool) error {
	if advance {
		res, err := tx.Exec(`UPDATE rooms SET mls_epoch = mls_epoch + 1 WHERE id = ? AND mls_epoch = ?`, roomID, int64(epoch))
		if err != nil {
			return fmt.Errorf("advance epoch of %s: %w", roomID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
	}
	var current int64
	if err := tx.QueryRow(`SELECT mls_epoch FROM rooms WHERE id = ?`, roomID).Scan(&current); err != nil {
		return notFound(err, "room "+roomID)
	}
	if !advance && uint64(current) == epoch {
		return nil
	}
	return &store.StaleEpochError{Current: uint64(current), Got: epoch}
}

// History returns up to limit events of a room from fromSeq on.
func (db *DB) History(ctx context.Context, roomID string, fromSeq int64, limit int) ([]proto.Event, error) {
	return queryEvents(ctx, db.read, "history of "+roomID,
		`SELECT `+eventColumns+` FROM events WHERE room_id = ? AND seq >= ? ORDER BY seq LIMIT ?`, roomID, fromSeq, limit)
}

// StreamSince returns events after since from rooms the user has ever been in.
func (db *DB) StreamSince(ctx context.Context, userID string, since int64, limit int) ([]proto.Event, error) {
	return queryEvents(ctx, db.read, "stream of "+userID,
		`SELECT `+eventColumns+` FROM events WHERE stream > ? AND room_id IN (SELECT room_id FROM members WHERE user_id = ?) ORDER BY stream LIMIT ?`,
		since, userID, limit)
}

// MembershipEventsUpTo returns the user's member events up to a position.
func (db *DB) MembershipEventsUpTo(ctx context.Context, userID string, upTo int64) ([]proto.Event, error) {
	return queryEvents(ctx, db.read, "membership history of "+userID,
		`SELECT `+eventColumns+` FROM events WHERE target_user = ? AND stream <= ? ORDER BY stream`, userID, upTo)
}

// LatestStream returns the newest stream position, 0 if there is none.
func (db *DB) LatestStream(ctx context.Context) (int64, error) {
	var v int64
	if err := db.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(stream), 0) FROM events`).Scan(&v); err != nil {
		return 0, fmt.Errorf("latest stream position: %w", err)
	}
	return v, nil
}
