package call

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// testNetwork is an in-memory call signalling transport between switchboards
// (a test transport, standing in for the client's MLS direct messages). Every
// event goes through Marshal and Unmarshal, is delivered in order per
// receiving device, and can be held back, dropped or rewritten by a filter.
type testNetwork struct {
	t  testing.TB
	mu sync.Mutex
	// devices: user → device → inbox
	devices map[string]map[string]*inbox
	hold    bool
	held    []func()
	filter  func(from string, to Target, ev Event) Event // nil result drops
	sent    []string                                     // "device→user/device type", for diagnostics
}

type inbox struct {
	sb *Switchboard
	ch chan Received
}

func newTestNetwork(t testing.TB) *testNetwork {
	return &testNetwork{t: t, devices: make(map[string]map[string]*inbox)}
}

// endpoint is one device's Signaller.
type endpoint struct {
	n            *testNetwork
	user, device string
}

func (e *endpoint) Send(ctx context.Context, to Target, ev Event) error {
	typ, body, err := Marshal(ev)
	if err != nil {
		return err
	}
	e.n.mu.Lock()
	defer e.n.mu.Unlock()
	if e.n.filter != nil {
		dec, err := Unmarshal(typ, body)
		if err != nil {
			return err
		}
		f := e.n.filter(e.user+"/"+e.device, to, dec)
		if f == nil {
			return nil
		}
		if typ, body, err = Marshal(f); err != nil {
			return err
		}
	}
	var names []string
	for d := range e.n.devices[to.UserID] {
		names = append(names, d)
	}
	sort.Strings(names)
	for _, d := range names {
		if (to.DeviceID != "" && d != to.DeviceID) || (to.UserID == e.user && d == e.device) {
			continue
		}
		dec, err := Unmarshal(typ, body) // each device decodes its own copy
		if err != nil {
			return err
		}
		in := Received{Room: to.Room, Sender: e.user, SenderDevice: e.device, Event: dec}
		box := e.n.devices[to.UserID][d]
		deliver := func() {
			select {
			case box.ch <- in:
			default:
				e.n.t.Errorf("inbox of %s/%s full", to.UserID, d)
			}
		}
		e.n.sent = append(e.n.sent, fmt.Sprintf("%s/%s→%s/%s %s", e.user, e.device, to.UserID, d, typ))
		if e.n.hold {
			e.n.held = append(e.n.held, deliver)
		} else {
			deliver()
		}
	}
	return nil
}

// Hold queues events instead of delivering them; Release delivers them.
func (n *testNetwork) Hold() {
	n.mu.Lock()
	n.hold = true
	n.mu.Unlock()
}

func (n *testNetwork) Release() {
	n.mu.Lock()
	n.hold = false
	held := n.held
	n.held = nil
	for _, f := range held {
		f()
	}
	n.mu.Unlock()
}

func (n *testNetwork) SetFilter(f func(from string, to Target, ev Event) Event) {
	n.mu.Lock()
	n.filter = f
	n.mu.Unlock()
}

// device is one test device: its switchboard and the updates it emitted.
type device struct {
	user, id string
	sb       *Switchboard
	mu       sync.Mutex
	updates  []Update
	changed  chan struct{}
}

// addDevice starts a switchboard for user/id on the network. mod may adjust
// the config (clock, timeouts, media).
func (n *testNetwork) addDevice(user, id string, mod func(*Config)) *device {
	n.t.Helper()
	updates := make(chan Update, 64)
	cfg := Config{
		UserID: user, DeviceID: id,
		Signaller:     &endpoint{n: n, user: user, device: id},
		Peer:          PeerConfig{LoopbackOnly: true},
		StatsInterval: 100 * time.Millisecond,
		Updates:       updates,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{n.t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("user", user)
	}
	if mod != nil {
		mod(&cfg)
	}
	sb, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	d := &device{user: user, id: id, sb: sb, changed: make(chan struct{})}
	box := &inbox{sb: sb, ch: make(chan Received, 4096)}
	n.mu.Lock()
	if n.devices[user] == nil {
		n.devices[user] = make(map[string]*inbox)
	}
	n.devices[user][id] = box
	n.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case in := <-box.ch:
				if err := sb.Deliver(ctx, in); err != nil && ctx.Err() == nil {
					n.t.Errorf("deliver to %s/%s: %v", user, id, err)
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case u := <-updates:
				d.mu.Lock()
				d.updates = append(d.updates, u)
				close(d.changed)
				d.changed = make(chan struct{})
				d.mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()
	n.t.Cleanup(func() {
		// Close first: it may still emit updates, which the collector drains.
		if err := sb.Close(); err != nil {
			n.t.Errorf("close %s/%s: %v", user, id, err)
		}
		cancel()
		wg.Wait()
	})
	return d
}

// waitUpdate waits until the device emitted an update matching ok.
func (d *device) waitUpdate(t testing.TB, what string, ok func(Update) bool) Update {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		d.mu.Lock()
		for _, u := range d.updates {
			if ok(u) {
				d.mu.Unlock()
				return u
			}
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s/%s: no update %s; last updates:%s", d.user, d.id, what, d.lastUpdates(5))
		}
	}
}

// lastUpdates formats the device's last n updates for a failure message.
func (d *device) lastUpdates(n int) string {
	var b strings.Builder
	all := d.snapshot()
	for _, u := range all[max(0, len(all)-n):] {
		fmt.Fprintf(&b, "\n\t%s %s %s", u.Event, u.CallID, u.Reason)
		if u.Stats != nil {
			fmt.Fprintf(&b, " %+v", *u.Stats)
		}
	}
	return b.String()
}

func (d *device) snapshot() []Update {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Update(nil), d.updates...)
}

// ringing waits for the device to ring and returns the call id.
func (d *device) ringing(t testing.TB) string {
	t.Helper()
	return d.waitUpdate(t, "ringing", func(u Update) bool {
		return u.Event == "ringing" && u.Direction == Incoming
	}).CallID
}

// place calls user from d and waits until every device in ringers rings
// with the call.
func (d *device) place(t testing.TB, user string, ringers ...*device) *Call {
	t.Helper()
	c, err := d.sb.Place(context.Background(), room, user)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ringers {
		if id := r.ringing(t); id != c.ID() {
			t.Fatalf("%s/%s rings for %s, want %s", r.user, r.id, id, c.ID())
		}
	}
	return c
}

// ended waits for the call to end on the device and returns the update.
func (d *device) ended(t testing.TB, callID string) Update {
	t.Helper()
	return d.waitUpdate(t, "ended of "+callID, func(u Update) bool {
		return u.Event == "ended" && u.CallID == callID
	})
}

func (d *device) call(t testing.TB, id string) *Call {
	t.Helper()
	c := d.sb.Call(context.Background(), id)
	if c == nil {
		t.Fatalf("%s/%s has no call %s", d.user, d.id, id)
	}
	return c
}

func waitState(t testing.TB, c *Call, s State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.Wait(ctx, s); err != nil {
		t.Fatalf("call %s (%s): %v", c.ID(), c.Direction(), err)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// manualClock is a Clock that moves only when told to.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2026, 11, 29, 4, 0, 0, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	mt := &manualTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, mt)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !mt.stopped
		mt.stopped = true
		return was
	}
}

// Advance moves the clock by d and fires the timers that fall due.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*manualTimer
	rest := c.timers[:0]
	for _, mt := range c.timers {
		switch {
		case mt.stopped:
		case !mt.at.After(c.now):
			mt.stopped = true
			due = append(due, mt)
		default:
			rest = append(rest, mt)
		}
	}
	c.timers = rest
	c.mu.Unlock()
	for _, mt := range due {
		go mt.f()
	}
}
