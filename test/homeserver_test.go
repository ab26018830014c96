package test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/proto"
)

// collector reads a sync connection in the background.
type collector struct {
	mu     sync.Mutex
	events []proto.Event
	dms    []proto.DeviceMessage
	cursor int64
	caught bool
	err    error
	cond   chan struct{}
}

func collect(t *testing.T, s *api.Sync) *collector {
	c := &collector{cond: make(chan struct{}, 1)}
	go func() {
		for {
			f, err := s.Next()
			c.mu.Lock()
			if err != nil {
				c.err = err
				c.mu.Unlock()
				c.signal()
				return
			}
			switch f.Type {
			case proto.FrameEvents:
				c.events = append(c.events, f.Events...)
				if n := len(f.Events); n > 0 {
					c.cursor = f.Events[n-1].Stream
				}
			case proto.FrameCaughtUp:
				c.caught = true
				c.cursor = max(c.cursor, f.Stream)
			case proto.FrameDeviceMessage:
				c.dms = append(c.dms, *f.DeviceMessage)
			}
			c.mu.Unlock()
			c.signal()
		}
	}()
	return c
}

func (c *collector) signal() {
	select {
	case c.cond <- struct{}{}:
	default:
	}
}

// waitFor waits until pred holds for the collected state, or fails.
func (c *collector) waitFor(t *testing.T, what string, pred func(c *collector) bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		c.mu.Lock()
		ok, err := pred(c), c.err
		c.mu.Unlock()
		if ok {
			return
		}
		if err != nil {
			t.Fatalf("waiting for %s: sync ended: %v", what, err)
		}
		select {
		case <-c.cond:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (c *collector) roomEvents(room, kind string) []proto.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []proto.Event
	for _, e := range c.events {
		if e.RoomID == room && (kind == "" || e.Kind == kind) {
			out = append(out, e)
		}
	}
	return out
}

func countKind(c *collector, room, kind string) int {
	n := 0
	for _, e := range c.events {
		if e.RoomID == room && e.Kind == kind {
			n++
		}
	}
	return n
}

// twoDoctorsInARoom starts a homeserver (config edited by edit, if not nil)
// with doctors alice and bob logged in and joined to alice's room.
func twoDoctorsInARoom(t *testing.T, edit func(string) string) (hs *homeserver, alice, bob *api.Client, room string) {
	t.Helper()
	hs = newHomeserver(t, "uk-freiburg.example", edit)
	a, b := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	alice, bob = hs.login(a), hs.login(b)
	return hs, alice, bob, setupRoom(t, alice, bob)
}

// setupRoom creates a room of alice's with bob joined.
func setupRoom(t *testing.T, alice, bob *api.Client) string {
	t.Helper()
	ctx := ctxT(t)
	room, err := alice.CreateRoom(ctx, "Zweitmeinung")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Invite(ctx, room, bob.UserID); err != nil {
		t.Fatal(err)
	}
	if err := bob.Join(ctx, room); err != nil {
		t.Fatal(err)
	}
	return room
}

func TestTwoUsersExchange1000MessagesAndSeeTheSameOrder(t *testing.T) {
	hs, ca, cb, room := twoDoctorsInARoom(t, nil)
	ctx := ctxT(t)
	sa, err := ca.Sync(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := cb.Sync(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	colA, colB := collect(t, sa), collect(t, sb)

	seal := newSealer(t)
	marker := "PLAINTEXT-MARKER-befund-"
	const perUser = 500
	var wg sync.WaitGroup
	for i, c := range []*api.Client{ca, cb} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range perUser {
				body := seal.seal(fmt.Appendf(nil, "%s%d-%d", marker, i, n))
				if _, err := c.Send(ctx, room, fmt.Sprintf("t%d-%d", i, n), proto.KindMLSApp, body); err != nil {
					t.Errorf("send: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, col := range []*collector{colA, colB} {
		col.waitFor(t, "1000 messages", func(c *collector) bool { return countKind(c, room, proto.KindMLSApp) == 2*perUser })
	}
	ea, eb := colA.roomEvents(room, proto.KindMLSApp), colB.roomEvents(room, proto.KindMLSApp)
	for i := range ea {
		if ea[i].Seq != eb[i].Seq || !bytes.Equal(ea[i].Body, eb[i].Body) {
			t.Fatalf("event %d differs: alice sees seq %d, bob sees seq %d", i, ea[i].Seq, eb[i].Seq)
		}
		if i > 0 && ea[i].Seq <= ea[i-1].Seq {
			t.Fatalf("sequence numbers not increasing at %d: %d after %d", i, ea[i].Seq, ea[i-1].Seq)
		}
		if !strings.HasPrefix(string(seal.open(t, ea[i].Body)), marker) {
			t.Fatal("decrypted body lacks the marker")
		}
	}
	// History over HTTP has the same order.
	var hist []proto.Event
	for from := int64(1); from != 0; {
		h, err := cb.History(ctx, room, from, 300)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h.Events {
			if e.Kind == proto.KindMLSApp {
				hist = append(hist, e)
			}
		}
		from = h.Next
	}
	if len(hist) != len(ea) {
		t.Fatalf("history has %d messages, sync %d", len(hist), len(ea))
	}
	for i := range hist {
		if hist[i].Seq != ea[i].Seq {
			t.Fatalf("history order differs at %d", i)
		}
	}
	hs.assertNoPlaintext([]byte(marker))
}

func TestReconnectWithCursorGetsExactlyTheMissedMessages(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "nurse")
	hs.start()
	ca, cb := hs.login(alice), hs.login(bob)
	room := setupRoom(t, ca, cb)
	ctx := ctxT(t)
	seal := newSealer(t)
	send := func(from, to int) {
		for n := from; n < to; n++ {
			if _, err := ca.Send(ctx, room, fmt.Sprintf("m%d", n), proto.KindMLSApp, seal.seal(fmt.Appendf(nil, "RECONNECT-MARKER %d", n))); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(0, 10)
	s1, err := cb.Sync(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	col1 := collect(t, s1)
	col1.waitFor(t, "first 10", func(c *collector) bool { return c.caught && countKind(c, room, proto.KindMLSApp) == 10 })
	col1.mu.Lock()
	cursor := col1.cursor
	col1.mu.Unlock()
	s1.Close()

	send(10, 60) // while bob is away

	s2, err := cb.Sync(ctx, cursor)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	col2 := collect(t, s2)
	col2.waitFor(t, "caught up", func(c *collector) bool { return c.caught })
	send(60, 70) // live after the reconnect
	col2.waitFor(t, "70 in all", func(c *collector) bool { return countKind(c, room, proto.KindMLSApp) >= 60 })
	got := col2.roomEvents(room, "")
	if len(got) != 60 {
		t.Fatalf("after reconnect got %d events, want exactly the 60 missed and new ones", len(got))
	}
	seen := map[int64]bool{}
	for i, e := range got {
		if seen[e.Seq] {
			t.Fatalf("duplicate seq %d", e.Seq)
		}
		seen[e.Seq] = true
		if e.Stream <= cursor {
			t.Fatalf("event at stream %d is not after the cursor %d", e.Stream, cursor)
		}
		if i > 0 && e.Seq != got[i-1].Seq+1 {
			t.Fatalf("gap: seq %d after %d", e.Seq, got[i-1].Seq)
		}
		if want := fmt.Sprintf("RECONNECT-MARKER %d", 10+i); string(seal.open(t, e.Body)) != want {
			t.Fatalf("event %d = %q, want %q", i, seal.open(t, e.Body), want)
		}
	}
	hs.assertNoPlaintext([]byte("RECONNECT-MARKER"))
}

func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	hs, ca, cb, room := twoDoctorsInARoom(t, nil)
	seal := newSealer(t)

	type acked struct {
		seq  int64
		body []byte
	}
	var mu sync.Mutex
	var ok []acked
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				body := seal.seal(fmt.Appendf(nil, "KILL-MARKER %d/%d", w, n))
				c := []*api.Client{ca, cb}[w%2]
				r, err := c.Send(ctx, room, fmt.Sprintf("w%d-%d", w, n), proto.KindMLSApp, body)
				if err != nil {
					return // the server died under us: this one was not acknowledged
				}
				mu.Lock()
				ok = append(ok, acked{r.Seq, body})
				mu.Unlock()
			}
		}()
	}
	// Let traffic flow until a good number of messages were acknowledged.
	for {
		mu.Lock()
		n := len(ok)
		mu.Unlock()
		if n >= 300 {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, not synchronising
	}
	hs.stop(syscall.SIGKILL)
	cancel()
	wg.Wait()

	hs.start()
	c := hs.login(cb.UserID)
	stored := map[int64][]byte{}
	for from := int64(1); from != 0; {
		h, err := c.History(ctxT(t), room, from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h.Events {
			stored[e.Seq] = e.Body
		}
		from = h.Next
	}
	for _, a := range ok {
		if !bytes.Equal(stored[a.seq], a.body) {
			t.Fatalf("acknowledged message seq %d lost or changed after SIGKILL", a.seq)
		}
	}
	t.Logf("%d acknowledged messages all present after SIGKILL and restart (%d stored)", len(ok), len(stored))
	hs.assertNoPlaintext([]byte("KILL-MARKER"))
}

func TestDuplicateTransactionIDStoresOnce(t *testing.T) {
	hs, ca, cb, room := twoDoctorsInARoom(t, nil)
	ctx := ctxT(t)
	seal := newSealer(t)
	body := seal.seal([]byte("DUP-MARKER"))
	first, err := ca.Send(ctx, room, "txn-1", proto.KindMLSApp, body)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		again, err := ca.Send(ctx, room, "txn-1", proto.KindMLSApp, body)
		if err != nil {
			t.Fatal(err)
		}
		if again != first {
			t.Fatalf("resend returned %+v, first send %+v", again, first)
		}
	}
	// The same txn id from another user is a different transaction.
	other, err := cb.Send(ctx, room, "txn-1", proto.KindMLSApp, body)
	if err != nil || other.Seq == first.Seq {
		t.Fatalf("other user's txn-1 = %+v, %v", other, err)
	}
	h, err := ca.History(ctx, room, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.Events); n != 5 { // creator join, invite, join, 2 messages
		t.Fatalf("history has %d events, want 5 (the message stored once per sender)", n)
	}
	hs.assertNoPlaintext([]byte("DUP-MARKER"))
}

func TestRoomPolicy(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	doc, nurse, pat, pat2, bot := hs.addUser("doc", "doctor"), hs.addUser("nurse", "nurse"), hs.addUser("pat", "patient"), hs.addUser("pat2", "patient"), hs.addUser("bot", "bot")
	hs.start()
	cd, cn, cp, cbot := hs.login(doc), hs.login(nurse), hs.login(pat), hs.login(bot)
	ctx := ctxT(t)
	if _, err := cp.CreateRoom(ctx, "x"); !api.IsCode(err, proto.ErrForbidden) {
		t.Fatalf("patient create room: %v, want M_FORBIDDEN", err)
	}
	room, err := cd.CreateRoom(ctx, "Aufklärung")
	if err != nil {
		t.Fatal(err)
	}
	if err := cd.Invite(ctx, room, pat); err != nil {
		t.Fatal(err)
	}
	if err := cp.Join(ctx, room); err != nil {
		t.Fatal(err)
	}
	if err := cp.Invite(ctx, room, pat2); !api.IsCode(err, proto.ErrForbidden) {
		t.Fatalf("patient invite: %v, want M_FORBIDDEN", err)
	}
	// A bot joins only rooms it is invited to.
	if err := cbot.Join(ctx, room); !api.IsCode(err, proto.ErrForbidden) {
		t.Fatalf("uninvited bot join: %v, want M_FORBIDDEN", err)
	}
	// Only moderators add or remove.
	if err := cd.Invite(ctx, room, nurse); err != nil {
		t.Fatal(err)
	}
	if err := cn.Join(ctx, room); err != nil {
		t.Fatal(err)
	}
	if err := cn.Invite(ctx, room, bot); !api.IsCode(err, proto.ErrForbidden) {
		t.Fatalf("non-moderator invite: %v, want M_FORBIDDEN", err)
	}
	if err := cn.Remove(ctx, room, pat); !api.IsCode(err, proto.ErrForbidden) {
		t.Fatalf("non-moderator remove: %v, want M_FORBIDDEN", err)
	}
	if err := cd.Invite(ctx, room, bot); err != nil {
		t.Fatal(err)
	}
	if err := cbot.Join(ctx, room); err != nil {
		t.Fatalf("invited bot join: %v", err)
	}
	if err := cd.Remove(ctx, room, pat); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Send(ctx, room, "t", proto.KindMLSApp, []byte{1}); !api.IsCode(err, proto.ErrForbidden) {
		t.Fatalf("removed patient send: %v, want M_FORBIDDEN", err)
	}
	rooms, err := cd.Rooms(ctx)
	if err != nil || len(rooms) != 1 {
		t.Fatalf("rooms: %+v, %v", rooms, err)
	}
	roles := map[string]string{}
	for _, m := range rooms[0].Members {
		roles[m.UserID] = m.RoomRole + "/" + m.Role + "/" + m.Membership
	}
	want := map[string]string{doc: "moderator/doctor/join", nurse: "member/nurse/join", bot: "member/bot/join"}
	if fmt.Sprint(roles) != fmt.Sprint(want) {
		t.Fatalf("members = %v, want %v", roles, want)
	}
}

func TestNonMembersCannotReadRoomsOrDownloadMedia(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob, eve := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor"), hs.addUser("eve", "doctor")
	hs.start()
	ca, cb, ce := hs.login(alice), hs.login(bob), hs.login(eve)
	room := setupRoom(t, ca, cb)
	ctx := ctxT(t)
	seal := newSealer(t)
	if _, err := ca.Send(ctx, room, "1", proto.KindMLSApp, seal.seal([]byte("MEDIA-ROOM-MARKER"))); err != nil {
		t.Fatal(err)
	}
	img := bytes.Repeat([]byte("MEDIA-PLAINTEXT-MARKER röntgen "), 40000) // ~1.2 MB
	blob := seal.seal(img)
	up, err := ca.UploadMedia(ctx, room, bytes.NewReader(blob), int64(len(blob)))
	if err != nil {
		t.Fatal(err)
	}
	if up.Size != int64(len(blob)) || len(up.MediaID) != 64 {
		t.Fatalf("upload = %+v", up)
	}
	if _, err := ce.History(ctx, room, 1, 10); !api.IsCode(err, proto.ErrForbidden) {
		t.Fatalf("non-member history: %v, want M_FORBIDDEN", err)
	}
	if _, err := ce.DownloadMedia(ctx, up.MediaID, -1, -1); !api.IsCode(err, proto.ErrNotFound) {
		t.Fatalf("non-member download: %v, want M_NOT_FOUND", err)
	}
	if _, err := ce.UploadMedia(ctx, room, bytes.NewReader([]byte("x")), 1); !api.IsCode(err, proto.ErrForbidden) {
		t.Fatalf("non-member upload: %v, want M_FORBIDDEN", err)
	}
	full, err := cb.DownloadMedia(ctx, up.MediaID, -1, -1)
	if err != nil || !bytes.Equal(full, blob) {
		t.Fatalf("member download: %d bytes, %v", len(full), err)
	}
	part, err := cb.DownloadMedia(ctx, up.MediaID, 1000, 1999)
	if err != nil || !bytes.Equal(part, blob[1000:2000]) {
		t.Fatalf("range download: %d bytes, %v", len(part), err)
	}
	if !bytes.Equal(seal.open(t, full), img) {
		t.Fatal("downloaded media does not decrypt to the image")
	}
	// After removal, bob loses access.
	if err := ca.Remove(ctx, room, bob); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.DownloadMedia(ctx, up.MediaID, -1, -1); !api.IsCode(err, proto.ErrNotFound) {
		t.Fatalf("removed member download: %v, want M_NOT_FOUND", err)
	}
	hs.assertNoPlaintext([]byte("MEDIA-PLAINTEXT-MARKER"))
	hs.assertNoPlaintext([]byte("MEDIA-ROOM-MARKER"))
}

func TestOversizedBodiesAreRefusedAndChangeNothing(t *testing.T) {
	hs, ca, _, room := twoDoctorsInARoom(t, func(cfg string) string {
		return setConfig(t, cfg, "max_media_bytes = 104857600", "max_media_bytes = 200000")
	})
	ctx := ctxT(t)
	before, err := ca.History(ctx, room, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Send(ctx, room, "big", proto.KindMLSApp, make([]byte, 1<<20+1)); !api.IsCode(err, proto.ErrTooLarge) {
		t.Fatalf("1 MiB + 1 message: %v, want M_TOO_LARGE", err)
	}
	if _, err := ca.Send(ctx, room, "max", proto.KindMLSApp, make([]byte, 1<<20)); err != nil {
		t.Fatalf("message of exactly 1 MiB refused: %v", err)
	}
	if _, err := ca.UploadMedia(ctx, room, bytes.NewReader(make([]byte, 200001)), 200001); !api.IsCode(err, proto.ErrTooLarge) {
		t.Fatalf("oversized media with length: %v, want M_TOO_LARGE", err)
	}
	if _, err := ca.UploadMedia(ctx, room, bytes.NewReader(make([]byte, 300000)), -1); !api.IsCode(err, proto.ErrTooLarge) {
		t.Fatalf("oversized chunked media: %v, want M_TOO_LARGE", err)
	}
	after, err := ca.History(ctx, room, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Events) != len(before.Events)+1 {
		t.Fatalf("history grew from %d to %d events; only the 1 MiB message should have been stored", len(before.Events), len(after.Events))
	}
	// Malformed JSON and unknown fields are refused with M_BAD_JSON.
	req, _ := http.NewRequest(http.MethodPost, "https://"+hs.addr+"/v1/rooms", strings.NewReader(`{"name": 1}`))
	req.Header.Set("Authorization", "Bearer "+ca.Token())
	resp, err := httpClient(hs).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed body: HTTP %d, want 400", resp.StatusCode)
	}
}

func httpClient(hs *homeserver) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(hs)}}
}

func TestKeyPackagesAreClaimedOncePerDeviceAndLastResortRepeats(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	ca := hs.login(alice)
	b1, b2 := hs.login(bob), hs.login(bob) // two devices
	ctx := ctxT(t)
	if _, err := b1.UploadKeyPackages(ctx, [][]byte{[]byte("kp-b1-1"), []byte("kp-b1-2")}, []byte("kp-b1-last")); err != nil {
		t.Fatal(err)
	}
	if _, err := b2.UploadKeyPackages(ctx, [][]byte{[]byte("kp-b2-1")}, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range 4 {
		r, err := ca.ClaimKeyPackages(ctx, bob)
		if err != nil && !api.IsCode(err, proto.ErrNoKeyPackage) {
			t.Fatal(err)
		}
		for _, kp := range r.KeyPackages {
			seen[string(kp.KeyPackage)]++
		}
	}
	want := map[string]int{"kp-b1-1": 1, "kp-b1-2": 1, "kp-b1-last": 2, "kp-b2-1": 1}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("claimed %v, want %v", seen, want)
	}
	cnt, err := b1.CountKeyPackages(ctx)
	if err != nil || cnt.Unclaimed != 0 || !cnt.HasLastResort {
		t.Fatalf("count = %+v, %v", cnt, err)
	}
}

func TestDeviceMessagesAreDeliveredUntilAcknowledged(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	ca, cb := hs.login(alice), hs.login(bob)
	ctx := ctxT(t)
	seal := newSealer(t)
	welcome := seal.seal([]byte("WELCOME-MARKER"))
	if err := ca.SendToDevice(ctx, "dm1", []proto.OutgoingDeviceMessage{{UserID: bob, DeviceID: cb.Device, Kind: proto.KindMLSWelcome, Body: welcome}}); err != nil {
		t.Fatal(err)
	}
	if err := ca.SendToDevice(ctx, "dm2", []proto.OutgoingDeviceMessage{{UserID: bob, DeviceID: "NOSUCHDEV", Kind: "x", Body: []byte{1}}}); !api.IsCode(err, proto.ErrNotFound) {
		t.Fatalf("message to unknown device: %v, want M_NOT_FOUND", err)
	}
	s1, err := cb.Sync(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, s1)
	col.waitFor(t, "welcome", func(c *collector) bool { return len(c.dms) == 1 })
	if !bytes.Equal(col.dms[0].Body, welcome) || col.dms[0].Sender != alice {
		t.Fatalf("device message = %+v", col.dms[0])
	}
	s1.Close()
	// Not acknowledged: delivered again on the next connection, then acked.
	s2, err := cb.Sync(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	col2 := collect(t, s2)
	col2.waitFor(t, "welcome again", func(c *collector) bool { return len(c.dms) == 1 })
	if err := s2.Ack(col2.dms[0].ID); err != nil {
		t.Fatal(err)
	}
	// A live message after the ack arrives on the same connection.
	if err := ca.SendToDevice(ctx, "dm3", []proto.OutgoingDeviceMessage{{UserID: bob, DeviceID: cb.Device, Kind: "call-invite", Body: seal.seal([]byte("x"))}}); err != nil {
		t.Fatal(err)
	}
	col2.waitFor(t, "live message", func(c *collector) bool { return len(c.dms) == 2 })
	if err := s2.Ack(col2.dms[1].ID); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if err := cb.AckDeviceMessages(ctx, col2.dms[1].ID); err != nil {
		t.Fatal(err)
	}
	s3, err := cb.Sync(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	col3 := collect(t, s3)
	col3.waitFor(t, "caught up", func(c *collector) bool { return c.caught })
	// Queued device messages precede the caught_up frame, so none may
	// have arrived; a live marker message proves the connection works.
	if len(col3.dms) != 0 {
		t.Fatalf("acknowledged messages delivered again: %+v", col3.dms)
	}
	if err := ca.SendToDevice(ctx, "dm4", []proto.OutgoingDeviceMessage{{UserID: bob, DeviceID: cb.Device, Kind: "marker", Body: []byte{4}}}); err != nil {
		t.Fatal(err)
	}
	col3.waitFor(t, "marker", func(c *collector) bool { return len(c.dms) >= 1 })
	if len(col3.dms) != 1 || col3.dms[0].Kind != "marker" {
		t.Fatalf("acknowledged messages delivered again: %+v", col3.dms)
	}
	hs.assertNoPlaintext([]byte("WELCOME-MARKER"))
}

func TestSIGTERMClosesSyncWithACloseFrameAndExitsCleanly(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice := hs.addUser("alice", "doctor")
	hs.start()
	ca := hs.login(alice)
	s, err := ca.Sync(ctxT(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	col := collect(t, s)
	col.waitFor(t, "caught up", func(c *collector) bool { return c.caught })
	hs.stop(syscall.SIGTERM)
	col.waitFor(t, "close", func(c *collector) bool { return c.err != nil })
	var ce *websocket.CloseError
	if !errorsAs(col.err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("sync ended with %v, want a close frame 1001", col.err)
	}
	if code := hs.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("server exit code %d after SIGTERM\n%s", code, hs.stderr)
	}
	if !strings.Contains(hs.stderr.String(), "stopped cleanly") {
		t.Fatalf("server log lacks a clean stop:\n%s", hs.stderr)
	}
}

func TestFailedLoginsAreRateLimited(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice := hs.addUser("alice", "doctor")
	hs.start()
	c := hs.client()
	ctx := ctxT(t)
	var limited bool
	for range 30 {
		_, err := c.Login(ctx, alice, "wrong-password", "")
		if api.IsCode(err, proto.ErrLimitExceeded) {
			limited = true
			break
		}
		if !api.IsCode(err, proto.ErrForbidden) {
			t.Fatalf("wrong password: %v, want M_FORBIDDEN", err)
		}
	}
	if !limited {
		t.Fatal("30 failed logins were never rate limited")
	}
	// Even the right password is refused while the account is limited.
	if _, err := c.Login(ctx, alice, testPassword, ""); !api.IsCode(err, proto.ErrLimitExceeded) {
		t.Fatalf("login while limited: %v, want M_LIMIT_EXCEEDED", err)
	}
}
