package test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/call"
)

// caller is a client session with a call switchboard fed by its sync.
type caller struct {
	*device
	sb      *call.Switchboard
	mu      sync.Mutex
	updates []call.Update
	changed chan struct{}
}

// newCaller starts a switchboard on d whose signalling travels as the
// session's MLS-encrypted ephemeral messages, and follows d's sync to
// deliver the call events it brings.
func newCaller(t *testing.T, d *device, peer call.PeerConfig, mods ...func(*call.Config)) *caller {
	t.Helper()
	ups := make(chan call.Update, 64)
	cfg := call.Config{
		UserID: d.UserID(), DeviceID: d.DeviceID(),
		Signaller:     call.SessionSignaller{Session: d.Session},
		Peer:          peer,
		StatsInterval: 200 * time.Millisecond,
		Updates:       ups,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	sb, err := call.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &caller{device: d, sb: sb, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		d.Follow(ctx, func(msgs []client.Message) {
			for _, m := range msgs {
				if !m.Ephemeral || m.Type != client.TypeContent {
					continue
				}
				if _, err := sb.DeliverContent(ctx, m.Room, m.Sender, m.SenderDevice, m.Time, m.Content); err != nil && ctx.Err() == nil {
					t.Errorf("%s: call event from %s refused: %v", d.user, m.Sender, err)
				}
			}
		})
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case u := <-ups:
				c.mu.Lock()
				c.updates = append(c.updates, u)
				close(c.changed)
				c.changed = make(chan struct{})
				c.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("close switchboard of %s: %v", d.user, err)
		}
		cancel()
		wg.Wait()
	})
	return c
}

// await waits up to a minute for an update matching ok.
func (c *caller) await(t *testing.T, what string, ok func(call.Update) bool) call.Update {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		c.mu.Lock()
		for _, u := range c.updates {
			if ok(u) {
				c.mu.Unlock()
				return u
			}
		}
		ch, n := c.changed, len(c.updates)
		var last string
		if n > 0 {
			last = fmt.Sprintf("%+v", c.updates[n-1])
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: no %s update (last: %s)", c.user, what, last)
		}
	}
}

// callAndMeasure places a call from a to b through the homeserver, answers
// it, waits for at least 50 RTP packets on both sides and returns each
// side's statistics; then a hangs up.
func callAndMeasure(t *testing.T, a, b *caller, room string) (call.Stats, call.Stats) {
	t.Helper()
	ctx := ctxT(t)
	out, err := a.sb.Place(ctx, room, b.user)
	if err != nil {
		t.Fatal(err)
	}
	ring := b.await(t, "ringing", func(u call.Update) bool { return u.Event == "ringing" && u.Direction == call.Incoming })
	if ring.CallID != out.ID() || ring.Peer != a.user || ring.Room != room {
		t.Fatalf("ringing %+v for call %s", ring, out.ID())
	}
	if err := b.sb.Answer(ctx, out.ID()); err != nil {
		t.Fatal(err)
	}
	var stats [2]call.Stats
	for i, c := range []*caller{a, b} {
		conn := c.await(t, "connected", func(u call.Update) bool { return u.Event == "connected" && u.CallID == out.ID() })
		u := c.await(t, "50 RTP packets", func(u call.Update) bool {
			return u.Event == "stats" && u.CallID == out.ID() && u.Stats.PacketsReceived >= 50
		})
		stats[i] = *u.Stats
		if stats[i].PacketsLost != 0 {
			t.Errorf("%s lost %d RTP packets", c.user, stats[i].PacketsLost)
		}
		if stats[i].RTT <= 0 {
			t.Errorf("%s: no candidate pair RTT in the statistics", c.user)
		}
		t.Logf("%s: connected %.1f ms after %s, %d RTP packets received, %d lost, RTT %v, pair %s/%s",
			c.user, conn.TimeToConnectMillis, map[int]string{0: "placing", 1: "ringing"}[i],
			stats[i].PacketsReceived, stats[i].PacketsLost, stats[i].RTT, stats[i].LocalCandidate, stats[i].RemoteCandidate)
	}
	if err := a.sb.Hangup(ctx, out.ID(), call.ReasonUserHangup); err != nil {
		t.Fatal(err)
	}
	end := b.await(t, "ended", func(u call.Update) bool { return u.Event == "ended" && u.CallID == out.ID() })
	if end.Reason != call.ReasonUserHangup || !end.Remote {
		t.Fatalf("callee's call ended %+v", end)
	}
	return stats[0], stats[1]
}

// TestCallThroughHomeserver: two Go peers signal through a real homeserver
// (MLS-encrypted ephemeral device messages), reach connected, and each
// receives at least 50 RTP packets with none lost; the round-trip time is
// read from the candidate pair statistics. No SDP or candidate reaches the
// homeserver's files.
func TestCallThroughHomeserver(t *testing.T) {
	hs, a, b, room := twoSessionsInARoom(t, nil)
	loop := call.PeerConfig{LoopbackOnly: true}
	sa, sb := callAndMeasure(t, newCaller(t, a, loop), newCaller(t, b, loop), room)
	if sa.LocalCandidate != "host" || sb.LocalCandidate != "host" {
		t.Errorf("candidate types %s and %s, want host on loopback", sa.LocalCandidate, sb.LocalCandidate)
	}
	for _, marker := range []string{"a=ice-ufrag", "a=fingerprint", "typ host", "m.call.invite"} {
		hs.assertNoPlaintext([]byte(marker))
	}
}

// TestRelayOnlyCallThroughHomeserver: with the relay-only policy and TURN
// credentials from GET /v1/voip/turn, the call's media goes through the
// homeserver's embedded TURN relay.
func TestRelayOnlyCallThroughHomeserver(t *testing.T) {
	turnAddr := freeAddr(t)
	hs, a, b, room := twoSessionsInARoom(t, func(cfg string) string {
		cfg = setConfig(t, cfg, `turn_listen = ""`, fmt.Sprintf("turn_listen = %q", turnAddr))
		return setConfig(t, cfg, `turn_shared_secret = ""`, fmt.Sprintf("turn_shared_secret = %q", turnSecret))
	})
	relay := func(d *device) call.PeerConfig {
		tr := turnCredentials(t, hs, d.API())
		return call.PeerConfig{ICEServers: call.ICEServers(tr.Username, tr.Password, tr.URIs), RelayOnly: true}
	}
	sa, sb := callAndMeasure(t, newCaller(t, a, relay(a)), newCaller(t, b, relay(b)), room)
	for _, s := range []call.Stats{sa, sb} {
		if s.LocalCandidate != "relay" || s.RemoteCandidate != "relay" {
			t.Errorf("candidate pair %s/%s, want relay/relay", s.LocalCandidate, s.RemoteCandidate)
		}
	}
}

// twoSessionsInARoom starts a homeserver (its config edited by edit) with
// two doctors whose client sessions share an MLS room.
func twoSessionsInARoom(t *testing.T, edit func(string) string) (*homeserver, *device, *device, string) {
	t.Helper()
	hs := newHomeserver(t, "uk-freiburg.example", edit)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	a, b := newDevice(t, hs, alice), newDevice(t, hs, bob)
	ctx := ctxT(t)
	room, err := a.CreateRoom(ctx, "Teleconsult")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Invite(ctx, room, bob); err != nil {
		t.Fatal(err)
	}
	b.sync()
	return hs, a, b, room
}

// TestSelectAnswerThroughHomeserver: both of bob's devices ring and answer;
// alice selects one answer, that device connects, and the other stops with
// answered_elsewhere — with events addressed to users, as sessions send them.
func TestSelectAnswerThroughHomeserver(t *testing.T) {
	_, a, b1, room := twoSessionsInARoom(t, nil)
	b2 := newDeviceWith(t, a.hs, b1.user, &client.LoginOptions{DeviceName: "tablet", Identity: b1.IdentityKey()})
	b1.sync() // adds the new device to the room
	b2.sync() // joins
	a.sync()
	loop := call.PeerConfig{LoopbackOnly: true}
	ca, cb1, cb2 := newCaller(t, a, loop), newCaller(t, b1, loop), newCaller(t, b2, loop)
	ctx := ctxT(t)

	out, err := ca.sb.Place(ctx, room, b1.user)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*caller{cb1, cb2} {
		c.await(t, "ringing", func(u call.Update) bool { return u.Event == "ringing" && u.CallID == out.ID() })
	}
	for _, c := range []*caller{cb1, cb2} {
		if err := c.sb.Answer(ctx, out.ID()); err != nil {
			t.Fatal(err)
		}
	}
	ca.await(t, "connected", func(u call.Update) bool { return u.Event == "connected" && u.CallID == out.ID() })
	var winners, losers int
	for _, c := range []*caller{cb1, cb2} {
		u := c.await(t, "connected or ended", func(u call.Update) bool {
			return u.CallID == out.ID() && (u.Event == "connected" || u.Event == "ended")
		})
		switch {
		case u.Event == "connected":
			winners++
		case u.Reason == call.ReasonAnsweredElsewhere:
			losers++
		default:
			t.Errorf("%s: call ended with %s", c.DeviceID(), u.Reason)
		}
	}
	if winners != 1 || losers != 1 {
		t.Fatalf("%d devices connected and %d answered elsewhere, want 1 and 1", winners, losers)
	}
}

// TestGlareThroughHomeserver: alice and bob call each other at the same time
// and end up in one call. If both invites went out, it is the one with the
// lower call id; if one arrived before the other was placed, placing
// answered it.
func TestGlareThroughHomeserver(t *testing.T) {
	_, a, b, room := twoSessionsInARoom(t, nil)
	loop := call.PeerConfig{LoopbackOnly: true}
	ca, cb := newCaller(t, a, loop), newCaller(t, b, loop)
	ctx := ctxT(t)

	var placed [2]*call.Call
	var wg sync.WaitGroup
	for i, pair := range [][2]*caller{{ca, cb}, {cb, ca}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pair[0].sb.Place(ctx, room, pair[1].user)
			if err != nil {
				t.Error(err)
				return
			}
			placed[i] = c
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	want := placed[0].ID()
	if placed[0].Direction() == call.Outgoing && placed[1].Direction() == call.Outgoing {
		want = min(placed[0].ID(), placed[1].ID())
		t.Logf("invites crossed: keeping %s of %s and %s", want, placed[0].ID(), placed[1].ID())
	} else if placed[1].Direction() == call.Outgoing {
		want = placed[1].ID()
	}
	for _, c := range []*caller{ca, cb} {
		c.await(t, "connected", func(u call.Update) bool { return u.Event == "connected" && u.CallID == want })
		active := 0
		for _, cl := range c.sb.Calls(ctx) {
			if cl.State() != call.StateEnded {
				active++
			}
		}
		if active != 1 {
			t.Fatalf("%s has %d active calls", c.user, active)
		}
	}
}

// TestInviteTimeoutThroughHomeserver: an invite nobody answers ends with
// invite_timeout on the caller and, by its hangup, on the callee's device.
func TestInviteTimeoutThroughHomeserver(t *testing.T) {
	_, a, b, room := twoSessionsInARoom(t, nil)
	loop := call.PeerConfig{LoopbackOnly: true}
	ca := newCaller(t, a, loop, func(c *call.Config) { c.InviteLifetime = 3 * time.Second })
	cb := newCaller(t, b, loop)
	out, err := ca.sb.Place(ctxT(t), room, b.user)
	if err != nil {
		t.Fatal(err)
	}
	cb.await(t, "ringing", func(u call.Update) bool { return u.Event == "ringing" && u.CallID == out.ID() })
	for _, c := range []*caller{ca, cb} {
		u := c.await(t, "ended", func(u call.Update) bool { return u.Event == "ended" && u.CallID == out.ID() })
		if u.Reason != call.ReasonInviteTimeout {
			t.Errorf("%s: call ended with %s, want invite_timeout", c.user, u.Reason)
		}
	}
}
