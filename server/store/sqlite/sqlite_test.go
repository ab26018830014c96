package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

func openTest(t testing.TB, onCommit func([]proto.Event)) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := Open(path, Options{OnCommit: onCommit})
	if err != nil {
		t.Fatal(err)
	}
	return db, path
}

func seedRoom(t testing.TB, db *DB, members ...string) string {
	t.Helper()
	ctx := context.Background()
	for _, u := range members {
		if err := db.CreateUser(ctx, store.User{ID: u, Role: "doctor", PasswordHash: "x", CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	room := "!RRRRRRRRRRRRRRRRRRRRRR:x.example"
	if _, err := db.CreateRoom(ctx, store.Room{ID: room, Hub: "x.example", Creator: members[0], CreatedAt: time.Now()}, "D0"); err != nil {
		t.Fatal(err)
	}
	for _, u := range members[1:] {
		for _, m := range []string{proto.MembershipInvite, proto.MembershipJoin} {
			if _, err := db.UpdateMembership(ctx, store.MembershipUpdate{RoomID: room, Actor: members[0], Target: u, Membership: m, RoomRole: proto.RoomRoleMember}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return room
}

// TestConcurrentAppendsAreGapFreeAndCommitHookIsOrdered sends from many
// goroutines at once: sequence numbers must be 1..n without gaps, the commit
// hook must see every event exactly once in stream order, and duplicate
// transaction ids must store once even when racing.
func TestConcurrentAppendsAreGapFreeAndCommitHookIsOrdered(t *testing.T) {
	var mu sync.Mutex
	var published []proto.Event
	db, _ := openTest(t, func(evs []proto.Event) {
		mu.Lock()
		published = append(published, evs...)
		mu.Unlock()
	})
	defer db.Close()
	room := seedRoom(t, db, "@a:x.example", "@b:x.example")
	const workers, each = 16, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Every message is sent twice with the same txn id.
				for range 2 {
					_, _, err := db.AppendMessage(context.Background(), store.Append{RoomID: room, Sender: "@a:x.example", DeviceID: "D0", TxnID: fmt.Sprintf("%d-%d", w, i), Kind: "mls-app", Body: []byte{byte(i)}})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	evs, err := db.History(context.Background(), room, 1, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3 + workers*each; len(evs) != want { // 3 membership events
		t.Fatalf("room has %d events, want %d", len(evs), want)
	}
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(published) != len(evs) {
		t.Fatalf("commit hook saw %d events, want %d", len(published), len(evs))
	}
	for i := 1; i < len(published); i++ {
		if published[i].Stream != published[i-1].Stream+1 {
			t.Fatalf("commit hook stream %d after %d", published[i].Stream, published[i-1].Stream)
		}
	}
}

func TestNonMemberCannotAppendAndFailedOpDoesNotSpoilBatch(t *testing.T) {
	db, _ := openTest(t, nil)
	defer db.Close()
	room := seedRoom(t, db, "@a:x.example")
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sender := "@a:x.example"
			if i%2 == 1 {
				sender = "@stranger:x.example"
			}
			_, _, errs[i] = db.AppendMessage(context.Background(), store.Append{RoomID: room, Sender: sender, TxnID: fmt.Sprint(i), Kind: "k"})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%2 == 1 && !errors.Is(err, store.ErrForbidden) {
			t.Errorf("stranger append %d: %v, want ErrForbidden", i, err)
		}
		if i%2 == 0 && err != nil {
			t.Errorf("member append %d: %v", i, err)
		}
	}
	last, _ := db.LastSeq(context.Background(), room)
	if last != 11 {
		t.Fatalf("last seq %d, want 11 (1 join + 10 member messages)", last)
	}
}

func TestDataSurvivesReopen(t *testing.T) {
	db, path := openTest(t, nil)
	room := seedRoom(t, db, "@a:x.example")
	if _, _, err := db.AppendMessage(context.Background(), store.Append{RoomID: room, Sender: "@a:x.example", TxnID: "1", Kind: "k", Body: []byte("ct")}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	evs, err := db2.History(context.Background(), room, 1, 10)
	if err != nil || len(evs) != 2 || string(evs[1].Body) != "ct" {
		t.Fatalf("after reopen: %+v, %v", evs, err)
	}
	if _, _, err := db2.AppendMessage(context.Background(), store.Append{}); err == nil {
		t.Fatal("append to empty room id succeeded")
	}
}

// BenchmarkAppendConcurrent measures group-committed appends of 1 KiB
// messages from 64 concurrent senders (one fsync per batch).
func BenchmarkAppendConcurrent(b *testing.B) {
	db, _ := openTest(b, nil)
	defer db.Close()
	room := seedRoom(b, db, "@a:x.example")
	body := make([]byte, 1024)
	var n sync.Mutex
	i := 0
	b.SetParallelism(32)
	b.ResetTimer()
	cpu0 := processCPU()
	defer func() {
		b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		ws := db.WriteStats()
		b.ReportMetric(float64(ws.Ops)/float64(ws.Batches), "ops/commit")
	}()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			i++
			txn := fmt.Sprint(i)
			n.Unlock()
			if _, _, err := db.AppendMessage(context.Background(), store.Append{RoomID: room, Sender: "@a:x.example", TxnID: txn, Kind: "k", Body: body}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// processCPU is the CPU time (user and system) this process has used, a
// measure that, unlike wall time, other load on the machine barely changes.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
