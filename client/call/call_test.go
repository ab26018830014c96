package call

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

const (
	alice = "@dr.weber:uk-freiburg.example"
	bob   = "@dr.roth:charite.example"
	carol = "@dr.yilmaz:uk-essen.example"
	room  = "!teleconsultRoom0001:uk-freiburg.example"
)

// TestCallConnectsAndMediaFlows: two headless peers on loopback reach
// connected and each receives at least 50 RTP packets without loss; the
// selected candidate pair's round-trip time is read from the statistics.
func TestCallConnectsAndMediaFlows(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "ALICEPHONE", nil)
	b := n.addDevice(bob, "BOBLAPTOP", nil)
	ctx := context.Background()

	out, err := a.sb.Place(ctx, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	id := b.ringing(t)
	if id != out.ID() {
		t.Fatalf("bob rings for %s, alice placed %s", id, out.ID())
	}
	if err := b.sb.Answer(ctx, id); err != nil {
		t.Fatal(err)
	}
	in := b.call(t, id)
	waitState(t, out, StateConnected)
	waitState(t, in, StateConnected)

	for _, d := range []*device{a, b} {
		u := d.waitUpdate(t, "stats with 50 packets", func(u Update) bool {
			return u.Event == "stats" && u.CallID == id && u.Stats.PacketsReceived >= 50
		})
		s := u.Stats
		if s.PacketsLost != 0 {
			t.Errorf("%s lost %d packets on loopback", d.user, s.PacketsLost)
		}
		if s.Tracks != 2 {
			t.Errorf("%s receives %d tracks, want video and audio", d.user, s.Tracks)
		}
		if s.LocalCandidate != "host" || s.RemoteCandidate != "host" {
			t.Errorf("%s: candidate pair %s/%s, want host/host on loopback", d.user, s.LocalCandidate, s.RemoteCandidate)
		}
		if s.RTT <= 0 {
			t.Errorf("%s: no round-trip time in the candidate pair statistics", d.user)
		}
		t.Logf("%s: %d RTP packets received, %d lost, RTT %v (%s/%s)", d.user, s.PacketsReceived, s.PacketsLost, s.RTT, s.LocalCandidate, s.RemoteCandidate)
	}
	t.Logf("time to connected: caller %v, callee %v", out.TimeToConnect(), in.TimeToConnect())

	if err := a.sb.Hangup(ctx, id, ReasonUserHangup); err != nil {
		t.Fatal(err)
	}
	u := b.ended(t, id)
	if u.Reason != ReasonUserHangup || !u.Remote {
		t.Fatalf("bob's call ended %+v, want user_hangup by the remote side", u)
	}
	if r, remote := out.Reason(); r != ReasonUserHangup || remote {
		t.Fatalf("alice's call ended with %s (remote %v)", r, remote)
	}
}

// TestHangupWhileRingingCancelsEverywhere: the caller gives up before an
// answer; every device of the callee stops ringing with user_hangup.
func TestHangupWhileRingingCancelsEverywhere(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", nil)
	b1 := n.addDevice(bob, "B1", nil)
	b2 := n.addDevice(bob, "B2", nil)
	ctx := context.Background()
	c := a.place(t, bob, b1, b2)
	if err := a.sb.Hangup(ctx, c.ID(), ReasonUserHangup); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{b1, b2} {
		if u := d.ended(t, c.ID()); u.Reason != ReasonUserHangup || !u.Remote {
			t.Fatalf("%s: %+v", d.id, u)
		}
	}
}

// TestRejectStopsAllDevices: one callee device rejects; the caller ends with
// "rejected" and the callee's other device stops ringing.
func TestRejectStopsAllDevices(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", nil)
	b1 := n.addDevice(bob, "B1", nil)
	b2 := n.addDevice(bob, "B2", nil)
	ctx := context.Background()
	c := a.place(t, bob, b1, b2)
	if err := b1.sb.Reject(ctx, c.ID()); err != nil {
		t.Fatal(err)
	}
	if u := a.ended(t, c.ID()); u.Reason != ReasonRejected || !u.Remote {
		t.Fatalf("caller: %+v", u)
	}
	if u := b2.ended(t, c.ID()); u.Reason != ReasonAnsweredElsewhere {
		t.Fatalf("other callee device: %+v", u)
	}
	if u := b1.ended(t, c.ID()); u.Reason != ReasonRejected || u.Remote {
		t.Fatalf("rejecting device: %+v", u)
	}
}

// TestSelectAnswerWithTwoAnsweringDevices: two devices of the callee answer;
// the caller selects the first answer it receives, that device connects, the
// other answering device and a device that only rang both end with
// answered_elsewhere.
func TestSelectAnswerWithTwoAnsweringDevices(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", nil)
	b1 := n.addDevice(bob, "B1", nil)
	b2 := n.addDevice(bob, "B2", nil)
	b3 := n.addDevice(bob, "B3", nil)
	ctx := context.Background()
	out := a.place(t, bob, b1, b2, b3)
	id := out.ID()

	// Both answers are on their way before the caller sees either.
	n.Hold()
	if err := b2.sb.Answer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := b1.sb.Answer(ctx, id); err != nil {
		t.Fatal(err)
	}
	n.Release()

	waitState(t, out, StateConnected)
	winner := b2.call(t, id) // b2's answer was sent, so delivered, first
	waitState(t, winner, StateConnected)
	for _, d := range []*device{b1, b3} {
		if u := d.ended(t, id); u.Reason != ReasonAnsweredElsewhere || !u.Remote {
			t.Fatalf("%s: %+v, want answered_elsewhere", d.id, u)
		}
	}
	if st := winner.State(); st != StateConnected {
		t.Fatalf("selected device is %s", st)
	}
}

// TestGlareKeepsTheLowerCallID: both users call each other at the same time;
// both end up in one connected call, the one with the lower call id.
func TestGlareKeepsTheLowerCallID(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", nil)
	b := n.addDevice(bob, "B1", nil)
	ctx := context.Background()

	n.Hold() // the invites cross
	ca, err := a.sb.Place(ctx, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.sb.Place(ctx, room, alice)
	if err != nil {
		t.Fatal(err)
	}
	n.Release()

	low, high, lowDev, highDev := ca, cb, a, b
	if cb.ID() < ca.ID() {
		low, high, lowDev, highDev = cb, ca, b, a
	}
	// The owner of the lower id keeps its outgoing call; the other side
	// replaces its own call by answering the lower one.
	waitState(t, low, StateConnected)
	answered := highDev.call(t, low.ID())
	waitState(t, answered, StateConnected)
	if answered.Direction() != Incoming {
		t.Fatalf("the side with the higher id should have answered the lower call")
	}
	if u := highDev.ended(t, high.ID()); u.Reason != ReasonReplaced {
		t.Fatalf("higher call ended with %+v, want replaced", u)
	}
	if c := lowDev.sb.Call(ctx, high.ID()); c != nil {
		t.Fatalf("the side with the lower id kept the higher call (%s)", c.State())
	}
	for _, d := range []*device{a, b} {
		active := 0
		for _, c := range d.sb.Calls(ctx) {
			if c.State() != StateEnded {
				active++
				if c.ID() != low.ID() {
					t.Fatalf("%s has active call %s, want only %s", d.user, c.ID(), low.ID())
				}
			}
		}
		if active != 1 {
			t.Fatalf("%s has %d active calls", d.user, active)
		}
	}
}

// TestInviteTimeout: an invite nobody answers ends with invite_timeout on the
// caller (who sends the hangup) and on the ringing device.
func TestInviteTimeout(t *testing.T) {
	n := newTestNetwork(t)
	clk := newManualClock()
	withClock := func(c *Config) { c.Clock = clk; c.InviteLifetime = 60 * time.Second }
	a := n.addDevice(alice, "A1", withClock)
	// The callee's clock is not advanced: it stops ringing because of the
	// caller's hangup.
	b := n.addDevice(bob, "B1", func(c *Config) { c.Clock = newManualClock() })
	ctx := context.Background()
	c, err := a.sb.Place(ctx, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	b.ringing(t)
	clk.Advance(59 * time.Second)
	if st := c.State(); st != StateRinging {
		t.Fatalf("call is %s before its lifetime is over", st)
	}
	clk.Advance(time.Second)
	if u := a.ended(t, c.ID()); u.Reason != ReasonInviteTimeout || u.Remote {
		t.Fatalf("caller: %+v", u)
	}
	if u := b.ended(t, c.ID()); u.Reason != ReasonInviteTimeout || !u.Remote {
		t.Fatalf("callee: %+v", u)
	}
}

// TestRingingStopsWhenTheInviteExpires: a callee that hears nothing more
// stops ringing at the invite's lifetime, without sending anything, and an
// invite older than its lifetime does not ring at all.
func TestRingingStopsWhenTheInviteExpires(t *testing.T) {
	n := newTestNetwork(t)
	clk := newManualClock()
	a := n.addDevice(alice, "A1", func(c *Config) { c.Clock = newManualClock(); c.InviteLifetime = 30 * time.Second })
	b := n.addDevice(bob, "B1", func(c *Config) { c.Clock = clk })
	ctx := context.Background()
	c, err := a.sb.Place(ctx, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	b.ringing(t)
	clk.Advance(30 * time.Second)
	if u := b.ended(t, c.ID()); u.Reason != ReasonInviteTimeout || u.Remote {
		t.Fatalf("callee: %+v", u)
	}
	if st := c.State(); st != StateRinging {
		t.Fatalf("the callee's expiry must not end the caller's call (it is %s)", st)
	}

	// An invite delivered after its lifetime does not ring.
	stale := &Invite{Header: Header{CallID: "stale1", PartyID: "P1", Version: "1"}, Lifetime: 1000,
		Offer: SessionDescription{Type: "offer", SDP: "v=0\r\n"}}
	if err := b.sb.Deliver(ctx, Received{Room: room, Sender: carol, SenderDevice: "C1", Age: 2 * time.Second, Event: stale}); err != nil {
		t.Fatal(err)
	}
	if got := b.sb.Call(ctx, "stale1"); got != nil {
		t.Fatalf("an expired invite rang (%s)", got.State())
	}
}

// TestPlacingWhileRungAnswersInstead: a user who calls someone whose call is
// ringing on their device answers that call instead (Matrix VoIP glare,
// "preparing to send").
func TestPlacingWhileRungAnswersInstead(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", nil)
	b := n.addDevice(bob, "B1", nil)
	out := a.place(t, bob, b)
	got, err := b.sb.Place(context.Background(), room, alice)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != out.ID() || got.Direction() != Incoming {
		t.Fatalf("placing returned call %s (%s), want the ringing %s answered", got.ID(), got.Direction(), out.ID())
	}
	waitState(t, out, StateConnected)
	waitState(t, got, StateConnected)
	if _, err := b.sb.Place(context.Background(), room, alice); !errors.Is(err, ErrBusy) {
		t.Fatalf("a second call to the same user: %v, want ErrBusy", err)
	}
}

// TestNoGoroutinesLeft: after calls and Close, the switchboards and their
// peers leave no goroutines behind.
func TestNoGoroutinesLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("calls", func(t *testing.T) {
		n := newTestNetwork(t)
		a := n.addDevice(alice, "A1", nil)
		b := n.addDevice(bob, "B1", nil)
		c := n.addDevice(carol, "C1", nil)
		connect(t, a, b, bob)
		connect(t, c, a, alice) // a second call of alice's, both up at Close
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCloseWithUnreadUpdates: Close hangs up and returns even when nobody
// reads the updates any more.
func TestCloseWithUnreadUpdates(t *testing.T) {
	n := newTestNetwork(t)
	n.addDevice(bob, "B1", nil)
	updates := make(chan Update, 1)
	sb, err := New(Config{UserID: alice, DeviceID: "A1", Signaller: &endpoint{n: n, user: alice, device: "A1"},
		Peer: PeerConfig{LoopbackOnly: true}, Updates: updates})
	if err != nil {
		t.Fatal(err)
	}
	c, err := sb.Place(context.Background(), room, bob) // "ringing" fills the channel
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- sb.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close blocked on the unread updates channel")
	}
	if r, _ := c.Reason(); r != ReasonUserHangup {
		t.Fatalf("call ended with %q", r)
	}
}

// TestInviteFloodIsBounded: a room member sending invite after invite makes
// at most maxActiveCalls calls ring.
func TestInviteFloodIsBounded(t *testing.T) {
	n := newTestNetwork(t)
	b := n.addDevice(bob, "B1", nil)
	ctx := context.Background()
	for i := range 3 * maxActiveCalls {
		inv := &Invite{Header: Header{CallID: fmt.Sprintf("flood%03d", i), PartyID: "P1", Version: "1"}, Lifetime: 60000,
			Offer: SessionDescription{Type: "offer", SDP: testSDP}}
		if err := b.sb.Deliver(ctx, Received{Room: room, Sender: carol, SenderDevice: "C1", Event: inv}); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(b.sb.Calls(ctx)); got != maxActiveCalls {
		t.Fatalf("%d calls ringing, want at most %d", got, maxActiveCalls)
	}
}
