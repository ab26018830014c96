package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

// serverOf returns the server part of a user id ("@u:server").
func serverOf(userID string) string {
	_, s, _ := strings.Cut(userID, ":")
	return s
}

// fanOut queues a hub's new event for every other server with a member
// (invited or joined) in the room, and for the server of a member event's
// remote target (so that a removed user's server learns it), in the same
// transaction as the event itself.
func (db *DB) fanOut(tx *sql.Tx, ev *proto.Event) error {
	rows, err := tx.Query(`SELECT DISTINCT substr(user_id, instr(user_id, ':') + 1) FROM members
		WHERE room_id = ? AND membership IN ('join', 'invite')`, ev.RoomID)
	if err != nil {
		return fmt.Errorf("servers of %s: %w", ev.RoomID, err)
	}
	dests := map[string]bool{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return err
		}
		dests[s] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if ev.Member != nil {
		dests[serverOf(ev.Member.UserID)] = true
	}
	delete(dests, db.serverName)
	if len(dests) == 0 {
		return nil
	}
	if _, err := tx.Exec(`UPDATE rooms SET federated = 1 WHERE id = ? AND federated = 0`, ev.RoomID); err != nil {
		return err
	}
	item, err := json.Marshal(proto.FedItem{Kind: proto.FedItemEvent, Event: ev})
	if err != nil {
		return err
	}
	for d := range dests {
		if err := db.enqueue(tx, d, item); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) enqueue(tx *sql.Tx, dest string, item []byte) error {
	if _, err := tx.Exec(`INSERT INTO fed_outbound (destination, item, created) VALUES (?, ?, ?)`, dest, item, ms(time.Now())); err != nil {
		return fmt.Errorf("queue for %s: %w", dest, err)
	}
	db.federating[dest] = true
	return nil
}

// EnqueueFederation queues an item (a device message) for a destination.
func (db *DB) EnqueueFederation(ctx context.Context, dest string, item proto.FedItem) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		b, err := json.Marshal(item)
		if err != nil {
			return err
		}
		return db.enqueue(tx, dest, b)
	})
}

// FederationDestinations lists the destinations with queued items.
func (db *DB) FederationDestinations(ctx context.Context) ([]string, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT DISTINCT destination FROM fed_outbound`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// FederationPending returns up to limit queued items for dest, oldest first.
func (db *DB) FederationPending(ctx context.Context, dest string, limit int) ([]store.FedOutbound, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, item FROM fed_outbound WHERE destination = ? ORDER BY id LIMIT ?`, dest, limit)
	if err != nil {
		return nil, fmt.Errorf("queue of %s: %w", dest, err)
	}
	defer rows.Close()
	var out []store.FedOutbound
	for rows.Next() {
		var o store.FedOutbound
		var b []byte
		if err := rows.Scan(&o.ID, &b); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &o.Item); err != nil {
			return nil, fmt.Errorf("queued item %d: %w", o.ID, err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// FederationDelivered deletes dest's queued items up to id.
func (db *DB) FederationDelivered(ctx context.Context, dest string, upTo int64) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`DELETE FROM fed_outbound WHERE destination = ? AND id <= ?`, dest, upTo)
		return err
	})
}

// FederationBacklog returns how many items are queued per destination.
func (db *DB) FederationBacklog(ctx context.Context) (map[string]int, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT destination, COUNT(*) FROM fed_outbound GROUP BY destination`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var d string
		var n int
		if err := rows.Scan(&d, &n); err != nil {
			return nil, err
		}
		out[d] = n
	}
	return out, rows.Err()
}

// ApplyRemoteEvent stores one event of a followed room (see
// ApplyRemoteEvents).
func (db *DB) ApplyRemoteEvent(ctx context.Context, hub string, ev proto.Event) (bool, error) {
	res, err := db.ApplyRemoteEvents(ctx, hub, []proto.Event{ev})
	if err != nil {
		return false, err
	}
	return res[0].Applied, res[0].Err
}

// ApplyRemoteEvents stores events of rooms whose hub is another server, as
// a follower, in one transaction (one fsync for a whole federation
// transaction): a room is created on its first event; an event already
// stored (same room and sequence number) is a repeat and changes nothing;
// member events update the membership. An event of a room whose hub is not
// hub is refused (store.ErrForbidden in its result). At an event that does
// not follow its room's last one, it stops: that result holds a
// *store.GapError and the events after it are not looked at (their results
// are zero); everything before is stored.
func (db *DB) ApplyRemoteEvents(ctx context.Context, hub string, evs []proto.Event) ([]store.ApplyResult, error) {
	res := make([]store.ApplyResult, len(evs))
	err := db.tx(ctx, func(tx *sql.Tx) error {
		clear(res)
		for i, ev := range evs {
			applied, err := db.applyRemote(tx, hub, ev)
			var gap *store.GapError
			if errors.As(err, &gap) || errors.Is(err, store.ErrForbidden) {
				res[i].Err = err
				if gap != nil {
					return nil
				}
				continue
			}
			if err != nil {
				return err
			}
			res[i].Applied = applied
		}
		return nil
	})
	return res, err
}

func (db *DB) applyRemote(tx *sql.Tx, hub string, ev proto.Event) (bool, error) {
	var last int64
	var roomHub string
	err := tx.QueryRow(`SELECT last_seq, hub FROM rooms WHERE id = ?`, ev.RoomID).Scan(&last, &roomHub)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.Exec(`INSERT INTO rooms (id, hub, name, creator, created_at) VALUES (?, ?, '', ?, ?)`,
			ev.RoomID, hub, ev.Sender, ms(ev.Time)); err != nil {
			return false, fmt.Errorf("create followed room %s: %w", ev.RoomID, err)
		}
		last, roomHub = 0, hub
	} else if err != nil {
		return false, err
	}
	if roomHub != hub {
		return false, fmt.Errorf("room %s has hub %s, not %s: %w", ev.RoomID, roomHub, hub, store.ErrForbidden)
	}
	if ev.Seq <= last {
		return false, nil
	}
	if ev.Seq != last+1 {
		return false, &store.GapError{Last: last, Got: ev.Seq}
	}
	if _, err := tx.Exec(`UPDATE rooms SET last_seq = ? WHERE id = ?`, ev.Seq, ev.RoomID); err != nil {
		return false, err
	}
	var target, membership, roomRole any
	if ev.Member != nil {
		target, membership, roomRole = ev.Member.UserID, ev.Member.Membership, ev.Member.RoomRole
		granted := ev.Member.Membership
		if granted == proto.MembershipJoin && serverOf(ev.Member.UserID) == db.serverName {
			// A hub may invite our users, but they join only by asking
			// (DESIGN principle 2): without a request of theirs, the join
			// counts as an invitation here.
			res, err := tx.Exec(`DELETE FROM fed_join_requests WHERE room_id = ? AND user_id = ?`, ev.RoomID, ev.Member.UserID)
			if err != nil {
				return false, err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				granted = proto.MembershipInvite
				db.log.Warn("a hub joined a local user who did not ask; recorded as an invitation", "room", ev.RoomID, "user", ev.Member.UserID)
			}
		}
		if _, err := tx.Exec(`INSERT INTO members (room_id, user_id, room_role, membership) VALUES (?, ?, ?, ?)
			ON CONFLICT (room_id, user_id) DO UPDATE SET room_role = excluded.room_role, membership = excluded.membership`,
			ev.RoomID, ev.Member.UserID, ev.Member.RoomRole, granted); err != nil {
			return false, fmt.Errorf("apply membership in %s: %w", ev.RoomID, err)
		}
	}
	e := ev
	err = tx.QueryRow(`INSERT INTO events (room_id, seq, sender, device_id, txn_id, kind, body, ts, target_user, membership, room_role)
		VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?) RETURNING stream`,
		e.RoomID, e.Seq, e.Sender, e.DeviceID, e.Kind, e.Body, ms(e.Time), target, membership, roomRole).Scan(&e.Stream)
	if err != nil {
		return false, fmt.Errorf("store event %d of %s: %w", e.Seq, e.RoomID, err)
	}
	db.committing = append(db.committing, e)
	return true, nil
}

// DeliverRemoteDeviceMessage queues a device message that came over
// federation for a local device; a repeat is stored
// once (same sender, device, transaction and target).
func (db *DB) DeliverRemoteDeviceMessage(ctx context.Context, origin string, m proto.FedDeviceMessage) (bool, error) {
	var n int64
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var exists int
		if err := tx.QueryRow(`SELECT COUNT(*) FROM devices WHERE user_id = ? AND device_id = ?`, m.UserID, m.DeviceID).Scan(&exists); err != nil {
			return err
		}
		if exists == 0 {
			return fmt.Errorf("no device %s of %s: %w", m.DeviceID, m.UserID, store.ErrNotFound)
		}
		res, err := tx.Exec(`INSERT INTO device_messages (target_user, target_device, sender, sender_device, txn_id, kind, body, ts)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			m.UserID, m.DeviceID, m.Sender, m.SenderDevice, fmt.Sprintf("fed:%s:%s", origin, m.Txn), m.Kind, m.Body, ms(time.Now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n == 1, err
}

// RecordRemoteMedia notes that a blob fetched from origin belongs to room.
func (db *DB) RecordRemoteMedia(ctx context.Context, sha, roomID, origin string, size int64) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO media (sha256, room_id, size, uploader, ts) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			sha, roomID, size, "@remote:"+origin, ms(time.Now())); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO media_remote (sha256, room_id, origin) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, sha, roomID, origin)
		return err
	})
}

// ServerHasMember reports whether a user of server is invited to or joined
// in the room.
func (db *DB) ServerHasMember(ctx context.Context, roomID, server string) (bool, error) {
	var n int
	err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM members WHERE room_id = ? AND membership IN ('join', 'invite')
		AND substr(user_id, instr(user_id, ':') + 1) = ?`, roomID, server).Scan(&n)
	return n > 0, err
}

// MediaInRoom returns the media record of a blob posted in a room.
func (db *DB) MediaInRoom(ctx context.Context, sha256, roomID string) (store.Media, error) {
	var m store.Media
	var ts int64
	err := db.read.QueryRowContext(ctx, `SELECT sha256, room_id, size, uploader, ts FROM media WHERE sha256 = ? AND room_id = ?`, sha256, roomID).
		Scan(&m.SHA256, &m.RoomID, &m.Size, &m.Uploader, &ts)
	if err != nil {
		return store.Media{}, notFound(err, "media "+sha256+" in "+roomID)
	}
	m.Time = fromMS(ts)
	return m, nil
}

// RequestJoin records that a local user asked to join a followed room, so
// that the hub's join event for them is honoured (see ApplyRemoteEvents).
func (db *DB) RequestJoin(ctx context.Context, roomID, userID string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`INSERT INTO fed_join_requests (room_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING`, roomID, userID)
		return err
	})
}
