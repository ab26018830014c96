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
	"errors"
	"fmt"
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
	// route returns the address server from uses to reach peer to's
	// federation port; nil means to's own address.
	route func(from, to string) string
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
				addr = opts.route(n, p)
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
		if err := m.Join(ctx, room); err != nil {
			t.Fatalf("%s joins: %v", m.user, err)
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
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	s, err := m.SyncWith(ctx, since, api.SyncOptions{Binary: true})
	if err != nil {
		t.Fatalf("%s opens sync: %v", m.user, err)
	}
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(within))
	var got []proto.Event
	cursor := since
	for {
		fr, err := s.Next()
		if err != nil {
			t.Fatalf("%s waiting for event %d of %s (has %d events after %d): %v", m.user, until, room, len(got), since, err)
		}
		for _, ev := range fr.Events {
			cursor = max(cursor, ev.Stream)
			if ev.RoomID != room {
				continue
			}
			got = append(got, ev)
			if ev.Seq >= until {
				return got, cursor
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
func messageIDs(t testing.TB, s sealer, evs []proto.Event) map[string]int64 {
	t.Helper()
	ids := map[string]int64{}
	for _, ev := range evs {
		if ev.Kind != proto.KindMLSApp {
			continue
		}
		id := string(s.openTB(t, ev.Body))
		if prev, dup := ids[id]; dup {
			t.Fatalf("message %q stored twice, at seq %d and %d", id, prev, ev.Seq)
		}
		ids[id] = ev.Seq
	}
	return ids
}

func (s sealer) openTB(t testing.TB, ct []byte) []byte {
	t.Helper()
	n := s.aead.NonceSize()
	if len(ct) < n {
		t.Fatalf("ciphertext of %d bytes too short", len(ct))
	}
	pt, err := s.aead.Open(nil, ct[:n], ct[n:], nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return pt
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

// waitFor waits until cond holds, checking it every 10 ms (a readiness
// probe, not a synchronisation), and fails the test after within.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
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
	waitFor(t, 30*time.Second, "a third of the messages acknowledged", func() bool { return ack.n.Load() >= 2*perSender/3 || failed.Load() })
	st.hs.stop(syscall.SIGKILL)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	last := hub.lastSeq(t, room)
	t.Logf("Stuttgart was killed after seq %d of %d or later", before, last)
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
	waitFor(t, 30*time.Second, "a third of the messages acknowledged", func() bool { return ack.n.Load() >= int64(len(ms)*perSender/3) })
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
