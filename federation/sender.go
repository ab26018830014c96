package federation

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medicus-health/medicus/proto"
)

// Outbound is one entry of a destination's durable queue.
type Outbound struct {
	ID   int64
	Item proto.FedItem
}

// Outbox is the durable outbound queue the Sender drains: entries are
// written in the same database transaction as what caused them, so nothing
// acknowledged to a client can be lost before it reaches the peer.
type Outbox interface {
	// Destinations lists the peers with queued entries.
	Destinations(ctx context.Context) ([]string, error)
	// Pending returns up to limit entries for dest, oldest first.
	Pending(ctx context.Context, dest string, limit int) ([]Outbound, error)
	// Delivered deletes dest's entries up to and including id.
	Delivered(ctx context.Context, dest string, upTo int64) error
}

// Backoff bounds retries: the wait doubles from Min up to Max, with up to
// half of it added at random (jitter), so that peers coming back are not
// hit by every server at once.
type Backoff struct {
	Min, Max time.Duration
}

func (b Backoff) next(prev time.Duration) time.Duration {
	d := prev * 2
	if d < b.Min {
		d = b.Min
	}
	if d > b.Max {
		d = b.Max
	}
	return d
}

func jitter(d time.Duration) time.Duration {
	return d + time.Duration(rand.Int64N(int64(d)/2+1))
}

// SenderConfig tunes a Sender.
type SenderConfig struct {
	// Batch is the most items per transaction (default 500).
	Batch int
	// Backoff bounds retries (default 200 ms to 30 s).
	Backoff Backoff
	Logger  *slog.Logger
}

// Sender drains the outbound queue: one worker per destination sends its
// entries in order, in transactions of up to Batch items, and deletes them
// once the peer acknowledged; failures are retried forever with backoff.
type Sender struct {
	outbox Outbox
	client *Client
	cfg    SenderConfig
	log    *slog.Logger

	mu      sync.Mutex
	workers map[string]*worker // by destination
	ctx     context.Context
	stopped bool
	wg      sync.WaitGroup
}

// NewSender returns a Sender; Run starts it.
func NewSender(outbox Outbox, client *Client, cfg SenderConfig) *Sender {
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Backoff.Min <= 0 {
		cfg.Backoff.Min = 200 * time.Millisecond
	}
	if cfg.Backoff.Max <= 0 {
		cfg.Backoff.Max = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sender{outbox: outbox, client: client, cfg: cfg, log: log, workers: map[string]*worker{}}
}

// Run starts workers for every destination with queued entries and keeps
// them until ctx ends; it returns when all workers have stopped.
func (s *Sender) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	// The backlog of before a restart: list its destinations, retrying
	// (a busy database must not leave it unsent).
	var wait time.Duration
	for {
		dests, err := s.outbox.Destinations(ctx)
		if err == nil {
			for _, d := range dests {
				s.Notify(d)
			}
			break
		}
		wait = s.cfg.Backoff.next(wait)
		s.log.Warn("listing federation destinations failed; retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(jitter(wait)):
			continue
		}
		break
	}
	<-ctx.Done()
	s.mu.Lock()
	s.stopped = true // no Notify starts a worker after this
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Notify tells the worker of dest that entries were queued, starting it if
// needed. It never blocks.
func (s *Sender) Notify(dest string) { s.notify(dest, false) }

// PeerIsBack tells the Sender that dest just contacted this server (it is
// up again): a worker waiting out a backoff for it retries at once.
func (s *Sender) PeerIsBack(dest string) { s.notify(dest, true) }

// worker is the state of one destination's goroutine.
type worker struct {
	wake chan struct{}
	back atomic.Bool
}

func (s *Sender) notify(dest string, back bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.stopped || s.ctx.Err() != nil {
		return
	}
	w, ok := s.workers[dest]
	if !ok {
		if back {
			return // nothing queued for it
		}
		w = &worker{wake: make(chan struct{}, 1)}
		s.workers[dest] = w
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.work(s.ctx, dest, w)
		}()
	}
	if back {
		w.back.Store(true)
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (s *Sender) work(ctx context.Context, dest string, w *worker) {
	var wait time.Duration
	for {
		w.back.Store(false)
		items, err := s.outbox.Pending(ctx, dest, s.cfg.Batch)
		if err == nil && len(items) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		if err == nil {
			err = s.send(ctx, dest, items)
		}
		if err == nil {
			wait = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		wait = s.cfg.Backoff.next(wait)
		s.log.Warn("federation delivery failed; retrying", "destination", dest, "err", err, "in", wait)
		if !s.backOff(ctx, w, jitter(wait)) {
			return
		}
		if w.back.Load() {
			wait = 0 // the peer is up again: start the backoff afresh
		}
	}
}

// backOff waits d, or less if the peer reports back; new entries alone do
// not cut it short. It returns false when ctx ends.
func (s *Sender) backOff(ctx context.Context, w *worker, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-w.wake:
			if w.back.Load() {
				return true
			}
		}
	}
}

// send delivers one transaction. Its id names the queue range, so a retry
// of the same range is recognisably the same transaction; the receiver is
// idempotent per item in any case.
func (s *Sender) send(ctx context.Context, dest string, items []Outbound) error {
	tx := proto.FedTransaction{Items: make([]proto.FedItem, len(items))}
	for i, it := range items {
		tx.Items[i] = it.Item
	}
	id := fmt.Sprintf("%d-%d", items[0].ID, items[len(items)-1].ID)
	var res proto.FedTransactionResult
	if err := s.client.Do(ctx, dest, "PUT", "/fed/v1/transactions/"+url.PathEscape(id), tx, &res); err != nil {
		return err
	}
	for _, r := range res.Refused {
		s.log.Warn("federation item refused by peer", "destination", dest, "reason", r)
	}
	if err := s.outbox.Delivered(ctx, dest, items[len(items)-1].ID); err != nil {
		return fmt.Errorf("mark delivered: %w", err)
	}
	return nil
}
