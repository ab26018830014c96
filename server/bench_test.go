package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/medicus-health/medicus/server/store/sqlite"
)

// BenchmarkSendFanout measures the homeserver in process, over real TLS and
// WebSockets: concurrent senders PUT 1 KiB messages into one room and every
// message is pushed to each connected receiver device. One op is one
// accepted message; it ends when every receiver has it. The end-to-end
// benchmark with latencies, against a separate server process, is in test/.
func BenchmarkSendFanout(b *testing.B) {
	for _, receivers := range []int{1, 100} {
		b.Run(fmt.Sprintf("receivers=%d/senders=32", receivers), func(b *testing.B) { benchFanout(b, receivers, 32) })
	}
}

func benchFanout(b *testing.B, receivers, senders int) {
	e := newEnv(b, nil)
	doc, nurse := e.login("doc"), e.login("nurse")
	room := e.createRoom(doc.AccessToken)
	e.addMember(room, doc.AccessToken, nurse.UserID, nurse.AccessToken)
	tokens := []string{nurse.AccessToken}
	for len(tokens) < receivers {
		tokens = append(tokens, e.login("nurse").AccessToken)
	}
	var got atomic.Int64
	var wg sync.WaitGroup
	n := int64(b.N)
	marker := []byte(`"kind":"mls-app"`)
	for _, tok := range tokens {
		conn := e.dialSync(tok, 0)
		wg.Go(func() {
			var mine int64
			for mine < n {
				conn.SetReadDeadline(time.Now().Add(60 * time.Second))
				_, data, err := conn.ReadMessage()
				if err != nil {
					b.Errorf("receiver: %v after %d of %d", err, mine, n)
					return
				}
				c := int64(bytes.Count(data, marker))
				mine += c
				got.Add(c)
			}
		})
	}
	body := fmt.Appendf(nil, `{"kind":"mls-app","body":"%s"}`, bytes.Repeat([]byte("A"), 1368)) // 1 KiB in base64
	var next atomic.Int64
	b.SetBytes(1024)
	b.ResetTimer()
	cpu0 := processCPU()
	var sw sync.WaitGroup
	for range senders {
		sw.Go(func() {
			for {
				i := next.Add(1)
				if i > n {
					return
				}
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/v1/rooms/%s/send/t%d", e.ts.URL, room, i), bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+doc.AccessToken)
				resp, err := e.client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("send: HTTP %d", resp.StatusCode)
					return
				}
			}
		})
	}
	sw.Wait()
	accepted := b.Elapsed()
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(n), "cpu-µs/msg")
	b.ReportMetric(float64(n)/accepted.Seconds(), "accepted-msg/s")
	ws := e.s.store.(*sqlite.DB).WriteStats()
	b.ReportMetric(float64(ws.Ops)/float64(ws.Batches), "ops/commit")
	b.ReportMetric(float64(got.Load())/b.Elapsed().Seconds(), "deliveries/s")
	if got.Load() != n*int64(receivers) {
		b.Fatalf("delivered %d, want %d", got.Load(), n*int64(receivers))
	}
}

// processCPU is the CPU time (user and system) this process has used. Per
// message it measures cost even when other load on the machine distorts
// wall-clock rates; it includes the in-process clients.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
