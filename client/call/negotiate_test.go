package call

import (
	"context"
	"testing"
	"time"
)

// waitFor polls cond until it holds or 20 s pass. It is for call state that
// has no change notification (negotiation counters).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPerfectNegotiation: both sides renegotiate at the same moment. The
// caller (impolite) ignores the callee's colliding offer; the callee
// (polite) rolls its offer back, answers, and offers again; both changes are
// negotiated and media keeps flowing.
func TestPerfectNegotiation(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", nil)
	b := n.addDevice(bob, "B1", nil)
	out, in := connect(t, a, b, bob)
	ctx := context.Background()

	n.Hold() // the offers cross
	if err := a.sb.Renegotiate(ctx, out.ID(), false); err != nil {
		t.Fatal(err)
	}
	if err := b.sb.Renegotiate(ctx, out.ID(), false); err != nil {
		t.Fatal(err)
	}
	if err := a.sb.Renegotiate(ctx, out.ID(), false); err == nil {
		t.Fatal("a second offer while one is outstanding was allowed")
	}
	n.Release()

	waitFor(t, "both negotiations", func() bool {
		na, nb := out.Negotiations(), in.Negotiations()
		return na.Completed == 2 && nb.Completed == 2
	})
	na, nb := out.Negotiations(), in.Negotiations()
	if na.Ignored != 1 || na.RolledBack != 0 || na.Offered != 1 {
		t.Errorf("caller (impolite): %+v, want one offer, one ignored", na)
	}
	if nb.RolledBack != 1 || nb.Ignored != 0 || nb.Offered != 2 {
		t.Errorf("callee (polite): %+v, want one rollback and a second offer", nb)
	}
	t.Logf("caller %+v, callee %+v", na, nb)

	// An ICE restart renegotiates the transport; the call stays up and
	// media keeps arriving.
	before := in.LastStats().PacketsReceived
	if err := a.sb.Renegotiate(ctx, out.ID(), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ICE restart", func() bool { return out.Negotiations().Completed == 3 })
	b.waitUpdate(t, "more media after renegotiation", func(u Update) bool {
		return u.Event == "stats" && u.Stats.PacketsReceived > before+50
	})
	if out.State() != StateConnected || in.State() != StateConnected {
		t.Fatalf("call is %s/%s after renegotiation", out.State(), in.State())
	}
}
