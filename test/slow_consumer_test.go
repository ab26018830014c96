package test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/medicus-health/medicus/proto"
)

// TestSlowConsumerDoesNotBlockOthersAndCatchesUpFromTheStore keeps one sync
// socket open without reading while far more messages flow than the server's
// in-memory ring holds. A reading device must receive everything meanwhile;
// when the stalled device finally reads, it gets every message exactly once,
// in order, served from the database for the part that left the ring.
func TestSlowConsumerDoesNotBlockOthersAndCatchesUpFromTheStore(t *testing.T) {
	hs, ca, cb, room := twoDoctorsInARoom(t, func(cfg string) string {
		// A small ring forces the store path; a long write timeout keeps the
		// stalled connection open (by default the server closes a socket
		// that does not read for 15 s, and the client resumes by cursor).
		cfg = setConfig(t, cfg, "sync_ring_events = 16384", "sync_ring_events = 64")
		return setConfig(t, cfg, `sync_write_timeout = "15s"`, `sync_write_timeout = "10m0s"`)
	})
	ctx := ctxT(t)
	stalled, err := hs.login(cb.UserID).Sync(ctx, 0) // opened, then not read
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	live, err := cb.Sync(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	colLive := collect(t, live)

	seal := newSealer(t)
	// 2,000 messages of 16 KiB: far more than the ring of 64 holds and, at
	// 32 MB, more than the kernel's socket buffers absorb, so the stalled
	// connection's writer blocks and falls behind the ring.
	const n = 2000
	pad := strings.Repeat(" ", 16<<10)
	for i := range n {
		if _, err := ca.Send(ctx, room, fmt.Sprint(i), proto.KindMLSApp, seal.seal(fmt.Appendf(nil, "SLOW-MARKER %d%s", i, pad))); err != nil {
			t.Fatal(err)
		}
	}
	colLive.waitFor(t, "all messages on the reading device", func(c *collector) bool { return countKind(c, room, proto.KindMLSApp) == n })

	colStalled := collect(t, stalled)
	colStalled.waitFor(t, "all messages on the stalled device", func(c *collector) bool { return countKind(c, room, proto.KindMLSApp) >= n })
	got := colStalled.roomEvents(room, proto.KindMLSApp)
	if len(got) != n {
		t.Fatalf("stalled device got %d messages, want exactly %d", len(got), n)
	}
	for i, e := range got {
		if want := fmt.Sprintf("SLOW-MARKER %d ", i); !strings.HasPrefix(string(seal.open(t, e.Body)), want) {
			t.Fatalf("message %d is not %q", i, want)
		}
	}
	hs.assertNoPlaintext([]byte("SLOW-MARKER"))
}
