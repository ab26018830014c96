package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
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

// consume reads frames of one sync socket, counting benchmark events and
// recording their latency, until want events arrived or the socket closed.
func (l *latencyRecorder) consume(s *api.Sync, want int64, record bool, done func()) {
	defer done()
	var got int64
	local := make([]time.Duration, 0, want)
	var evs []proto.Event
	for got < want {
		frame, err := s.NextRaw()
		if err != nil {
			break
		}
		now := time.Now()
		if len(frame) > 0 && frame[0] == proto.FrameTypeEvents {
			// A binary frame, decoded as a client would.
			if evs, err = proto.DecodeEventsFrame(frame, evs[:0]); err != nil {
				break
			}
			for i := range evs {
				body := evs[i].Body
				if len(body) < 9 || body[8] != 0xbe { // only benchmark messages carry this tag
					continue
				}
				got++
				if record {
					local = append(local, now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(body)))))
				}
			}
			continue
		}
		// A JSON frame: find the bodies without decoding everything.
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

// fanout is one configuration of BenchmarkFanout.
type fanout struct {
	receivers, senders int
	// rate is the offered load in messages/s, 0 for as fast as accepted.
	rate float64
	// json makes the receivers ask for JSON frames, as the web client
	// does, instead of binary ones.
	json bool
}

func runFanout(b *testing.B, f fanout) {
	receivers, senders, rate := f.receivers, f.senders, f.rate
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
		s, err := c.SyncWith(ctx, 0, api.SyncOptions{Binary: !f.json})
		if err != nil {
			b.Fatal(err)
		}
		if s.Binary() == f.json {
			b.Fatalf("sync connection binary = %v, asked for JSON = %v", s.Binary(), f.json)
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
	serverCPU0, clientCPU0 := processCPU(hs.cmd.Process.Pid), processCPU(os.Getpid())
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
	serverCPU, clientCPU := processCPU(hs.cmd.Process.Pid)-serverCPU0, processCPU(os.Getpid())-clientCPU0
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
	// CPU time per message tells changes apart on a shared machine, where
	// the rates above depend on what else runs.
	if serverCPU >= 0 && clientCPU >= 0 {
		b.ReportMetric(float64(serverCPU.Microseconds())/float64(n), "server-cpu-µs/msg")
		b.ReportMetric(float64(clientCPU.Microseconds())/float64(n), "bench-cpu-µs/msg")
	}
}

// processCPU returns the user and system CPU time a process has used, from
// /proc (Linux), or -1 where that cannot be read.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) may hold spaces; fields after it are plain.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	// Clock ticks of 1/100 s (USER_HZ on Linux).
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// BenchmarkFanout measures a real homeserver process accepting 1 KiB
// messages from concurrent senders over HTTPS and pushing each to 100
// connected WebSocket receivers: unpaced for throughput, and paced at
// 1,000 msg/s for latency. Receivers take binary event frames, as the Go
// client does, except in the json case, which measures the web client's
// form.
//
//	MEDICUS_E2E_NO_RACE=1 go test -run '^$' -bench 'Fanout$' -benchtime 20000x -timeout 20m ./test/
func BenchmarkFanout(b *testing.B) {
	b.Run("receivers=100/senders=32/unpaced", func(b *testing.B) { runFanout(b, fanout{receivers: 100, senders: 32}) })
	b.Run("receivers=100/senders=8/rate=1000", func(b *testing.B) { runFanout(b, fanout{receivers: 100, senders: 8, rate: 1000}) })
	b.Run("receivers=100/senders=32/unpaced-json", func(b *testing.B) { runFanout(b, fanout{receivers: 100, senders: 32, json: true}) })
}
