package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/proto"
)

// memOutbox is an in-memory Outbox standing in for the homeserver's SQLite
// queue. It outlives Senders, as the database outlives a process.
type memOutbox struct {
	mu      sync.Mutex
	next    int64
	queue   map[string][]Outbound
	changed chan struct{} // signalled after every Delivered
}

func newMemOutbox() *memOutbox {
	return &memOutbox{queue: map[string][]Outbound{}, changed: make(chan struct{}, 1)}
}

// add queues device messages named txns (their transaction ids) for dest.
func (o *memOutbox) add(dest string, txns ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, txn := range txns {
		o.next++
		o.queue[dest] = append(o.queue[dest], Outbound{ID: o.next, Item: proto.FedItem{
			Kind:          proto.FedItemDeviceMessage,
			DeviceMessage: &proto.FedDeviceMessage{Txn: txn, Sender: "@weber:" + heidelberg, UserID: "@braun:" + freiburg, DeviceID: "D1", Body: []byte("ciphertext")},
		}})
	}
}

func (o *memOutbox) Destinations(ctx context.Context) ([]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for d, q := range o.queue {
		if len(q) > 0 {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (o *memOutbox) Pending(ctx context.Context, dest string, limit int) ([]Outbound, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queue[dest]
	return slices.Clone(q[:min(limit, len(q))]), nil
}

func (o *memOutbox) Delivered(ctx context.Context, dest string, upTo int64) error {
	o.mu.Lock()
	q := o.queue[dest]
	i := 0
	for i < len(q) && q[i].ID <= upTo {
		i++
	}
	o.queue[dest] = q[i:]
	o.mu.Unlock()
	select {
	case o.changed <- struct{}{}:
	default:
	}
	return nil
}

func (o *memOutbox) len(dest string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.queue[dest])
}

// failure is how the test peer answers one transaction request.
type failure int

const (
	answerOK         failure = iota
	refuse503                // a stable error answer, nothing applied
	plain500                 // a plain-text error, nothing applied
	hangUp                   // the connection is closed without an answer
	applyThenFail500         // applied, but the acknowledgement is lost
)

// txnRequest is one transaction request the test peer received.
type txnRequest struct {
	id    string
	txns  []string
	at    time.Time
	reply failure
}

// txnPeer is a test server standing in for a peer's federation listener:
// it applies device messages idempotently by their txn, in arrival order.
type txnPeer struct {
	name string

	mu       sync.Mutex
	fail     func(n int) failure // by request number, from 0
	requests []txnRequest
	applied  []string
	seen     map[string]bool
	repeated int
	changed  chan struct{} // signalled after every request
}

func (p *txnPeer) setFail(f func(n int) failure) {
	p.mu.Lock()
	p.fail = f
	p.mu.Unlock()
}

func (p *txnPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}()
	var tx proto.FedTransaction
	if err := json.NewDecoder(r.Body).Decode(&tx); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	reply := answerOK
	if p.fail != nil {
		reply = p.fail(len(p.requests))
	}
	req := txnRequest{id: r.PathValue("txn"), at: time.Now(), reply: reply}
	for _, it := range tx.Items {
		req.txns = append(req.txns, it.DeviceMessage.Txn)
	}
	p.requests = append(p.requests, req)
	var res proto.FedTransactionResult
	if reply == answerOK || reply == applyThenFail500 {
		for _, txn := range req.txns {
			if p.seen[txn] {
				res.Repeated++
				p.repeated++
				continue
			}
			p.seen[txn] = true
			p.applied = append(p.applied, txn)
			res.Applied++
		}
	}
	p.mu.Unlock()
	switch reply {
	case refuse503:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(proto.Error{Code: proto.ErrUnavailable, Message: "restarting"})
	case plain500, applyThenFail500:
		http.Error(w, "internal error", http.StatusInternalServerError)
	case hangUp:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	default:
		json.NewEncoder(w).Encode(res)
	}
}

func (p *txnPeer) snapshot() (applied []string, requests []txnRequest, repeated int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.applied), slices.Clone(p.requests), p.repeated
}

// senderFixture is Heidelberg's outbox and federation client, with test
// peers for Freiburg and Stuttgart that accept only Heidelberg.
type senderFixture struct {
	outbox *memOutbox
	peers  map[string]*txnPeer
	newCli func() *Client
}

func newSenderFixture(t *testing.T) *senderFixture {
	t.Helper()
	ca := newTestCA(t)
	f := &senderFixture{outbox: newMemOutbox(), peers: map[string]*txnPeer{}}
	addrs := map[string]string{}
	for _, name := range []string{freiburg, stuttgart} {
		cert, _ := ca.issue(t, name)
		tr := ca.trust(t, []string{heidelberg}, nil)
		p := &txnPeer{name: name, seen: map[string]bool{}, changed: make(chan struct{}, 1)}
		mux := http.NewServeMux()
		mux.HandleFunc("PUT /fed/v1/transactions/{txn}", func(w http.ResponseWriter, r *http.Request) {
			if origin, ok := tr.PeerName(r); !ok || origin != heidelberg {
				http.Error(w, "unknown origin", http.StatusForbidden)
				return
			}
			p.ServeHTTP(w, r)
		})
		ts := peerServer(t, tr, cert, mux)
		addrs[name] = ts.Listener.Addr().String()
		f.peers[name] = p
	}
	hdCert, _ := ca.issue(t, heidelberg)
	hdTrust := ca.trust(t, []string{freiburg, stuttgart}, nil)
	f.newCli = func() *Client {
		c := NewClient(hdTrust, hdCert, addrs)
		t.Cleanup(c.CloseIdle)
		return c
	}
	return f
}

// runningSender is a Sender running until stop.
type runningSender struct {
	*Sender
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func (f *senderFixture) start(t *testing.T, cfg SenderConfig) *runningSender {
	t.Helper()
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}
	}
	s := NewSender(f.outbox, f.newCli(), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSender{Sender: s, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(ctx) }()
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

// stop cancels the Sender and waits until Run has returned, which is after
// every worker stopped.
func (rs *runningSender) stop(t *testing.T) {
	t.Helper()
	if rs.stopped {
		return
	}
	rs.stopped = true
	rs.cancel()
	select {
	case err := <-rs.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Sender.Run did not return after its context ended")
	}
}

// waitFor waits until cond holds, re-checking whenever the outbox or a peer
// changes, and fails the test after a deadline.
func (f *senderFixture) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-f.outbox.changed:
		case <-f.peers[freiburg].changed:
		case <-f.peers[stuttgart].changed:
		case <-deadline:
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func txnNames(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, prefix+strconv.Itoa(i))
	}
	return out
}

func TestSenderDeliversInOrderWhileItemsKeepArriving(t *testing.T) {
	f := newSenderFixture(t)
	s := f.start(t, SenderConfig{Batch: 7})
	want := txnNames("m", 1, 300)
	// Queue one item at a time, notifying each time, while the worker is
	// sending: wake-ups must not be lost.
	for _, txn := range want {
		f.outbox.add(freiburg, txn)
		s.Notify(freiburg)
	}
	p := f.peers[freiburg]
	f.waitFor(t, "Freiburg applied 300 items and the queue is empty", func() bool {
		applied, _, _ := p.snapshot()
		return len(applied) == len(want) && f.outbox.len(freiburg) == 0
	})
	applied, requests, repeated := p.snapshot()
	if !slices.Equal(applied, want) {
		t.Errorf("applied out of order: first items %v", applied[:10])
	}
	if repeated != 0 {
		t.Errorf("%d items were delivered twice to a peer that never failed", repeated)
	}
	for _, r := range requests {
		if len(r.txns) > 7 {
			t.Errorf("transaction %s has %d items, more than the batch of 7", r.id, len(r.txns))
		}
	}
}

func TestSenderSendsBacklogInBatches(t *testing.T) {
	f := newSenderFixture(t)
	f.outbox.add(freiburg, txnNames("m", 1, 95)...)
	// Run finds the queued destination by itself, without a Notify.
	f.start(t, SenderConfig{Batch: 10})
	p := f.peers[freiburg]
	f.waitFor(t, "the backlog is delivered", func() bool { return f.outbox.len(freiburg) == 0 })
	applied, requests, _ := p.snapshot()
	if !slices.Equal(applied, txnNames("m", 1, 95)) {
		t.Errorf("applied %d items, out of order or incomplete", len(applied))
	}
	var ids []string
	for i, r := range requests {
		ids = append(ids, r.id)
		if want := min(10, 95-10*i); len(r.txns) != want {
			t.Errorf("transaction %d has %d items, want %d", i, len(r.txns), want)
		}
	}
	wantIDs := []string{"1-10", "11-20", "21-30", "31-40", "41-50", "51-60", "61-70", "71-80", "81-90", "91-95"}
	if !slices.Equal(ids, wantIDs) {
		t.Errorf("transaction ids %v, want %v", ids, wantIDs)
	}
}

func TestSenderRetriesWithBackoffUntilPeerAccepts(t *testing.T) {
	f := newSenderFixture(t)
	p := f.peers[freiburg]
	// The first five requests fail in every way a peer can fail.
	modes := []failure{refuse503, plain500, hangUp, applyThenFail500, refuse503}
	p.setFail(func(n int) failure {
		if n < len(modes) {
			return modes[n]
		}
		return answerOK
	})
	f.outbox.add(freiburg, txnNames("m", 1, 20)...)
	backoff := Backoff{Min: 4 * time.Millisecond, Max: 16 * time.Millisecond}
	f.start(t, SenderConfig{Batch: 50, Backoff: backoff})
	f.waitFor(t, "the queue is delivered", func() bool { return f.outbox.len(freiburg) == 0 })

	applied, requests, repeated := p.snapshot()
	if !slices.Equal(applied, txnNames("m", 1, 20)) {
		t.Errorf("applied %v", applied)
	}
	if len(requests) != len(modes)+1 {
		t.Fatalf("%d requests, want %d (5 failures, 1 success)", len(requests), len(modes)+1)
	}
	// Every retry is the same transaction with the same items.
	for i, r := range requests {
		if r.id != "1-20" || !slices.Equal(r.txns, txnNames("m", 1, 20)) {
			t.Errorf("request %d: transaction %s with %d items, want the retried 1-20", i, r.id, len(r.txns))
		}
	}
	// The one whose acknowledgement was lost arrives again and is applied
	// once.
	if repeated != 20 {
		t.Errorf("peer saw %d repeated items, want 20 (the retry after the lost acknowledgement)", repeated)
	}
	// Waits double from Min up to Max; jitter only adds. A lower bound on
	// real time is safe: timers never fire early.
	wait := time.Duration(0)
	for i := 1; i < len(requests); i++ {
		wait = backoff.next(wait)
		if gap := requests[i].at.Sub(requests[i-1].at); gap < wait {
			t.Errorf("retry %d came %v after the previous attempt, want at least %v", i, gap, wait)
		}
	}
}

func TestSenderNeverDropsWhilePeerIsDownAndKeepsOtherPeersFlowing(t *testing.T) {
	f := newSenderFixture(t)
	down := f.peers[stuttgart]
	down.setFail(func(int) failure { return refuse503 })
	f.outbox.add(stuttgart, txnNames("s", 1, 30)...)
	s := f.start(t, SenderConfig{Batch: 8})
	f.outbox.add(freiburg, txnNames("f", 1, 30)...)
	s.Notify(freiburg)

	f.waitFor(t, "Freiburg has everything and Stuttgart was tried 10 times", func() bool {
		_, reqs, _ := down.snapshot()
		return f.outbox.len(freiburg) == 0 && len(reqs) >= 10
	})
	if got := f.outbox.len(stuttgart); got != 30 {
		t.Fatalf("%d of 30 items left in Stuttgart's queue while it is down", got)
	}
	if applied, _, _ := f.peers[freiburg].snapshot(); !slices.Equal(applied, txnNames("f", 1, 30)) {
		t.Errorf("Freiburg applied %v", applied)
	}

	// Stuttgart comes back; more items were queued meanwhile.
	f.outbox.add(stuttgart, txnNames("s", 31, 40)...)
	s.Notify(stuttgart)
	down.setFail(nil)
	f.waitFor(t, "Stuttgart's queue is delivered", func() bool { return f.outbox.len(stuttgart) == 0 })
	if applied, _, _ := down.snapshot(); !slices.Equal(applied, txnNames("s", 1, 40)) {
		t.Errorf("Stuttgart applied %v", applied)
	}
}

func TestSenderResumesAfterRestartOnSameOutbox(t *testing.T) {
	f := newSenderFixture(t)
	p := f.peers[freiburg]
	// The peer acknowledges two transactions, then goes down.
	p.setFail(func(n int) failure {
		if n < 2 {
			return answerOK
		}
		return refuse503
	})
	f.outbox.add(freiburg, txnNames("m", 1, 25)...)
	first := f.start(t, SenderConfig{Batch: 5})
	f.waitFor(t, "two transactions were acknowledged and a third failed", func() bool {
		_, reqs, _ := p.snapshot()
		return len(reqs) >= 3
	})
	first.stop(t)
	if got := f.outbox.len(freiburg); got != 15 {
		t.Fatalf("%d items queued after the first Sender stopped, want 15", got)
	}
	_, before, _ := p.snapshot()

	// A new process: a new Sender and Client on the same (durable) outbox.
	// Nothing is notified; Run finds the backlog.
	p.setFail(nil)
	f.start(t, SenderConfig{Batch: 5})
	f.waitFor(t, "the rest is delivered", func() bool { return f.outbox.len(freiburg) == 0 })
	applied, after, repeated := p.snapshot()
	if !slices.Equal(applied, txnNames("m", 1, 25)) {
		t.Errorf("applied %v", applied)
	}
	if repeated != 0 {
		t.Errorf("%d items delivered twice although every acknowledgement arrived", repeated)
	}
	if next := after[len(before)]; next.id != "11-15" {
		t.Errorf("the new Sender started with transaction %s, want 11-15", next.id)
	}
}

func TestSenderNotifyBeforeRunIsHarmless(t *testing.T) {
	f := newSenderFixture(t)
	s := NewSender(f.outbox, f.newCli(), SenderConfig{})
	s.Notify(freiburg) // not running: ignored, never blocks
	f.outbox.add(freiburg, "m1")
	rs := f.start(t, SenderConfig{})
	rs.Notify(freiburg)
	f.waitFor(t, "m1 is delivered", func() bool { return f.outbox.len(freiburg) == 0 })
}

func TestBackoffDoublesFromMinToMaxWithJitter(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 70 * time.Millisecond}
	var got []time.Duration
	d := time.Duration(0)
	for range 6 {
		d = b.next(d)
		got = append(got, d)
	}
	want := []time.Duration{10, 20, 40, 70, 70, 70}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if !slices.Equal(got, want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	distinct := map[time.Duration]bool{}
	for range 1000 {
		j := jitter(40 * time.Millisecond)
		if j < 40*time.Millisecond || j > 60*time.Millisecond {
			t.Fatalf("jitter(40ms) = %v, outside [40ms, 60ms]", j)
		}
		distinct[j] = true
	}
	if len(distinct) < 100 {
		t.Errorf("jitter gave only %d distinct waits in 1000", len(distinct))
	}
}

// flakyOutbox fails its first Destinations call, as SQLite may when busy
// at start-up.
type flakyOutbox struct {
	*memOutbox
	mu     sync.Mutex
	failed bool
}

func (o *flakyOutbox) Destinations(ctx context.Context) ([]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.failed {
		o.failed = true
		return nil, errors.New("database is locked")
	}
	return o.memOutbox.Destinations(ctx)
}

func TestSenderRunRetriesListingDestinations(t *testing.T) {
	f := newSenderFixture(t)
	f.outbox.add(freiburg, txnNames("m", 1, 5)...)
	s := NewSender(&flakyOutbox{memOutbox: f.outbox}, f.newCli(), SenderConfig{Backoff: Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	returned := false
	defer func() {
		cancel()
		if !returned {
			<-done
		}
	}()
	deadline := time.After(30 * time.Second)
	for f.outbox.len(freiburg) != 0 {
		select {
		case err := <-done:
			returned = true
			t.Fatalf("Run gave up with the backlog undelivered: %v", err)
		case <-f.outbox.changed:
		case <-deadline:
			t.Fatal("backlog not delivered")
		}
	}
}
