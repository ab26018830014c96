package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

func openFollower(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "follower.db"), Options{ServerName: "b.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func memberEvent(room string, seq int64, user, membership string) proto.Event {
	return proto.Event{RoomID: room, Seq: seq, Sender: "@mod:a.test", Kind: proto.KindMember, Time: time.Now(),
		Member: &proto.MembershipChange{UserID: user, Membership: membership, RoomRole: proto.RoomRoleMember, By: "@mod:a.test"}}
}

func TestFollowerAppliesInOrderOnceAndStopsAtGaps(t *testing.T) {
	ctx := context.Background()
	db := openFollower(t)
	room := "!abcdefghijklmnopqr:a.test"
	evs := []proto.Event{memberEvent(room, 1, "@mod:a.test", proto.MembershipJoin), {RoomID: room, Seq: 2, Sender: "@mod:a.test", Kind: proto.KindMLSApp, Body: []byte("ct"), Time: time.Now()}}
	res, err := db.ApplyRemoteEvents(ctx, "a.test", evs)
	if err != nil || !res[0].Applied || !res[1].Applied {
		t.Fatalf("first delivery: %+v %v", res, err)
	}
	res, err = db.ApplyRemoteEvents(ctx, "a.test", evs)
	if err != nil || res[0].Applied || res[1].Applied || res[0].Err != nil {
		t.Fatalf("repeated delivery: %+v %v", res, err)
	}
	res, _ = db.ApplyRemoteEvents(ctx, "a.test", []proto.Event{{RoomID: room, Seq: 5, Sender: "@mod:a.test", Kind: proto.KindMLSApp, Time: time.Now()}})
	var gap *store.GapError
	if !errors.As(res[0].Err, &gap) || gap.Last != 2 {
		t.Fatalf("gap: %+v", res)
	}
	res, _ = db.ApplyRemoteEvents(ctx, "c.test", []proto.Event{{RoomID: room, Seq: 3, Sender: "@x:c.test", Kind: proto.KindMLSApp, Time: time.Now()}})
	if !errors.Is(res[0].Err, store.ErrForbidden) {
		t.Fatalf("another server's event for a room of a.test: %+v", res)
	}
	if last, _ := db.LastSeq(ctx, room); last != 2 {
		t.Fatalf("last seq %d, want 2", last)
	}
}

func TestHubCannotJoinALocalUserWhoDidNotAsk(t *testing.T) {
	ctx := context.Background()
	db := openFollower(t)
	room := "!abcdefghijklmnopqr:a.test"
	if _, err := db.ApplyRemoteEvents(ctx, "a.test", []proto.Event{
		memberEvent(room, 1, "@mod:a.test", proto.MembershipJoin),
		memberEvent(room, 2, "@bob:b.test", proto.MembershipJoin), // bob never asked
	}); err != nil {
		t.Fatal(err)
	}
	if m, _ := db.Member(ctx, room, "@bob:b.test"); m.Membership != proto.MembershipInvite {
		t.Fatalf("unrequested join recorded as %q, want invite", m.Membership)
	}
	if err := db.RequestJoin(ctx, room, "@bob:b.test"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ApplyRemoteEvent(ctx, "a.test", memberEvent(room, 3, "@bob:b.test", proto.MembershipJoin)); err != nil {
		t.Fatal(err)
	}
	if m, _ := db.Member(ctx, room, "@bob:b.test"); m.Membership != proto.MembershipJoin {
		t.Fatalf("requested join recorded as %q", m.Membership)
	}
	// Remote users' joins are the hub's to decide.
	if _, err := db.ApplyRemoteEvent(ctx, "a.test", memberEvent(room, 4, "@carol:c.test", proto.MembershipJoin)); err != nil {
		t.Fatal(err)
	}
	if m, _ := db.Member(ctx, room, "@carol:c.test"); m.Membership != proto.MembershipJoin {
		t.Fatalf("remote join recorded as %q", m.Membership)
	}
}
