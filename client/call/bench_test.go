package call

import (
	"context"
	"testing"
	"time"
)

// BenchmarkCallSetup measures a whole 1:1 call on loopback with the
// in-memory signalling transport: place, ring, answer, ICE and DTLS to
// connected on both sides, then hang up. It reports the caller's time from
// placing to connected (connect-ms) and the callee's from answering
// (answer-to-connect-ms).
func BenchmarkCallSetup(b *testing.B) {
	n := newTestNetwork(b)
	a := n.addDevice(alice, "A1", func(c *Config) { c.StatsInterval = -1 })
	r := n.addDevice(bob, "B1", func(c *Config) { c.StatsInterval = -1 })
	ctx := context.Background()
	var connect, answer time.Duration
	for b.Loop() {
		start := time.Now()
		out, err := a.sb.Place(ctx, room, bob)
		if err != nil {
			b.Fatal(err)
		}
		r.waitUpdate(b, "ringing", func(u Update) bool { return u.Event == "ringing" && u.CallID == out.ID() })
		answered := time.Now()
		if err := r.sb.Answer(ctx, out.ID()); err != nil {
			b.Fatal(err)
		}
		in := r.call(b, out.ID())
		waitState(b, out, StateConnected)
		connect += time.Since(start)
		waitState(b, in, StateConnected)
		answer += time.Since(answered)
		if err := a.sb.Hangup(ctx, out.ID(), ReasonUserHangup); err != nil {
			b.Fatal(err)
		}
		waitState(b, in, StateEnded)
	}
	b.ReportMetric(float64(connect.Microseconds())/1000/float64(b.N), "connect-ms")
	b.ReportMetric(float64(answer.Microseconds())/1000/float64(b.N), "answer-to-connect-ms")
}
