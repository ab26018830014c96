package test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/proto"
)

// BenchmarkFederation measures cross-server delivery through real
// homeserver processes federating over mutually authenticated TLS on
// loopback: a member on the hub sends 1 KiB opaque bodies (raw client API,
// no MLS, so that the servers' cost is what is measured) and members on two
// followers receive them over their sync WebSockets. The rate=500 case
// paces the offered load for latency (send to receipt, p50/p99); the
// unpaced one measures messages/s; catch-up=10000 stops a follower, queues
// 10,000 messages for it and measures, from its restart, until its member
// has them all.
//
//	MEDICUS_E2E_NO_RACE=1 go test -run '^$' -bench Federation -benchtime 10000x -timeout 20m ./test/
func BenchmarkFederation(b *testing.B) {
	b.Run("hub-to-2-followers/rate=500", func(b *testing.B) { runFederationDelivery(b, 4, 500) })
	b.Run("hub-to-2-followers/unpaced", func(b *testing.B) { runFederationDelivery(b, 16, 0) })
	b.Run("catch-up=10000", func(b *testing.B) { runFederationCatchUp(b, 10000) })
}

// sendBench sends n benchmark bodies from m with senders concurrent
// senders, paced to rate messages/s in all (0: unpaced).
func sendBench(b *testing.B, m *rawMember, room string, n, senders int, rate float64) {
	var next atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(senders) / rate)
	}
	for w := range senders {
		wg.Go(func() {
			tick := time.Now().Add(time.Duration(w) * interval / time.Duration(senders))
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if interval > 0 {
					tick = tick.Add(interval)
					if d := time.Until(tick); d > 0 {
						time.Sleep(d) // pacing the offered load, not synchronising
					}
				}
				if _, err := m.Send(context.Background(), room, fmt.Sprintf("b%d-%d", w, i), proto.KindMLSApp, benchBody(1024)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func runFederationDelivery(b *testing.B, senders int, rate float64) {
	f := newFederationOpts(b, fedOptions{}, freiburg, heidelberg, stuttgart)
	room, ms := rawRoom(b, f, freiburg, heidelberg, stuttgart)
	hub := ms[0]
	for _, m := range ms[1:] {
		m.receive(b, room, 0, hub.lastSeq(b, room), 30*time.Second)
	}
	rec := &latencyRecorder{}
	var wg sync.WaitGroup
	var socks []*api.Sync
	for _, m := range ms[1:] {
		s, err := m.SyncWith(context.Background(), 0, api.SyncOptions{Binary: true})
		if err != nil {
			b.Fatal(err)
		}
		socks = append(socks, s)
		wg.Add(1)
		go rec.consume(s, int64(b.N), true, wg.Done)
	}
	pids := []int{os.Getpid()}
	for _, m := range ms {
		pids = append(pids, m.hs.cmd.Process.Pid)
	}
	cpu0 := make([]time.Duration, len(pids))
	for i, p := range pids {
		cpu0[i] = processCPU(p)
	}
	b.ResetTimer()
	start := time.Now()
	sendBench(b, hub, room, b.N, senders, rate)
	accepted := time.Since(start)
	wg.Wait()
	delivered := time.Since(start)
	b.StopTimer()
	for _, s := range socks {
		s.Close()
	}
	if got, want := rec.received.Load(), int64(b.N)*int64(len(socks)); got != want {
		b.Fatalf("the followers' members got %d messages, want %d", got, want)
	}
	b.ReportMetric(float64(b.N)/accepted.Seconds(), "accepted-msg/s")
	b.ReportMetric(float64(b.N)/delivered.Seconds(), "delivered-msg/s")
	b.ReportMetric(float64(rec.percentile(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(rec.percentile(0.99).Microseconds())/1000, "p99-ms")
	for i, unit := range []string{"bench", "hub", "follower1", "follower2"} {
		if c := processCPU(pids[i]); c >= 0 && cpu0[i] >= 0 {
			b.ReportMetric(float64((c-cpu0[i]).Microseconds())/float64(b.N), unit+"-cpu-µs/msg")
		}
	}
}

func runFederationCatchUp(b *testing.B, queued int) {
	f := newFederationOpts(b, fedOptions{}, freiburg, heidelberg)
	room, ms := rawRoom(b, f, freiburg, heidelberg)
	hub, hd := ms[0], ms[1]
	_, cursor := hd.receive(b, room, 0, hub.lastSeq(b, room), 30*time.Second)
	hd.hs.stop(syscall.SIGKILL)
	sendBench(b, hub, room, queued, 16, 0)
	if n := dbCount(b, hub.hs, `SELECT COUNT(*) FROM fed_outbound WHERE destination = ?`, heidelberg); n != queued {
		b.Fatalf("the hub queued %d events for the stopped follower, want %d", n, queued)
	}
	cpu0 := processCPU(hub.hs.cmd.Process.Pid)

	b.ResetTimer()
	start := time.Now()
	hd.hs.start()
	healthy := time.Since(start)
	s, err := hd.SyncWith(context.Background(), cursor, api.SyncOptions{Binary: true})
	if err != nil {
		b.Fatal(err)
	}
	var first time.Duration
	var got int
	var evs []proto.Event
	for got < queued {
		frame, err := s.NextRaw()
		if err != nil {
			b.Fatalf("after %d of %d events: %v", got, queued, err)
		}
		if len(frame) == 0 || frame[0] != proto.FrameTypeEvents {
			continue
		}
		if evs, err = proto.DecodeEventsFrame(frame, evs[:0]); err != nil {
			b.Fatal(err)
		}
		for _, ev := range evs {
			if ev.RoomID == room && len(ev.Body) > 8 && ev.Body[8] == 0xbe {
				if got == 0 {
					first = time.Since(start)
				}
				got++
			}
		}
	}
	all := time.Since(start)
	b.StopTimer()
	s.Close()
	checkLog(b, hd, room, hub.history(b, room))
	b.ReportMetric(all.Seconds(), "catch-up-s")
	b.ReportMetric(healthy.Seconds(), "restart-s")
	b.ReportMetric(first.Seconds(), "first-event-s")
	b.ReportMetric(float64(queued)/(all-first).Seconds(), "after-first-msg/s")
	if c := processCPU(hd.hs.cmd.Process.Pid); c >= 0 {
		b.ReportMetric(float64(c.Microseconds())/float64(queued), "follower-cpu-µs/msg")
	}
	if c := processCPU(hub.hs.cmd.Process.Pid); c >= 0 && cpu0 >= 0 {
		b.ReportMetric(float64((c-cpu0).Microseconds())/float64(queued), "hub-cpu-µs/msg")
	}
}
