package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/proto"
)

// latencyRecorder collects send-to-receive latencies from the message bodies,
// whose first 8 bytes are the send time in Unix nanoseconds.
type latencyRecorder struct {
	mu       sync.Mutex
	lat      []time.Duration
	received atomic.Int64
}

var bodyKey = []byte(`"body":"`)

// consume reads frames of one sync socket, counting mls-app events and
// recording their latency, until want events arrived or the socket closed.
func (l *latencyRecorder) consume(s *api.Sync, want int64, record bool, done func()) {
	defer done()
	var got int64
	local := make([]time.Duration, 0, want)
	for got < want {
		frame, err := s.NextRaw()
		if err != nil {
			break
		}
		now := time.Now()
		rest := frame
		for {
			i := bytes.Index(rest, bodyKey)
			if i < 0 {
				break
			}
			rest = rest[i+len(bodyKey):]
			var ts [12]byte
			if len(rest) < 16 {
				break
			}
			if _, err := base64.StdEncoding.Decode(ts[:], rest[:16]); err != nil {
				continue
			}
			if ts[8] != 0xbe { // only benchmark messages carry this tag
				continue
			}
			got++
			if record {
				local = append(local, now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(ts[:8])))))
			}
		}
	}
	l.received.Add(got)
	l.mu.Lock()
	l.lat = append(l.lat, local...)
	l.mu.Unlock()
}

func (l *latencyRecorder) percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lat) == 0 {
		return 0
	}
	slices.Sort(l.lat)
	return l.lat[min(len(l.lat)-1, int(float64(len(l.lat))*p))]
}

func benchBody(size int) []byte {
	body := make([]byte, size)
	binary.BigEndian.PutUint64(body, uint64(time.Now().UnixNano()))
	body[8] = 0xbe
	return body
}

func runFanout(b *testing.B, receivers, senders int, rate float64) {
	hs := newHomeserver(b, "bench.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	ctx := context.Background()
	ca := hs.login(alice)
	cb := hs.login(bob)
	room, err := ca.CreateRoom(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if err := ca.Invite(ctx, room, bob); err != nil {
		b.Fatal(err)
	}
	if err := cb.Join(ctx, room); err != nil {
		b.Fatal(err)
	}
	socks := make([]*api.Sync, receivers)
	for i := range socks {
		c := cb
		if i > 0 {
			c = hs.login(bob)
		}
		s, err := c.Sync(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		socks[i] = s
	}
	rec := &latencyRecorder{}
	n := b.N
	var wg sync.WaitGroup
	for i, s := range socks {
		wg.Add(1)
		// Latency is recorded on a tenth of the receivers to keep the
		// measuring cheap; all of them must receive every message.
		go rec.consume(s, int64(n), i%10 == 0, wg.Done)
	}
	b.ResetTimer()
	start := time.Now()
	var next atomic.Int64
	var sendWG sync.WaitGroup
	interval := time.Duration(0)
	if rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(senders) / rate)
	}
	for w := range senders {
		sendWG.Add(1)
		go func() {
			defer sendWG.Done()
			tick := time.Now()
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
				if _, err := ca.Send(ctx, room, fmt.Sprintf("b%d-%d", w, i), proto.KindMLSApp, benchBody(1024)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	sendWG.Wait()
	accepted := time.Since(start)
	wg.Wait()
	delivered := time.Since(start)
	b.StopTimer()
	for _, s := range socks {
		s.Close()
	}
	if got, want := rec.received.Load(), int64(n)*int64(receivers); got != want {
		b.Fatalf("receivers got %d messages, want %d", got, want)
	}
	b.ReportMetric(float64(n)/accepted.Seconds(), "accepted-msg/s")
	b.ReportMetric(float64(n)*float64(receivers)/delivered.Seconds(), "deliveries/s")
	b.ReportMetric(float64(rec.percentile(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(rec.percentile(0.99).Microseconds())/1000, "p99-ms")
}

// BenchmarkFanout measures a real homeserver process accepting 1 KiB
// messages from concurrent senders over HTTPS and pushing each to 100
// connected WebSocket receivers: unpaced for throughput, and paced at
// 1,000 msg/s for latency.
//
//	MEDICUS_E2E_NO_RACE=1 go test -run '^$' -bench Fanout -benchtime 20000x ./test/
func BenchmarkFanout(b *testing.B) {
	b.Run("receivers=100/senders=32/unpaced", func(b *testing.B) { runFanout(b, 100, 32, 0) })
	b.Run("receivers=100/senders=8/rate=1000", func(b *testing.B) { runFanout(b, 100, 8, 1000) })
}
