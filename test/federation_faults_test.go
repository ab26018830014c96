package test

// Federation under faults (issue 6's evidence): a follower or the hub
// killed with SIGKILL mid-stream, replayed and duplicated transactions,
// servers that overstep what their certificate lets them speak for, and a
// proxy between the servers that breaks and delays connections. The
// members here use the raw client API with client-side sealed bodies (the
// harness's sealer), so that hundreds of messages stay cheap; what the
// servers store and forward is opaque bytes either way.

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/crypto/pki"
	fedapi "github.com/medicus-health/medicus/federation"
	"github.com/medicus-health/medicus/proto"
)

// fedOptions varies the federation of the fault tests.
type fedOptions struct {
	// extra are server names that get no homeserver but are allowed as
	// peers of every server: the test speaks for them (peerAs).
	extra []string
	// route returns the address server from uses to reach peer to, whose
	// federation listener is at addr (e.g. a proxy's); nil means addr.
	route func(from, to, addr string) string
}

// newFederationOpts is newFederation with options; it works for benchmarks
// too.
func newFederationOpts(t testing.TB, opts fedOptions, names ...string) *federation {
	t.Helper()
	f := &federation{caDir: filepath.Join(t.TempDir(), "federation-ca"), servers: map[string]*homeserver{}, fedAddr: map[string]string{}}
	ca, err := pki.InitFederationCA(f.caDir, "Test Region Health Federation CA")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append(slices.Clone(names), opts.extra...) {
		f.fedAddr[n] = freeAddr(t)
	}
	for _, n := range names {
		certDir := filepath.Join(t.TempDir(), n+"-cert")
		if _, err := ca.IssueFederation(n, certDir, pki.LeafValidity); err != nil {
			t.Fatal(err)
		}
		args := []string{"--federation-listen", f.fedAddr[n], "--federation-cert-dir", certDir,
			"--federation-ca", filepath.Join(f.caDir, pki.CACertFile), "--federation-crl", filepath.Join(f.caDir, pki.CRLFile)}
		for _, p := range append(slices.Clone(names), opts.extra...) {
			if p == n {
				continue
			}
			addr := f.fedAddr[p]
			if opts.route != nil {
				addr = opts.route(n, p, addr)
			}
			args = append(args, "--peer", p+"="+addr)
		}
		f.servers[n] = newHomeserverWith(t, n, args, nil)
	}
	return f
}

// peerAs returns a federation client presenting a new certificate for name
// from the federation's CA — a second key for an existing server's name,
// or the only one of an extra name: the test then speaks as that server.
func (f *federation) peerAs(t testing.TB, name string) *fedapi.Client {
	t.Helper()
	ca, err := pki.LoadFederationCA(f.caDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), name+"-test-cert")
	if _, err := ca.IssueFederation(name, dir, pki.LeafValidity); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, pki.FederationCertFile), filepath.Join(dir, pki.FederationKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	var peers []string
	for n := range f.servers {
		peers = append(peers, n)
	}
	trust, err := fedapi.NewTrust(fedapi.TrustConfig{CAFile: filepath.Join(f.caDir, pki.CACertFile), CRLFile: filepath.Join(f.caDir, pki.CRLFile), Allowed: peers})
	if err != nil {
		t.Fatal(err)
	}
	c := fedapi.NewClient(trust, cert, f.fedAddr)
	t.Cleanup(c.CloseIdle)
	return c
}

// rawMember is a member's session on its homeserver through the raw client
// API.
type rawMember struct {
	hs   *homeserver
	user string
	*api.Client
}

// rawRoom adds a doctor to each server, starts the federation, and makes a
// room whose hub is hub with all of them joined. The first member returned
// is the hub's.
func rawRoom(t testing.TB, f *federation, hub string, servers ...string) (string, []*rawMember) {
	t.Helper()
	order := append([]string{hub}, slices.DeleteFunc(slices.Clone(servers), func(s string) bool { return s == hub })...)
	users := make([]string, len(order))
	for i, n := range order {
		users[i] = f.servers[n].addUser(fmt.Sprintf("doc%d", i), "doctor")
	}
	f.start()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var ms []*rawMember
	for i, n := range order {
		ms = append(ms, &rawMember{hs: f.servers[n], user: users[i], Client: f.servers[n].login(users[i])})
	}
	room, err := ms[0].CreateRoom(ctx, "Second opinion")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[1:] {
		if err := ms[0].Invite(ctx, room, m.user); err != nil {
			t.Fatalf("invite %s: %v", m.user, err)
		}
		// Over a faulty network a join may fail after the hub applied
		// it: retried, it is then already done.
		for try := 0; ; try++ {
			err := m.Join(ctx, room)
			if err == nil || api.IsCode(err, proto.ErrConflict) {
				break
			}
			if try == 20 || !api.IsCode(err, proto.ErrUnavailable) {
				t.Fatalf("%s joins: %v", m.user, err)
			}
		}
	}
	return room, ms
}

// history returns a member's whole log of a room.
func (m *rawMember) history(t testing.TB, room string) []proto.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var all []proto.Event
	from := int64(1)
	for {
		h, err := m.History(ctx, room, from, 1000)
		if err != nil {
			t.Fatalf("history of %s for %s: %v", room, m.user, err)
		}
		all = append(all, h.Events...)
		if h.Next == 0 || len(h.Events) == 0 {
			return all
		}
		from = h.Next
	}
}

// lastSeq returns the last sequence number of a room a member's server has.
func (m *rawMember) lastSeq(t testing.TB, room string) int64 {
	t.Helper()
	h := m.history(t, room)
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Seq
}

// receive reads the member's sync stream after stream position since until
// an event of room with a sequence number of at least until arrived (or
// fails after within), and returns the events of room it brought, in
// arrival order, and the stream position after them.
func (m *rawMember) receive(t testing.TB, room string, since, until int64, within time.Duration) ([]proto.Event, int64) {
	t.Helper()
	got, cursor, err := m.receiveErr(room, since, until, within)
	if err != nil {
		t.Fatal(err)
	}
	return got, cursor
}

func (m *rawMember) receiveErr(room string, since, until int64, within time.Duration) ([]proto.Event, int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	s, err := m.SyncWith(ctx, since, api.SyncOptions{Binary: true})
	if err != nil {
		return nil, 0, fmt.Errorf("%s opens sync: %w", m.user, err)
	}
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(within))
	var got []proto.Event
	cursor := since
	for {
		fr, err := s.Next()
		if err != nil {
			return got, cursor, fmt.Errorf("%s waiting for event %d of %s (has %d events after %d): %w", m.user, until, room, len(got), since, err)
		}
		for _, ev := range fr.Events {
			cursor = max(cursor, ev.Stream)
			if ev.RoomID != room {
				continue
			}
			got = append(got, ev)
			if ev.Seq >= until {
				return got, cursor, nil
			}
		}
	}
}

// logLine is how events are compared between servers: everything but the
// server-local stream position.
func logLine(ev proto.Event) string {
	member := ""
	if ev.Member != nil {
		member = ev.Member.UserID + "/" + ev.Member.Membership
	}
	return fmt.Sprintf("%d %s %s %s %x %s", ev.Seq, ev.Sender, ev.DeviceID, ev.Kind, ev.Body, member)
}

func logLines(evs []proto.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = logLine(ev)
	}
	return out
}

// checkLog asserts that a room's log on a member's server equals want
// event for event, and that seqs run 1, 2, 3, … with no gap or repeat.
func checkLog(t testing.TB, m *rawMember, room string, want []proto.Event) {
	t.Helper()
	got := m.history(t, room)
	for i, ev := range got {
		if ev.Seq != int64(i+1) {
			t.Fatalf("%s's log of %s has seq %d at position %d", m.user, room, ev.Seq, i+1)
		}
	}
	if g, w := logLines(got), logLines(want); !slices.Equal(g, w) {
		i := 0
		for i < min(len(g), len(w)) && g[i] == w[i] {
			i++
		}
		t.Fatalf("%s's log of %s differs from the hub's at position %d: %d events, hub %d", m.user, room, i+1, len(g), len(w))
	}
}

// messageIDs opens the sealed bodies of a log's messages and fails on any
// message that appears twice (under two sequence numbers).
func messageIDs(t *testing.T, s sealer, evs []proto.Event) map[string]int64 {
	t.Helper()
	ids := map[string]int64{}
	for _, ev := range evs {
		if ev.Kind != proto.KindMLSApp {
			continue
		}
		id := string(s.open(t, ev.Body))
		if prev, dup := ids[id]; dup {
			t.Fatalf("message %q stored twice, at seq %d and %d", id, prev, ev.Seq)
		}
		ids[id] = ev.Seq
	}
	return ids
}

// acked records what the servers acknowledged: message id → seq.
type acked struct {
	mu  sync.Mutex
	seq map[string]int64
	n   atomic.Int64
}

func (a *acked) add(id string, seq int64) {
	a.mu.Lock()
	if a.seq == nil {
		a.seq = map[string]int64{}
	}
	a.seq[id] = seq
	a.mu.Unlock()
	a.n.Add(1)
}

// sendUntilAcked sends a sealed message under a fixed transaction id until
// the server acknowledges it, retrying on errors (a retry of the same
// transaction id cannot be sequenced twice); it reports each failure to
// failed. It gives up after within.
func (m *rawMember) sendUntilAcked(ctx context.Context, room, id string, s sealer, within time.Duration, failed func(error)) (int64, error) {
	body := s.seal([]byte(id))
	deadline := time.Now().Add(within)
	for {
		sctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		resp, err := m.Send(sctx, room, id, proto.KindMLSApp, body)
		cancel()
		if err == nil {
			return resp.Seq, nil
		}
		failed(err)
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("send %s: still failing after %v: %w", id, within, err)
		}
		// The next attempt follows at once: the server answers quickly
		// while a peer is down (connection refused), so this loop is
		// paced by its answers. A short pause keeps it from spinning.
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// awaitCond waits until cond holds, checking it every 10 ms (a readiness
// probe, not a synchronisation), and fails the test after within.
func awaitCond(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFederationFollowerKilledCatchesUpExactlyOnce: a follower is killed
// with SIGKILL while members on the hub and on the other follower keep
// sending; after its restart it has every message exactly once, in the
// hub's order, and its member's sync stream brings each once.
func TestFederationFollowerKilledCatchesUpExactlyOnce(t *testing.T) {
	f := newFederationOpts(t, fedOptions{}, freiburg, heidelberg, stuttgart)
	room, ms := rawRoom(t, f, freiburg, heidelberg, stuttgart)
	hub, hd, st := ms[0], ms[1], ms[2]
	seal := newSealer(t)
	ctx := ctxT(t)

	// Everyone talks; Stuttgart's member reads it all.
	for i, m := range ms {
		for j := range 10 {
			if _, err := m.Send(ctx, room, fmt.Sprintf("pre-%d-%d", i, j), proto.KindMLSApp, seal.seal(fmt.Appendf(nil, "pre-%d-%d", i, j))); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := hub.lastSeq(t, room)
	_, cursor := st.receive(t, room, 0, before, 30*time.Second)

	// Freiburg and Heidelberg keep sending; Stuttgart is killed once a
	// third of it was acknowledged and restarted when all of it was.
	const perSender = 150
	var ack acked
	var failed atomic.Bool
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, m := range []*rawMember{hub, hd} {
		wg.Go(func() {
			for j := range perSender {
				id := fmt.Sprintf("during-%d-%d", i, j)
				resp, err := m.Send(ctx, room, id, proto.KindMLSApp, seal.seal([]byte(id)))
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", m.user, err)
					failed.Store(true)
					return
				}
				ack.add(id, resp.Seq)
			}
		})
	}
	awaitCond(t, 30*time.Second, "a third of the messages acknowledged", func() bool { return ack.n.Load() >= 2*perSender/3 || failed.Load() })
	st.hs.stop(syscall.SIGKILL)
	atKill := ack.n.Load()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	last := hub.lastSeq(t, room)
	t.Logf("Stuttgart was killed when %d of %d messages were acknowledged; it had seq %d, the room ended at %d", atKill, 2*perSender, before, last)
	st.hs.start()

	// Stuttgart's member receives the rest once each, in order.
	got, _ := st.receive(t, room, cursor, last, 50*time.Second)
	for i, ev := range got {
		if want := before + 1 + int64(i); ev.Seq != want {
			t.Fatalf("after the restart Stuttgart's member got seq %d as event %d, want %d (a repeat or a gap)", ev.Seq, i, want)
		}
	}
	if int64(len(got)) != last-before {
		t.Fatalf("after the restart Stuttgart's member got %d events, want %d", len(got), last-before)
	}
	hubLog := hub.history(t, room)
	checkLog(t, st, room, hubLog)
	checkLog(t, hd, room, hubLog)
	ids := messageIDs(t, seal, hubLog)
	for id, seq := range ack.seq {
		if ids[id] != seq {
			t.Errorf("acknowledged message %s at seq %d is at seq %d in the hub's log", id, seq, ids[id])
		}
	}
	if len(ids) != 30+2*perSender {
		t.Errorf("hub's log holds %d messages, want %d", len(ids), 30+2*perSender)
	}
}

// TestFederationHubKilledLosesNothingAcknowledged: the hub is killed with
// SIGKILL while members on both followers (and one on the hub) send.
// Sends made while it is down fail with a clear error and succeed when
// retried under the same transaction id; nothing acknowledged is lost, no
// retried message is sequenced twice, and all servers converge on the
// hub's order.
func TestFederationHubKilledLosesNothingAcknowledged(t *testing.T) {
	f := newFederationOpts(t, fedOptions{}, freiburg, heidelberg, stuttgart)
	room, ms := rawRoom(t, f, freiburg, heidelberg, stuttgart)
	hub := ms[0]
	seal := newSealer(t)
	ctx := ctxT(t)

	const perSender = 100
	var ack acked
	var failures atomic.Int64
	var unclear []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		wg.Go(func() {
			for j := range perSender {
				id := fmt.Sprintf("m-%d-%d", i, j)
				seq, err := m.sendUntilAcked(ctx, room, id, seal, 50*time.Second, func(err error) {
					failures.Add(1)
					// A follower answers for the hub that is down: a
					// stable code, a gateway status, a readable reason.
					var ae *api.Error
					if i > 0 && !(errors.As(err, &ae) && ae.Code == proto.ErrUnavailable && (ae.Status == 502 || ae.Status == 503) && ae.Message != "") {
						mu.Lock()
						unclear = append(unclear, err)
						mu.Unlock()
					}
				})
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", m.user, err)
					return
				}
				ack.add(id, seq)
			}
		})
	}
	awaitCond(t, 30*time.Second, "a third of the messages acknowledged", func() bool { return ack.n.Load() >= int64(len(ms)*perSender/3) })
	hub.hs.stop(syscall.SIGKILL)
	// While the hub is down, a follower's member gets a clear error at
	// once. (In-flight sends may instead wait, up to 30 s, for their
	// events, which the hub accepted before it died, to arrive.)
	var probes []string
	for _, m := range ms[1:] {
		id := "probe-" + m.hs.name
		_, err := m.Send(ctx, room, id, proto.KindMLSApp, seal.seal([]byte(id)))
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != proto.ErrUnavailable || ae.Status != 502 {
			t.Fatalf("%s sends while the hub is down: %v, want M_UNAVAILABLE (HTTP 502)", m.user, err)
		}
		t.Logf("%s sends while the hub is down: %v", m.user, err)
		probes = append(probes, id)
	}
	hub.hs.start()
	for i, m := range ms[1:] {
		seq, err := m.sendUntilAcked(ctx, room, probes[i], seal, 30*time.Second, func(error) {})
		if err != nil {
			t.Fatal(err)
		}
		ack.add(probes[i], seq)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if len(unclear) > 0 {
		t.Errorf("%d failed sends on followers had no clear error, e.g. %v", len(unclear), unclear[0])
	}
	t.Logf("besides the probes, %d sends in flight failed around the restart and succeeded when retried", failures.Load())

	hubLog := hub.history(t, room)
	last := hubLog[len(hubLog)-1].Seq
	for _, m := range ms[1:] {
		m.receive(t, room, 0, last, 50*time.Second)
		checkLog(t, m, room, hubLog)
	}
	ids := messageIDs(t, seal, hubLog)
	if want := len(ms)*perSender + len(probes); len(ids) != want {
		t.Errorf("the room holds %d messages, want %d", len(ids), want)
	}
	for id, seq := range ack.seq {
		if ids[id] != seq {
			t.Errorf("acknowledged message %s at seq %d is at seq %d in the hub's log (0: lost)", id, seq, ids[id])
		}
	}
}

// faultProxy forwards TCP connections to a federation listener, breaking
// and delaying some of them, and can be shut like a gate.
type faultProxy struct {
	ln     net.Listener
	target string
	cfg    faultConfig

	shut     atomic.Bool
	accepted atomic.Int64
	broken   atomic.Int64
	mu       sync.Mutex
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
}

// faultConfig says which faults a faultProxy injects.
type faultConfig struct {
	// failEvery breaks every failEvery-th connection (0: none), at once or
	// after a random number of bytes (up to 16 KiB), at random.
	failEvery int64
	// delay bounds the random delay before a connection is forwarded, and
	// a tenth of it the delay of one in ten chunks of data.
	delay time.Duration
	// lifetime, if not zero, closes healthy connections after a random
	// time between lifetime/2 and 3·lifetime/2 (whatever they carry then),
	// so that servers keep opening new connections, a fraction of which
	// then fail.
	lifetime time.Duration
}

func newFaultProxy(t testing.TB, target string, cfg faultConfig) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, cfg: cfg, conns: map[net.Conn]bool{}}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.setShut(true)
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// setShut shuts the gate (refusing new connections and cutting open ones)
// or opens it.
func (p *faultProxy) setShut(shut bool) {
	p.shut.Store(shut)
	if shut {
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	}
}

func (p *faultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shut.Load() {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *faultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *faultProxy) serve(down net.Conn) {
	n := p.accepted.Add(1)
	if !p.track(down) {
		down.Close()
		return
	}
	defer p.untrack(down)
	budget := int64(-1) // bytes until the connection is cut; -1: never
	switch {
	case p.cfg.failEvery > 0 && n%p.cfg.failEvery == 0:
		p.broken.Add(1)
		if mrand.IntN(2) == 0 {
			return
		}
		budget = mrand.Int64N(16 << 10)
	case p.cfg.lifetime > 0:
		cut := time.AfterFunc(p.cfg.lifetime/2+mrand.N(p.cfg.lifetime), func() { down.Close() })
		defer cut.Stop()
	}
	if p.cfg.delay > 0 {
		time.Sleep(mrand.N(p.cfg.delay)) // the injected fault, not a synchronisation
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer p.untrack(up)
	var left atomic.Int64
	left.Store(budget)
	pipe := func(dst, src net.Conn) {
		defer dst.Close()
		defer src.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if budget >= 0 {
					if rest := left.Add(-int64(n)); rest < 0 {
						// Forward what fits in the budget, then cut.
						if keep := int64(n) + rest; keep > 0 {
							dst.Write(buf[:keep])
						}
						return
					}
				}
				if p.cfg.delay > 0 && mrand.IntN(10) == 0 {
					time.Sleep(mrand.N(p.cfg.delay / 10)) // injected latency
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { pipe(up, down) })
	pipe(down, up)
	wg.Wait()
}

// dbStats reads a server's database (read-only, while it runs): the rows of
// a room's events, their distinct sequence numbers, and the highest.
func dbStats(t testing.TB, hs *homeserver, room string) (rows, distinct int, maxSeq int64) {
	t.Helper()
	db := openDB(t, hs)
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT seq), COALESCE(MAX(seq), 0) FROM events WHERE room_id = ?`, room).Scan(&rows, &distinct, &maxSeq); err != nil {
		t.Fatalf("events of %s in %s's database: %v", room, hs.name, err)
	}
	return rows, distinct, maxSeq
}

// dbCount runs a COUNT query on a server's database.
func dbCount(t testing.TB, hs *homeserver, query string, args ...any) int {
	t.Helper()
	var n int
	if err := openDB(t, hs).QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s on %s's database: %v", query, hs.name, err)
	}
	return n
}

func openDB(t testing.TB, hs *homeserver) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(hs.dir, "medicus.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// putTransaction sends a federation transaction as the client's identity.
func putTransaction(ctx context.Context, c *fedapi.Client, dest, txn string, items []proto.FedItem) (proto.FedTransactionResult, error) {
	var res proto.FedTransactionResult
	err := c.Do(ctx, dest, http.MethodPut, "/fed/v1/transactions/"+url.PathEscape(txn), proto.FedTransaction{Items: items}, &res)
	return res, err
}

func eventItems(evs []proto.Event) []proto.FedItem {
	items := make([]proto.FedItem, len(evs))
	for i := range evs {
		ev := evs[i]
		ev.Stream = 0 // server-local; the hub sends its own
		items[i] = proto.FedItem{Kind: proto.FedItemEvent, Event: &ev}
	}
	return items
}

// streamCollector reads a member's sync stream in the background from its
// start, keeping one room's events and the device messages.
type streamCollector struct {
	mu      sync.Mutex
	events  []proto.Event
	devMsgs []proto.DeviceMessage
	sync    *api.Sync
	done    chan struct{}
}

func (m *rawMember) collect(t testing.TB, room string) *streamCollector {
	t.Helper()
	s, err := m.SyncWith(context.Background(), 0, api.SyncOptions{Binary: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &streamCollector{sync: s, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			fr, err := s.Next()
			if err != nil {
				return
			}
			c.mu.Lock()
			for _, ev := range fr.Events {
				if ev.RoomID == room {
					c.events = append(c.events, ev)
				}
			}
			if fr.DeviceMessage != nil {
				c.devMsgs = append(c.devMsgs, *fr.DeviceMessage)
			}
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *streamCollector) has(seq int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events) > 0 && c.events[len(c.events)-1].Seq >= seq
}

func (c *streamCollector) stop() {
	c.sync.Close()
	<-c.done
}

// seqs returns the sequence numbers received, in order of arrival.
func (c *streamCollector) seqs() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int64, len(c.events))
	for i, ev := range c.events {
		out[i] = ev.Seq
	}
	return out
}

// checkOnceInOrder fails unless seqs is first, first+1, …, last.
func checkOnceInOrder(t testing.TB, who string, seqs []int64, first, last int64) {
	t.Helper()
	for i, s := range seqs {
		if s != first+int64(i) {
			t.Fatalf("%s received seq %d as its event %d: a repeat or a gap (%v…)", who, s, i+1, seqs[max(0, i-3):min(len(seqs), i+3)])
		}
	}
	if int64(len(seqs)) != last-first+1 {
		t.Fatalf("%s received %d events, want %d", who, len(seqs), last-first+1)
	}
}

// streamStart returns the first event of a room a member's sync stream
// brings: the room's first for its creator, its invitation for others.
func streamStart(log []proto.Event, user string) int64 {
	for _, ev := range log {
		if ev.Member != nil && ev.Member.UserID == user && ev.Member.Membership == proto.MembershipInvite {
			return ev.Seq
		}
	}
	return 1
}

const rogue = "rogue.test"

// TestFederationReplayedAndDuplicatedTransactionsApplyOnce: someone holding
// the hub's identity (a second certificate for its name from the CA)
// replays every event the follower already has — as it was, reordered,
// and with forged bodies — and sends new events in duplicated, concurrent
// and overlapping transactions while the hub's own delivery is held back;
// then the hub delivers the same events itself. The follower stores each
// (room, seq) once with the hub's content, and its member receives each
// event and device message once.
func TestFederationReplayedAndDuplicatedTransactionsApplyOnce(t *testing.T) {
	var gate *faultProxy
	f := newFederationOpts(t, fedOptions{route: func(from, to, addr string) string {
		if from == freiburg && to == heidelberg {
			gate = newFaultProxy(t, addr, faultConfig{})
			return gate.addr()
		}
		return addr
	}}, freiburg, heidelberg)
	room, ms := rawRoom(t, f, freiburg, heidelberg)
	hub, hd := ms[0], ms[1]
	seal := newSealer(t)
	ctx := ctxT(t)
	for i, m := range ms {
		for j := range 10 {
			id := fmt.Sprintf("first-%d-%d", i, j)
			if _, err := m.Send(ctx, room, id, proto.KindMLSApp, seal.seal([]byte(id))); err != nil {
				t.Fatal(err)
			}
		}
	}
	col := hd.collect(t, room)
	had := hd.history(t, room)
	asHub := f.peerAs(t, freiburg)

	// Replays of what Heidelberg has: as it was, twice under one id and
	// under another, concurrently, reversed, and with forged bodies.
	forged := slices.Clone(had)
	for i := range forged {
		if forged[i].Kind == proto.KindMLSApp {
			forged[i].Body = seal.seal([]byte("forged"))
		}
	}
	slices.Reverse(forged)
	replays := [][]proto.FedItem{eventItems(had), eventItems(had), eventItems(forged)}
	var wg sync.WaitGroup
	results := make([]proto.FedTransactionResult, 3*len(replays))
	errs := make([]error, len(results))
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = putTransaction(ctx, asHub, heidelberg, fmt.Sprintf("replay-%d", i%2), replays[i%len(replays)])
		})
	}
	wg.Wait()
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("replay %d: %v", i, errs[i])
		}
		if res.Applied != 0 || res.Repeated != len(had) || len(res.Refused) != 0 {
			t.Errorf("replay %d of %d events answered %+v, want all repeated", i, len(had), res)
		}
	}
	checkLog(t, hd, room, had)

	// New events while the hub cannot reach Heidelberg: the hub queues
	// them; the test delivers them first, in duplicated, concurrent and
	// overlapping transactions.
	gate.setShut(true)
	for j := range 40 {
		id := fmt.Sprintf("held-%d", j)
		if _, err := hub.Send(ctx, room, id, proto.KindMLSApp, seal.seal([]byte(id))); err != nil {
			t.Fatal(err)
		}
	}
	if n := dbCount(t, hub.hs, `SELECT COUNT(*) FROM fed_outbound WHERE destination = ?`, heidelberg); n != 40 {
		t.Fatalf("the hub queued %d events for Heidelberg, want 40", n)
	}
	fresh := hub.history(t, room)[len(had):]
	items := eventItems(fresh)
	batches := [][]proto.FedItem{items, items, items[:25], items[10:], items[:10], items}
	results = make([]proto.FedTransactionResult, len(batches))
	errs = make([]error, len(batches))
	// A device message from the hub's user to Heidelberg's member, twice.
	dm := proto.FedItem{Kind: proto.FedItemDeviceMessage, DeviceMessage: &proto.FedDeviceMessage{
		Txn: "dm-1", Sender: hub.user, SenderDevice: hub.Device, UserID: hd.user, DeviceID: hd.Device, Kind: proto.KindMLSApp, Body: seal.seal([]byte("dm-1"))}}
	for i, b := range batches {
		wg.Go(func() {
			txn := "dup-all"
			if len(b) != len(items) {
				txn = fmt.Sprintf("dup-part-%d", i)
			}
			results[i], errs[i] = putTransaction(ctx, asHub, heidelberg, txn, append(slices.Clone(b), dm))
		})
	}
	wg.Wait()
	applied := 0
	for i, res := range results {
		if errs[i] != nil {
			t.Fatalf("transaction %d: %v", i, errs[i])
		}
		if res.Applied+res.Repeated != len(batches[i])+1 || len(res.Refused) != 0 {
			t.Errorf("transaction %d of %d items answered %+v", i, len(batches[i])+1, res)
		}
		applied += res.Applied
	}
	// Each event and the device message were applied exactly once among
	// all those transactions (transactions wholly after the device
	// message's first application count it as repeated).
	if applied != len(items)+1 {
		t.Errorf("the duplicated transactions applied %d items in all, want %d", applied, len(items)+1)
	}

	// The hub delivers its queue, which Heidelberg has already applied.
	gate.setShut(false)
	awaitCond(t, 50*time.Second, "the hub's queue for Heidelberg drained", func() bool {
		return dbCount(t, hub.hs, `SELECT COUNT(*) FROM fed_outbound WHERE destination = ?`, heidelberg) == 0
	})
	for j := range 5 {
		id := fmt.Sprintf("after-%d", j)
		if _, err := hub.Send(ctx, room, id, proto.KindMLSApp, seal.seal([]byte(id))); err != nil {
			t.Fatal(err)
		}
	}
	hubLog := hub.history(t, room)
	last := hubLog[len(hubLog)-1].Seq
	awaitCond(t, 30*time.Second, "Heidelberg's member receiving everything", func() bool { return col.has(last) })
	col.stop()
	checkOnceInOrder(t, hd.user+" (sync)", col.seqs(), streamStart(hubLog, hd.user), last)
	checkLog(t, hd, room, hubLog)
	messageIDs(t, seal, hubLog)
	if rows, distinct, maxSeq := dbStats(t, hd.hs, room); rows != int(last) || distinct != int(last) || maxSeq != last {
		t.Errorf("Heidelberg's database holds %d rows, %d distinct seqs up to %d for %d events", rows, distinct, maxSeq, last)
	}
	col.mu.Lock()
	var dms int
	for _, m := range col.devMsgs {
		if m.Sender == hub.user && string(seal.open(t, m.Body)) == "dm-1" {
			dms++
		}
	}
	col.mu.Unlock()
	if n := dbCount(t, hd.hs, `SELECT COUNT(*) FROM device_messages WHERE sender = ?`, hub.user); n != 1 || dms != 1 {
		t.Errorf("the duplicated device message is stored %d times and was received %d times, want once", n, dms)
	}
}

// TestFederationServersSpeakOnlyForThemselves: a server with a valid
// certificate for its own name can neither act in a room it has no members
// in, nor speak for another server's users, nor pretend to be a room's hub;
// each attempt is refused with M_FORBIDDEN or listed as refused in the
// transaction's answer, and nothing of it is stored anywhere.
func TestFederationServersSpeakOnlyForThemselves(t *testing.T) {
	f := newFederationOpts(t, fedOptions{extra: []string{rogue}}, freiburg, heidelberg, stuttgart)
	room, ms := rawRoom(t, f, freiburg, heidelberg, stuttgart)
	hub, hd, st := ms[0], ms[1], ms[2]
	seal := newSealer(t)
	ctx := ctxT(t)
	for i, m := range ms {
		id := fmt.Sprintf("hello-%d", i)
		if _, err := m.Send(ctx, room, id, proto.KindMLSApp, seal.seal([]byte(id))); err != nil {
			t.Fatal(err)
		}
	}
	last := hub.lastSeq(t, room)
	for _, m := range ms[1:] {
		m.receive(t, room, 0, last, 30*time.Second)
	}
	asRogue, asHD := f.peerAs(t, rogue), f.peerAs(t, heidelberg)
	mallory := "@mallory:" + rogue
	roomPath := "/fed/v1/rooms/" + url.PathEscape(room)

	// Requests to the hub.
	submit := func(sender string) proto.FedSubmitRequest {
		return proto.FedSubmitRequest{Sender: sender, DeviceID: "DEV", Kind: proto.KindMLSApp, Body: seal.seal([]byte("intruder"))}
	}
	forbidden := []struct {
		name         string
		as           *fedapi.Client
		method, path string
		body         any
	}{
		{"a server without members submits", asRogue, http.MethodPut, roomPath + "/submit/t1", submit(mallory)},
		{"a server without members submits for a member", asRogue, http.MethodPut, roomPath + "/submit/t2", submit(hd.user)},
		{"a server without members joins", asRogue, http.MethodPost, roomPath + "/membership", proto.FedMembershipRequest{Actor: mallory, Action: "join"}},
		{"a server without members reads the log", asRogue, http.MethodGet, roomPath + "/events?from=1&limit=10", nil},
		{"a member server submits for another server's user", asHD, http.MethodPut, roomPath + "/submit/t3", submit(st.user)},
		{"a member server submits for the hub's user", asHD, http.MethodPut, roomPath + "/submit/t4", submit(hub.user)},
		{"a member server leaves for another server's user", asHD, http.MethodPost, roomPath + "/membership", proto.FedMembershipRequest{Actor: st.user, Action: "leave"}},
		{"a member server invites", asHD, http.MethodPost, roomPath + "/membership", proto.FedMembershipRequest{Actor: hd.user, Action: "invite", Target: mallory}},
		{"a member server claims for another server's user", asHD, http.MethodPost, "/fed/v1/keys/claim", proto.FedClaimRequest{Requester: st.user, UserID: hub.user}},
	}
	for _, c := range forbidden {
		err := c.as.Do(ctx, freiburg, c.method, c.path, c.body, nil)
		var re *fedapi.RemoteError
		if !errors.As(err, &re) || re.Status != http.StatusForbidden || re.Code != proto.ErrForbidden {
			t.Errorf("%s: %v, want 403 %s", c.name, err, proto.ErrForbidden)
		}
	}

	// Transactions to followers (and to the hub) with events of a room
	// whose hub the sender is not, or with device messages of users of
	// another server.
	forge := func(r string, sender string) proto.FedItem {
		return proto.FedItem{Kind: proto.FedItemEvent, Event: &proto.Event{RoomID: r, Seq: last + 1, Sender: sender, DeviceID: "DEV",
			Kind: proto.KindMLSApp, Body: seal.seal([]byte("forged")), Time: time.Now()}}
	}
	unknownRoom := "!AAAAAAAAAAAAAAAAAAAAAA:" + freiburg
	forgeDM := func(sender string, to *rawMember) proto.FedItem {
		return proto.FedItem{Kind: proto.FedItemDeviceMessage, DeviceMessage: &proto.FedDeviceMessage{Txn: "forged", Sender: sender, SenderDevice: "DEV",
			UserID: to.user, DeviceID: to.Device, Kind: proto.KindMLSApp, Body: seal.seal([]byte("forged-dm"))}}
	}
	refused := []struct {
		name string
		as   *fedapi.Client
		dest string
		item proto.FedItem
	}{
		{"a server without members sends the room's next event", asRogue, heidelberg, forge(room, mallory)},
		{"a server without members sends an event for a member", asRogue, stuttgart, forge(room, hd.user)},
		{"a server without members creates a room of another hub", asRogue, heidelberg, forge(unknownRoom, mallory)},
		{"a member server pretends to be the hub to another follower", asHD, stuttgart, forge(room, hd.user)},
		{"a member server pretends to be the hub to the hub", asHD, freiburg, forge(room, hd.user)},
		{"a server sends a device message for another server's user", asRogue, heidelberg, forgeDM(hub.user, hd)},
		{"a member server sends a device message for another server's user", asHD, stuttgart, forgeDM(hub.user, st)},
	}
	for i, c := range refused {
		res, err := putTransaction(ctx, c.as, c.dest, fmt.Sprintf("forged-%d", i), []proto.FedItem{c.item})
		if err != nil {
			t.Errorf("%s: %v, want an answer listing the item as refused", c.name, err)
			continue
		}
		if res.Applied != 0 || res.Repeated != 0 || len(res.Refused) != 1 {
			t.Errorf("%s: answered %+v, want the item refused", c.name, res)
		}
	}

	// Nothing of it was stored; the room goes on with the hub's events.
	if _, err := hub.Send(ctx, room, "after", proto.KindMLSApp, seal.seal([]byte("after"))); err != nil {
		t.Fatal(err)
	}
	hubLog := hub.history(t, room)
	for _, m := range ms[1:] {
		m.receive(t, room, 0, last+1, 30*time.Second)
		checkLog(t, m, room, hubLog)
	}
	for _, m := range ms {
		if rows, distinct, maxSeq := dbStats(t, m.hs, room); rows != int(last+1) || distinct != rows || maxSeq != last+1 {
			t.Errorf("%s's database holds %d rows, %d seqs up to %d, want %d", m.hs.name, rows, distinct, maxSeq, last+1)
		}
		if n := dbCount(t, m.hs, `SELECT COUNT(*) FROM rooms WHERE id = ?`, unknownRoom); n != 0 {
			t.Errorf("%s created the room of a forged event", m.hs.name)
		}
		if n := dbCount(t, m.hs, `SELECT COUNT(*) FROM device_messages`); n != 0 {
			t.Errorf("%s stored %d forged device messages", m.hs.name, n)
		}
		if n := dbCount(t, m.hs, `SELECT COUNT(*) FROM members WHERE user_id = ?`, mallory); n != 0 {
			t.Errorf("%s made %s a member", m.hs.name, mallory)
		}
	}
}

// TestFederationThroughFaultyNetwork: the servers reach each other only
// through proxies that break every fifth connection (at once or after a
// few bytes), delay the others, and close healthy ones after about a
// second; 300 messages from members on all three servers, sent over
// about five seconds, still reach every member exactly once, in the hub's
// order. Sends that a broken forward fails are retried under the same
// transaction id, as a client does.
func TestFederationThroughFaultyNetwork(t *testing.T) {
	proxies := map[string]*faultProxy{}
	f := newFederationOpts(t, fedOptions{route: func(from, to, addr string) string {
		if proxies[to] == nil {
			proxies[to] = newFaultProxy(t, addr, faultConfig{failEvery: 5, delay: 100 * time.Millisecond, lifetime: time.Second})
		}
		return proxies[to].addr()
	}}, freiburg, heidelberg, stuttgart)
	room, ms := rawRoom(t, f, freiburg, heidelberg, stuttgart)
	seal := newSealer(t)
	ctx := ctxT(t)
	cols := make([]*streamCollector, len(ms))
	for i, m := range ms {
		cols[i] = m.collect(t, room)
	}

	const perSender = 100
	var ack acked
	var failures atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		wg.Go(func() {
			tick := time.NewTicker(50 * time.Millisecond) // pacing the offered load
			defer tick.Stop()
			for j := range perSender {
				<-tick.C
				id := fmt.Sprintf("m-%d-%d", i, j)
				seq, err := m.sendUntilAcked(ctx, room, id, seal, 50*time.Second, func(error) { failures.Add(1) })
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", m.user, err)
					return
				}
				ack.add(id, seq)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, m := range ms {
			os.WriteFile("/tmp/fedtests-"+m.hs.name+".log", m.hs.stderr.Bytes(), 0o644)
		}
		t.Fatal(err)
	}
	hubLog := ms[0].history(t, room)
	last := hubLog[len(hubLog)-1].Seq
	for i, m := range ms {
		awaitCond(t, 50*time.Second, m.user+" receiving everything", func() bool { return cols[i].has(last) })
		cols[i].stop()
		checkOnceInOrder(t, m.user+" (sync)", cols[i].seqs(), streamStart(hubLog, m.user), last)
		checkLog(t, m, room, hubLog)
	}
	ids := messageIDs(t, seal, hubLog)
	if len(ids) != len(ms)*perSender {
		t.Errorf("the room holds %d messages, want %d", len(ids), len(ms)*perSender)
	}
	for id, seq := range ack.seq {
		if ids[id] != seq {
			t.Errorf("acknowledged message %s at seq %d is at seq %d in the hub's log (0: lost)", id, seq, ids[id])
		}
	}
	var accepted, broken int64
	for _, p := range proxies {
		accepted += p.accepted.Load()
		broken += p.broken.Load()
	}
	t.Logf("proxies: %d connections, %d broken; %d sends failed and were retried", accepted, broken, failures.Load())
	if broken == 0 {
		t.Errorf("the proxies broke none of %d connections: the test tested nothing", accepted)
	}
}
