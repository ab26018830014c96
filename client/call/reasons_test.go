package call

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// connect places a call from a to b, has b answer, and waits until both
// sides are connected.
func connect(t testing.TB, a, b *device, user string) (out, in *Call) {
	t.Helper()
	out = a.place(t, user, b)
	if err := b.sb.Answer(context.Background(), out.ID()); err != nil {
		t.Fatal(err)
	}
	in = b.call(t, out.ID())
	waitState(t, out, StateConnected)
	waitState(t, in, StateConnected)
	return out, in
}

// expectEnd checks how a call ended on one device.
func expectEnd(t *testing.T, d *device, id string, reason Reason, remote bool) {
	t.Helper()
	u := d.ended(t, id)
	if u.Reason != reason || u.Remote != remote {
		t.Fatalf("%s/%s: call ended with %s (remote %v), want %s (remote %v)", d.user, d.id, u.Reason, u.Remote, reason, remote)
	}
}

// TestHangupICEFailed: no candidates get through, the connection timeout
// expires and the call ends with ice_failed on both sides.
func TestHangupICEFailed(t *testing.T) {
	n := newTestNetwork(t)
	n.SetFilter(func(_ string, _ Target, ev Event) Event {
		if ev.Type() == TypeCandidates {
			return nil
		}
		return ev
	})
	clk := newManualClock()
	a := n.addDevice(alice, "A1", func(c *Config) { c.Clock = clk; c.ConnectTimeout = 20 * time.Second })
	b := n.addDevice(bob, "B1", func(c *Config) { c.Clock = newManualClock() })
	out := a.place(t, bob, b)
	if err := b.sb.Answer(context.Background(), out.ID()); err != nil {
		t.Fatal(err)
	}
	waitState(t, out, StateConnecting)
	clk.Advance(20 * time.Second)
	expectEnd(t, a, out.ID(), ReasonICEFailed, false)
	expectEnd(t, b, out.ID(), ReasonICEFailed, true)
}

// TestHangupUserBusy: a callee already in a call declines a second one with
// user_busy.
func TestHangupUserBusy(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", nil)
	b := n.addDevice(bob, "B1", func(c *Config) { c.RejectWhenBusy = true })
	c := n.addDevice(carol, "C1", nil)
	connect(t, c, b, bob)

	out, err := a.sb.Place(context.Background(), room, bob)
	if err != nil {
		t.Fatal(err)
	}
	expectEnd(t, a, out.ID(), ReasonUserBusy, true)
	if got := b.sb.Call(context.Background(), out.ID()); got != nil {
		t.Fatalf("the busy callee rang (%s)", got.State())
	}
}

// TestHangupUnknownError: an answer that cannot be applied ends the call with
// unknown_error on both sides.
func TestHangupUnknownError(t *testing.T) {
	n := newTestNetwork(t)
	n.SetFilter(func(_ string, _ Target, ev Event) Event {
		if a, ok := ev.(*Answer); ok {
			a.Answer.SDP = "v=0\r\nm=nonsense\r\n"
		}
		return ev
	})
	a := n.addDevice(alice, "A1", nil)
	b := n.addDevice(bob, "B1", nil)
	out := a.place(t, bob, b)
	if err := b.sb.Answer(context.Background(), out.ID()); err != nil {
		t.Fatal(err)
	}
	expectEnd(t, a, out.ID(), ReasonUnknownError, false)
	expectEnd(t, b, out.ID(), ReasonUnknownError, true)
}

// writeIVF writes an IVF file of VP8 frames; truncate cuts the last frame
// short, as a damaged file would be.
func writeIVF(t *testing.T, frames int, truncate bool) string {
	t.Helper()
	hdr := make([]byte, 32)
	copy(hdr, "DKIF")
	binary.LittleEndian.PutUint16(hdr[6:], 32)
	copy(hdr[8:], "VP80")
	binary.LittleEndian.PutUint16(hdr[12:], 320)
	binary.LittleEndian.PutUint16(hdr[14:], 240)
	binary.LittleEndian.PutUint32(hdr[16:], 30) // timebase denominator
	binary.LittleEndian.PutUint32(hdr[20:], 1)  // timebase numerator
	binary.LittleEndian.PutUint32(hdr[24:], uint32(frames))
	out := hdr
	for i := range frames {
		frame := make([]byte, 1500)
		for j := range frame {
			frame[j] = byte(i * j)
		}
		fh := make([]byte, 12)
		binary.LittleEndian.PutUint32(fh, uint32(len(frame)))
		binary.LittleEndian.PutUint64(fh[4:], uint64(i))
		if truncate && i == frames-1 {
			frame = frame[:100]
		}
		out = append(out, fh...)
		out = append(out, frame...)
	}
	path := filepath.Join(t.TempDir(), "consult.ivf")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHangupUserMediaFailed: the caller's media file breaks off mid-call; the
// call ends with user_media_failed on both sides.
func TestHangupUserMediaFailed(t *testing.T) {
	media, err := MediaFlag(writeIVF(t, 5, true))
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", func(c *Config) { c.Peer.Media = media })
	b := n.addDevice(bob, "B1", nil)
	out := a.place(t, bob, b)
	if err := b.sb.Answer(context.Background(), out.ID()); err != nil {
		t.Fatal(err)
	}
	expectEnd(t, a, out.ID(), ReasonUserMediaFailed, false)
	expectEnd(t, b, out.ID(), ReasonUserMediaFailed, true)
}

// TestIVFMediaLoops: a valid IVF file is sent frame by frame and looped.
func TestIVFMediaLoops(t *testing.T) {
	media, err := MediaFlag(writeIVF(t, 3, false))
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", func(c *Config) { c.Peer.Media = media })
	b := n.addDevice(bob, "B1", nil)
	out, _ := connect(t, a, b, bob)
	// The file holds 3 frames of 2 packets each: 30 video packets means
	// it looped.
	u := b.waitUpdate(t, "30 video packets", func(u Update) bool {
		return u.Event == "stats" && u.CallID == out.ID() && u.Stats.VideoPacketsReceived >= 30
	})
	if u.Stats.PacketsLost != 0 {
		t.Fatalf("lost %d packets", u.Stats.PacketsLost)
	}
}

func TestOpenIVFRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	notIVF := filepath.Join(dir, "x.ivf")
	os.WriteFile(notIVF, []byte("RIFF...."), 0o600)
	if _, err := OpenIVF(notIVF); err == nil {
		t.Fatal("a non-IVF file was accepted")
	}
	if _, err := OpenIVF(filepath.Join(dir, "missing.ivf")); err == nil {
		t.Fatal("a missing file was accepted")
	}
	// A frame header claiming a gigabyte fails without allocating it.
	path := writeIVF(t, 1, false)
	b, _ := os.ReadFile(path)
	binary.LittleEndian.PutUint32(b[32:], 1<<30)
	os.WriteFile(path, b, 0o600)
	f, err := OpenIVF(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPeer(PeerConfig{LoopbackOnly: true}, PeerHandlers{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Stream(ctx, p.video, p.audio); err == nil || ctx.Err() != nil {
		t.Fatalf("oversized frame: %v", err)
	}
}

// TestRemoteCloseWithoutHangup: the other side closes its connection and its
// hangup never arrives; ICE consent checks fail and the call ends with
// ice_timeout.
func TestRemoteCloseWithoutHangup(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", nil)
	b := n.addDevice(bob, "B1", func(c *Config) {
		c.Peer.ICEDisconnectedTimeout, c.Peer.ICEFailedTimeout, c.Peer.ICEKeepalive = 500*time.Millisecond, 500*time.Millisecond, 100*time.Millisecond
	})
	out, _ := connect(t, a, b, bob)
	n.SetFilter(func(_ string, _ Target, ev Event) Event {
		if ev.Type() == TypeHangup {
			return nil
		}
		return ev
	})
	if err := a.sb.Hangup(context.Background(), out.ID(), ReasonUserHangup); err != nil {
		t.Fatal(err)
	}
	expectEnd(t, b, out.ID(), ReasonICETimeout, false)
}
