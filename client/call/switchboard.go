package call

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Config configures a Switchboard. UserID, DeviceID and Signaller are
// required; every other field has a working default.
type Config struct {
	// UserID and DeviceID identify this device (e.g. "@dr.weber:uk-freiburg.example").
	UserID, DeviceID string
	// Signaller sends this device's call events.
	Signaller Signaller
	// Peer configures the WebRTC peers of the calls.
	Peer PeerConfig
	// Clock drives the signalling timers; nil means the system clock.
	Clock Clock
	// InviteLifetime is the lifetime of outgoing invites: after it an
	// unanswered call ends with invite_timeout. Default 90 s, the minimum
	// the specification recommends.
	InviteLifetime time.Duration
	// ConnectTimeout bounds the time from answer to connected media; after
	// it the call ends with ice_failed. Default 30 s.
	ConnectTimeout time.Duration
	// CandidateBatch is how long local ICE candidates are collected before
	// being sent in one m.call.candidates event (the end of gathering sends
	// at once). Default 200 ms.
	CandidateBatch time.Duration
	// NegotiateLifetime is the lifetime of renegotiation offers. Default 10 s.
	NegotiateLifetime time.Duration
	// StatsInterval is the period of "stats" updates while connected.
	// Default 1 s; negative disables them.
	StatsInterval time.Duration
	// RejectWhenBusy answers an invite that arrives during another call
	// with a user_busy hangup instead of ringing.
	RejectWhenBusy bool
	// Updates receives the switchboard's updates. Until Close the
	// switchboard blocks on it (except for stats updates, which are dropped
	// when it is full), so it must be drained; nil discards updates.
	Updates chan<- Update
	// Logger receives diagnostics (never SDP or candidates); nil means
	// slog.Default().
	Logger *slog.Logger
}

// Update is one event of a switchboard, as printed by `medicus client call
// --json`: ringing, connecting, connected, stats or ended.
type Update struct {
	// Event is the call's new state, or "stats".
	Event string `json:"event"`
	// CallID, Room, Peer and Direction identify the call.
	CallID    string    `json:"call_id"`
	Room      string    `json:"room"`
	Peer      string    `json:"peer"`
	Direction Direction `json:"direction"`
	// Reason says why the call ended (event "ended").
	Reason Reason `json:"reason,omitempty"`
	// Remote is set when the other party ended the call.
	Remote bool `json:"remote,omitempty"`
	// TimeToConnectMillis is the time from invite or ring to connected
	// (event "connected").
	TimeToConnectMillis float64 `json:"time_to_connect_ms,omitempty"`
	// Stats is the latest media statistics (events "stats" and "ended").
	Stats *Stats `json:"stats,omitempty"`
	// Time is when the update happened.
	Time time.Time `json:"ts"`
}

// Errors of the switchboard's methods.
var (
	// ErrNoCall: no call with that id.
	ErrNoCall = errors.New("call: no such call")
	// ErrWrongState: the call is not in a state that allows the operation.
	ErrWrongState = errors.New("call: operation not allowed in the call's state")
	// ErrBusy: there is already an active call with that user.
	ErrBusy = errors.New("call: already in a call with that user")
	// ErrClosed: the switchboard is closed.
	ErrClosed = errors.New("call: switchboard closed")
)

// Bounds on what the network can make a switchboard keep.
const (
	maxPendingCandidates = 256 // remote candidates buffered per party
	maxPendingParties    = 16  // answering parties buffered per outgoing call
	maxEndedCalls        = 64  // ended calls kept for lookups
	maxActiveCalls       = 16  // calls ringing or up at once; further invites are ignored
	sendTimeout          = 15 * time.Second
)

// Switchboard runs the calls of one device: it places, answers and ends
// calls, handles incoming call events, and drives each call's WebRTC peer.
// All call state is owned by one goroutine, which Close stops.
type Switchboard struct {
	cfg   Config
	clock Clock
	log   *slog.Logger

	ops     chan func()
	ctx     context.Context // canceled by Close: bounds every send
	cancel  context.CancelFunc
	closing chan struct{} // closed when Close starts: updates stop blocking
	quit    chan struct{} // closed when the loop must stop
	done    chan struct{} // closed when the loop has stopped
	once    sync.Once

	peers sync.WaitGroup // peers being closed

	// Owned by the loop goroutine.
	calls map[string]*Call
	ended []string
}

// New starts a switchboard. Close stops it.
func New(cfg Config) (*Switchboard, error) {
	if cfg.UserID == "" || cfg.DeviceID == "" || cfg.Signaller == nil {
		return nil, errors.New("call: config needs UserID, DeviceID and Signaller")
	}
	if cfg.InviteLifetime <= 0 {
		cfg.InviteLifetime = 90 * time.Second
	}
	if cfg.InviteLifetime > MaxLifetimeMillis*time.Millisecond {
		cfg.InviteLifetime = MaxLifetimeMillis * time.Millisecond
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 30 * time.Second
	}
	if cfg.CandidateBatch <= 0 {
		cfg.CandidateBatch = 200 * time.Millisecond
	}
	if cfg.NegotiateLifetime <= 0 {
		cfg.NegotiateLifetime = 10 * time.Second
	}
	if cfg.StatsInterval == 0 {
		cfg.StatsInterval = time.Second
	}
	s := &Switchboard{
		cfg:     cfg,
		clock:   cfg.Clock,
		log:     cfg.Logger,
		ops:     make(chan func(), 1024),
		closing: make(chan struct{}),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		calls:   make(map[string]*Call),
	}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("device", cfg.DeviceID)
	go s.loop()
	return s, nil
}

func (s *Switchboard) loop() {
	defer close(s.done)
	for {
		select {
		case f := <-s.ops:
			f()
		case <-s.quit:
			return
		}
	}
}

// do runs f on the loop goroutine and waits for it.
func (s *Switchboard) do(ctx context.Context, f func()) error {
	fin := make(chan struct{})
	select {
	case s.ops <- func() { defer close(fin); f() }:
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-fin:
		return nil
	case <-s.done:
		return ErrClosed
	}
}

// post queues f for the loop goroutine without waiting for it to run.
func (s *Switchboard) post(f func()) {
	select {
	case s.ops <- f:
	case <-s.quit:
	}
}

// Close hangs up every active call (user_hangup), stops the switchboard and
// waits for the calls' peers to close.
func (s *Switchboard) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	var err error
	s.once.Do(func() {
		close(s.closing)
		err = s.do(ctx, func() {
			for _, c := range s.calls {
				if c.State() != StateEnded {
					s.hangup(c, ReasonUserHangup)
				}
			}
		})
		s.cancel()
		close(s.quit)
	})
	<-s.done
	s.peers.Wait()
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// Place calls user in room: it creates the peer and its offer, and sends
// the invite to all of the user's devices. If that user is already ringing
// this device with a call, Place answers that call instead and returns it
// (glare: the invite arrived while this one was being prepared). It returns
// ErrBusy if a call with user is already active.
func (s *Switchboard) Place(ctx context.Context, room, user string) (*Call, error) {
	var c *Call
	var err error
	if derr := s.do(ctx, func() { c, err = s.place(room, user) }); derr != nil {
		return nil, derr
	}
	return c, err
}

// Answer answers a ringing incoming call.
func (s *Switchboard) Answer(ctx context.Context, callID string) error {
	return s.withCall(ctx, callID, func(c *Call) error {
		if c.dir != Incoming || c.State() != StateRinging {
			return fmt.Errorf("answer call %s (%s): %w", c.id, c.State(), ErrWrongState)
		}
		return s.answer(c)
	})
}

// Reject declines a ringing incoming call on all of this user's devices.
func (s *Switchboard) Reject(ctx context.Context, callID string) error {
	return s.withCall(ctx, callID, func(c *Call) error {
		if c.dir != Incoming || c.State() != StateRinging {
			return fmt.Errorf("reject call %s (%s): %w", c.id, c.State(), ErrWrongState)
		}
		s.hangup(c, ReasonUserHangup)
		return nil
	})
}

// Hangup ends a call with reason, which must be sendable (Reason.Sendable).
// Hanging up a ringing incoming call with user_hangup rejects it.
func (s *Switchboard) Hangup(ctx context.Context, callID string, reason Reason) error {
	if !reason.Sendable() {
		return fmt.Errorf("hang up with %q: %w", reason, ErrInvalidEvent)
	}
	return s.withCall(ctx, callID, func(c *Call) error {
		if c.State() == StateEnded {
			return fmt.Errorf("hang up call %s: %w", c.id, ErrWrongState)
		}
		s.hangup(c, reason)
		return nil
	})
}

// Renegotiate sends a new offer on an answered call (m.call.negotiate),
// with an ICE restart if iceRestart. It returns ErrWrongState while another
// negotiation is in progress.
func (s *Switchboard) Renegotiate(ctx context.Context, callID string, iceRestart bool) error {
	return s.withCall(ctx, callID, func(c *Call) error {
		st := c.State()
		if (st != StateConnecting && st != StateConnected) || c.peer == nil || c.offer != nil || !c.peer.Stable() {
			return fmt.Errorf("renegotiate call %s: %w", c.id, ErrWrongState)
		}
		return s.offerNegotiation(c, iceRestart)
	})
}

// Call returns the call with id, or nil.
func (s *Switchboard) Call(ctx context.Context, id string) *Call {
	var c *Call
	_ = s.do(ctx, func() { c = s.calls[id] })
	return c
}

// Calls returns the switchboard's calls: the active ones and recently ended.
func (s *Switchboard) Calls(ctx context.Context) []*Call {
	var cs []*Call
	_ = s.do(ctx, func() {
		for _, c := range s.calls {
			cs = append(cs, c)
		}
	})
	return cs
}

// Deliver hands the switchboard one incoming call event. Events that do not
// belong to a known call, come from a party other than the call's, or
// arrive in a state where they mean nothing are ignored, as the
// specification requires. It blocks only while the switchboard's queue is
// full.
func (s *Switchboard) Deliver(ctx context.Context, in Received) error {
	if in.Event == nil {
		return fmt.Errorf("deliver: %w: no event", ErrInvalidEvent)
	}
	if err := in.Event.validate(); err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	select {
	case s.ops <- func() { s.handle(in) }:
		return nil
	case <-s.quit:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Switchboard) withCall(ctx context.Context, id string, f func(*Call) error) error {
	var err error
	if derr := s.do(ctx, func() {
		c := s.calls[id]
		if c == nil {
			err = fmt.Errorf("call %.40q: %w", id, ErrNoCall)
			return
		}
		err = f(c)
	}); derr != nil {
		return derr
	}
	return err
}

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomID returns n random characters of [0-9A-Za-z].
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

func (s *Switchboard) newCall(id, room, remote string, dir Direction) *Call {
	c := &Call{
		id: id, room: room, remote: remote, dir: dir,
		changed:   make(chan struct{}),
		startedAt: s.clock.Now(),
		partyID:   randomID(12),
		pending:   make(map[string][]Candidate),
		timers:    make(map[string]func() bool),
		polite:    dir == Incoming, // the callee is polite (Matrix VoIP "Politeness")
	}
	s.calls[id] = c
	return c
}

func (s *Switchboard) header(c *Call) Header {
	return Header{CallID: c.id, PartyID: c.partyID, Version: ProtocolVersion}
}

// send sends ev for call c to one device (or all the remote user's devices
// if device is empty).
func (s *Switchboard) send(c *Call, device string, ev Event) error {
	ctx, cancel := context.WithTimeout(s.ctx, sendTimeout)
	defer cancel()
	err := s.cfg.Signaller.Send(ctx, Target{Room: c.room, UserID: c.remote, DeviceID: device}, ev)
	if err != nil {
		s.log.Warn("call event not sent", "call", c.id, "event", ev.Type(), "err", err)
		return fmt.Errorf("send %s: %w", ev.Type(), err)
	}
	return nil
}

// target is the device the call's events go to: the selected remote party's,
// or every device of the remote user before an answer is selected.
func (c *Call) target() string { return c.remoteDevice }

func (s *Switchboard) timer(c *Call, name string, d time.Duration, f func()) {
	if stop := c.timers[name]; stop != nil {
		stop()
	}
	c.timers[name] = s.clock.AfterFunc(d, func() {
		s.post(func() {
			if c.State() != StateEnded {
				f()
			}
		})
	})
}

func (s *Switchboard) stopTimer(c *Call, name string) {
	if stop := c.timers[name]; stop != nil {
		stop()
		delete(c.timers, name)
	}
}

func (s *Switchboard) emit(c *Call, event string, withStats bool) {
	if s.cfg.Updates == nil {
		return
	}
	reason, remote := c.Reason()
	u := Update{
		Event: event, CallID: c.id, Room: c.room, Peer: c.remote, Direction: c.dir,
		Reason: reason, Remote: remote, Time: s.clock.Now(),
	}
	if event == StateConnected.String() {
		u.TimeToConnectMillis = float64(c.TimeToConnect().Microseconds()) / 1000
	}
	if withStats {
		st := c.LastStats()
		u.Stats = &st
	}
	if event == "stats" {
		select {
		case s.cfg.Updates <- u:
		default:
		}
		return
	}
	select {
	case s.cfg.Updates <- u:
		return
	default:
	}
	// Block for a slow reader, but not once Close started: nobody may be
	// reading any more.
	select {
	case s.cfg.Updates <- u:
	case <-s.closing:
	}
}

func (s *Switchboard) newPeer(c *Call) (*Peer, error) {
	pc := s.cfg.Peer
	if pc.Logger == nil {
		pc.Logger = s.log
	}
	return NewPeer(pc, PeerHandlers{
		OnCandidate:  func(cand *Candidate) { s.post(func() { s.localCandidate(c, cand) }) },
		OnState:      func(st PeerState) { s.post(func() { s.peerState(c, st) }) },
		OnMediaError: func(error) { s.post(func() { s.endLocally(c, ReasonUserMediaFailed) }) },
	})
}

func (s *Switchboard) place(room, user string) (*Call, error) {
	for _, c := range s.calls {
		if c.remote != user || c.State() == StateEnded {
			continue
		}
		if c.dir == Incoming && c.State() == StateRinging {
			// Matrix VoIP "Glare": an invite received while preparing
			// one is answered instead.
			if err := s.answer(c); err != nil {
				return nil, err
			}
			return c, nil
		}
		return nil, fmt.Errorf("call %s: %w", user, ErrBusy)
	}
	c := s.newCall(randomID(24), room, user, Outgoing)
	peer, err := s.newPeer(c)
	if err != nil {
		delete(s.calls, c.id)
		return nil, fmt.Errorf("place call: %w", err)
	}
	c.peer = peer
	offer, err := peer.CreateOffer(false)
	if err != nil {
		s.finish(c, ReasonUnknownError, false)
		return nil, fmt.Errorf("place call: %w", err)
	}
	c.invite = &Invite{
		Header:   s.header(c),
		Lifetime: s.cfg.InviteLifetime.Milliseconds(),
		Offer:    offer,
		Invitee:  user,
	}
	c.setState(StateRinging, s.clock.Now())
	if err := s.send(c, "", c.invite); err != nil {
		s.finish(c, ReasonUnknownError, false)
		return nil, fmt.Errorf("place call: %w", err)
	}
	s.log.Info("call placed", "call", c.id)
	s.emit(c, StateRinging.String(), false)
	s.timer(c, "invite", s.cfg.InviteLifetime, func() {
		if c.remoteParty == "" {
			s.hangup(c, ReasonInviteTimeout)
		}
	})
	return c, nil
}

func (s *Switchboard) answer(c *Call) error {
	peer, err := s.newPeer(c)
	if err != nil {
		s.hangup(c, ReasonUserMediaFailed)
		return fmt.Errorf("answer call %s: %w", c.id, err)
	}
	c.peer = peer
	if err := peer.SetRemoteDescription(c.invite.Offer); err != nil {
		s.hangup(c, ReasonUnknownError)
		return fmt.Errorf("answer call %s: %w", c.id, err)
	}
	c.remoteSet = true
	s.applyPending(c, c.remoteParty)
	ans, err := peer.CreateAnswer()
	if err != nil {
		s.hangup(c, ReasonUnknownError)
		return fmt.Errorf("answer call %s: %w", c.id, err)
	}
	s.stopTimer(c, "ring")
	if err := s.send(c, c.remoteDevice, &Answer{Header: s.header(c), Answer: ans}); err != nil {
		s.finish(c, ReasonUnknownError, false)
		return fmt.Errorf("answer call %s: %w", c.id, err)
	}
	c.setState(StateConnecting, s.clock.Now())
	s.emit(c, StateConnecting.String(), false)
	s.timer(c, "connect", s.cfg.ConnectTimeout, func() {
		if c.State() != StateConnected {
			s.hangup(c, ReasonICEFailed)
		}
	})
	return nil
}

// applyPending adds the buffered candidates of party to the peer, whose
// remote description is now set (trickle ICE, RFC 8838 §4).
func (s *Switchboard) applyPending(c *Call, party string) {
	for _, cand := range c.pending[party] {
		if err := c.peer.AddCandidate(cand); err != nil {
			s.log.Debug("remote candidate refused", "call", c.id, "err", err)
		}
	}
	c.pending = make(map[string][]Candidate)
}

// hangup ends c because of something on this side, telling the other side.
func (s *Switchboard) hangup(c *Call, reason Reason) {
	if c.State() == StateEnded {
		return
	}
	switch {
	case c.dir == Incoming && c.State() == StateRinging && reason == ReasonUserHangup:
		// A version 1 callee declines with m.call.reject, which ends
		// the ringing on all its user's devices.
		_ = s.send(c, c.remoteDevice, &Reject{Header: s.header(c)})
		s.finish(c, ReasonRejected, false)
		return
	default:
		_ = s.send(c, c.target(), &Hangup{Header: s.header(c), Reason: reason})
	}
	s.finish(c, reason, false)
}

// endLocally ends c with reason after a local failure: it tells the other
// side, except for an incoming call that is still only ringing here.
func (s *Switchboard) endLocally(c *Call, reason Reason) {
	if c.State() == StateEnded {
		return
	}
	s.hangup(c, reason)
}

// finish moves c to ended and releases its peer and timers.
func (s *Switchboard) finish(c *Call, reason Reason, remote bool) {
	if !c.end(reason, remote) {
		return
	}
	for name, stop := range c.timers {
		stop()
		delete(c.timers, name)
	}
	if c.batchStop != nil {
		c.batchStop()
		c.batchStop = nil
	}
	c.pending, c.localCands = nil, nil
	if c.peer != nil {
		c.mu.Lock()
		c.lastStats = c.peer.Stats()
		c.mu.Unlock()
		p := c.peer
		s.peers.Add(1)
		go func() {
			defer s.peers.Done()
			p.Close()
		}()
	}
	s.log.Info("call ended", "call", c.id, "reason", reason, "remote", remote)
	s.emit(c, StateEnded.String(), c.peer != nil)
	s.ended = append(s.ended, c.id)
	for len(s.ended) > maxEndedCalls {
		delete(s.calls, s.ended[0])
		s.ended = s.ended[1:]
	}
}

func (s *Switchboard) localCandidate(c *Call, cand *Candidate) {
	if c.State() == StateEnded {
		return
	}
	if cand == nil {
		c.localCands = append(c.localCands, Candidate{}) // end of candidates
		s.flushCandidates(c)
		return
	}
	c.localCands = append(c.localCands, *cand)
	if c.batchStop == nil {
		c.batchStop = s.clock.AfterFunc(s.cfg.CandidateBatch, func() {
			s.post(func() { s.flushCandidates(c) })
		})
	}
}

// flushCandidates sends the batched local candidates (Matrix VoIP "ICE
// Candidate Batching").
func (s *Switchboard) flushCandidates(c *Call) {
	if c.batchStop != nil {
		c.batchStop()
		c.batchStop = nil
	}
	if c.State() == StateEnded {
		return
	}
	for len(c.localCands) > 0 {
		n := min(len(c.localCands), MaxCandidates)
		batch := c.localCands[:n:n]
		c.localCands = c.localCands[n:]
		_ = s.send(c, c.target(), &Candidates{Header: s.header(c), Candidates: batch})
	}
}

func (s *Switchboard) peerState(c *Call, st PeerState) {
	if c.State() == StateEnded {
		return
	}
	switch st {
	case PeerConnected:
		c.everConnected = true
		s.stopTimer(c, "connect")
		if c.setState(StateConnected, s.clock.Now()) {
			s.log.Info("call connected", "call", c.id, "after", c.TimeToConnect())
			s.emit(c, StateConnected.String(), false)
			s.scheduleStats(c)
		}
	case PeerFailed:
		// ice_timeout if media had flowed, ice_failed otherwise (Matrix
		// m.call.hangup reasons).
		if c.everConnected {
			s.hangup(c, ReasonICETimeout)
		} else {
			s.hangup(c, ReasonICEFailed)
		}
	case PeerDisconnected:
		s.log.Info("call media disconnected", "call", c.id)
	}
}

func (s *Switchboard) scheduleStats(c *Call) {
	if s.cfg.StatsInterval < 0 {
		return
	}
	s.timer(c, "stats", s.cfg.StatsInterval, func() {
		st := c.peer.Stats()
		c.mu.Lock()
		c.lastStats = st
		c.mu.Unlock()
		s.emit(c, "stats", true)
		s.scheduleStats(c)
	})
}

// handle processes one incoming event on the loop goroutine.
func (s *Switchboard) handle(in Received) {
	h := in.Event.Head()
	if in.Sender == s.cfg.UserID && in.SenderDevice == s.cfg.DeviceID {
		return // our own echo
	}
	if inv, ok := in.Event.(*Invite); ok {
		s.onInvite(in, inv)
		return
	}
	c := s.calls[h.CallID]
	if c == nil || c.State() == StateEnded || in.Sender != c.remote || in.Room != c.room {
		s.log.Debug("call event ignored", "call", h.CallID, "event", in.Event.Type())
		return
	}
	switch ev := in.Event.(type) {
	case *Candidates:
		s.onCandidates(c, ev)
	case *Answer:
		s.onAnswer(in, c, ev)
	case *SelectAnswer:
		s.onSelectAnswer(c, ev)
	case *Reject:
		s.onReject(c, ev)
	case *Negotiate:
		s.onNegotiate(in, c, ev)
	case *Hangup:
		s.onHangup(c, ev)
	}
}

func (s *Switchboard) onInvite(in Received, inv *Invite) {
	if inv.Invitee != "" && inv.Invitee != s.cfg.UserID {
		return
	}
	if s.calls[inv.CallID] != nil {
		return // a duplicate
	}
	lifetime := time.Duration(inv.Lifetime) * time.Millisecond
	if in.Age >= lifetime {
		s.log.Info("expired invite ignored", "call", inv.CallID)
		return
	}
	// Matrix VoIP "Glare": an invite from a user we are calling. Both sides
	// keep the call with the lexicographically lower id.
	for _, g := range s.calls {
		if g.dir != Outgoing || g.remote != in.Sender || g.State() != StateRinging || g.remoteParty != "" {
			continue
		}
		if inv.CallID > g.id {
			s.log.Info("glare: incoming call loses", "call", inv.CallID, "kept", g.id)
			return
		}
		s.log.Info("glare: incoming call wins", "call", inv.CallID, "replaced", g.id)
		_ = s.send(g, "", &Hangup{Header: s.header(g), Reason: ReasonUserHangup})
		s.finish(g, ReasonReplaced, false)
		c := s.ring(in, inv, lifetime)
		if err := s.answer(c); err != nil {
			s.log.Warn("glare: answering the winning call failed", "call", c.id, "err", err)
		}
		return
	}
	if active := len(s.calls) - len(s.ended); active >= maxActiveCalls {
		s.log.Warn("invite ignored: too many calls", "call", inv.CallID, "active", active)
		return
	}
	if s.cfg.RejectWhenBusy {
		for _, o := range s.calls {
			if st := o.State(); st == StateConnecting || st == StateConnected || (st == StateRinging && o.dir == Outgoing) {
				busy := &Call{id: inv.CallID, room: in.Room, remote: in.Sender, partyID: randomID(12)}
				_ = s.send(busy, in.SenderDevice, &Hangup{Header: s.header(busy), Reason: ReasonUserBusy})
				s.log.Info("busy: invite declined", "call", inv.CallID)
				return
			}
		}
	}
	s.ring(in, inv, lifetime)
}

// ring records an incoming call and rings until its invite expires.
func (s *Switchboard) ring(in Received, inv *Invite, lifetime time.Duration) *Call {
	c := s.newCall(inv.CallID, in.Room, in.Sender, Incoming)
	c.invite = inv
	c.remoteParty, c.remoteDevice = inv.PartyID, in.SenderDevice
	c.setState(StateRinging, s.clock.Now())
	s.emit(c, StateRinging.String(), false)
	s.timer(c, "ring", lifetime-in.Age, func() {
		if c.State() == StateRinging {
			// The invite expired unanswered: stop ringing, send nothing.
			s.finish(c, ReasonInviteTimeout, false)
		}
	})
	return c
}

func (s *Switchboard) onCandidates(c *Call, ev *Candidates) {
	party := ev.PartyID
	usable := c.peer != nil && c.remoteSet && party == c.remoteParty
	if c.dir == Outgoing && c.remoteParty != "" && party != c.remoteParty {
		return // candidates of an answer that was not selected
	}
	if c.dir == Incoming && party != c.remoteParty {
		return
	}
	if !usable {
		// Buffered until the remote description is set (answer, or
		// select of this party's answer).
		if _, ok := c.pending[party]; !ok && len(c.pending) >= maxPendingParties {
			return
		}
		room := maxPendingCandidates - len(c.pending[party])
		c.pending[party] = append(c.pending[party], ev.Candidates[:min(room, len(ev.Candidates))]...)
		return
	}
	for _, cand := range ev.Candidates {
		if err := c.peer.AddCandidate(cand); err != nil {
			s.log.Debug("remote candidate refused", "call", c.id, "err", err)
		}
	}
}

func (s *Switchboard) onAnswer(in Received, c *Call, ev *Answer) {
	if c.dir != Outgoing || c.remoteParty != "" {
		return // not ours to select, or another device's answer came first
	}
	c.remoteParty, c.remoteDevice = ev.PartyID, in.SenderDevice
	s.stopTimer(c, "invite")
	if err := c.peer.SetRemoteDescription(ev.Answer); err != nil {
		s.log.Warn("answer refused", "call", c.id, "err", err)
		s.hangup(c, ReasonUnknownError)
		return
	}
	c.remoteSet = true
	s.applyPending(c, c.remoteParty)
	// The callee's other devices stop ringing when they see another
	// party selected (MSC2746 m.call.select_answer).
	_ = s.send(c, "", &SelectAnswer{Header: s.header(c), SelectedPartyID: ev.PartyID})
	c.setState(StateConnecting, s.clock.Now())
	s.emit(c, StateConnecting.String(), false)
	s.timer(c, "connect", s.cfg.ConnectTimeout, func() {
		if c.State() != StateConnected {
			s.hangup(c, ReasonICEFailed)
		}
	})
}

func (s *Switchboard) onSelectAnswer(c *Call, ev *SelectAnswer) {
	if c.dir != Incoming || ev.PartyID != c.remoteParty {
		return
	}
	if ev.SelectedPartyID != c.partyID {
		// Answered (or rejected) on another device: end quietly.
		s.finish(c, ReasonAnsweredElsewhere, true)
	}
}

func (s *Switchboard) onReject(c *Call, ev *Reject) {
	if c.dir != Outgoing || c.remoteParty != "" {
		return // a reject after an answer was selected is disregarded
	}
	c.remoteParty = ev.PartyID
	_ = s.send(c, "", &SelectAnswer{Header: s.header(c), SelectedPartyID: ev.PartyID})
	s.finish(c, ReasonRejected, true)
}

func (s *Switchboard) onHangup(c *Call, ev *Hangup) {
	// Before an answer is selected any of the callee's devices may end an
	// outgoing call (e.g. user_busy); after it only the selected party.
	if !(c.dir == Outgoing && c.remoteParty == "") && ev.PartyID != c.remoteParty {
		return
	}
	s.finish(c, ev.Reason, true)
}

// offerNegotiation sends a renegotiation offer. The offer is applied locally
// only with its answer (see Peer.PrepareOffer).
func (s *Switchboard) offerNegotiation(c *Call, iceRestart bool) error {
	offer, err := c.peer.PrepareOffer(iceRestart)
	if err != nil {
		return fmt.Errorf("renegotiate call %s: %w", c.id, err)
	}
	c.offer = &offer
	c.mu.Lock()
	c.negotiation.Offered++
	c.mu.Unlock()
	ev := &Negotiate{Header: s.header(c), Lifetime: s.cfg.NegotiateLifetime.Milliseconds(), Description: offer}
	if err := s.send(c, c.remoteDevice, ev); err != nil {
		c.offer = nil
		return fmt.Errorf("renegotiate call %s: %w", c.id, err)
	}
	s.timer(c, "negotiate", s.cfg.NegotiateLifetime, func() {
		// The offer expired unanswered (MSC2746 negotiate lifetime).
		c.offer = nil
	})
	return nil
}

// onNegotiate implements WebRTC perfect negotiation (W3C webrtc-pc §10.7)
// with the callee as the polite party (Matrix VoIP "Politeness").
func (s *Switchboard) onNegotiate(in Received, c *Call, ev *Negotiate) {
	if ev.PartyID != c.remoteParty || c.peer == nil || !c.remoteSet {
		return
	}
	if in.Age >= time.Duration(ev.Lifetime)*time.Millisecond {
		return
	}
	if ev.Description.Type == "answer" {
		if c.offer == nil {
			return // an answer to an offer we rolled back or gave up
		}
		offer := *c.offer
		c.offer = nil
		s.stopTimer(c, "negotiate")
		if err := c.peer.ApplyAnswer(offer, ev.Description); err != nil {
			s.log.Warn("negotiation answer refused", "call", c.id, "err", err)
			s.hangup(c, ReasonUnknownError)
			return
		}
		c.mu.Lock()
		c.negotiation.Completed++
		c.mu.Unlock()
		return
	}
	rolledBack := false
	if c.offer != nil || !c.peer.Stable() {
		if !c.polite {
			c.mu.Lock()
			c.negotiation.Ignored++
			c.mu.Unlock()
			return // the impolite party ignores the colliding offer
		}
		// The polite party rolls its offer back: it was never applied.
		c.offer = nil
		s.stopTimer(c, "negotiate")
		rolledBack = true
		c.mu.Lock()
		c.negotiation.RolledBack++
		c.mu.Unlock()
	}
	if err := c.peer.SetRemoteDescription(ev.Description); err != nil {
		s.log.Warn("negotiation offer refused", "call", c.id, "err", err)
		s.hangup(c, ReasonUnknownError)
		return
	}
	ans, err := c.peer.CreateAnswer()
	if err != nil {
		s.log.Warn("negotiation answer failed", "call", c.id, "err", err)
		s.hangup(c, ReasonUnknownError)
		return
	}
	_ = s.send(c, c.remoteDevice, &Negotiate{Header: s.header(c), Lifetime: s.cfg.NegotiateLifetime.Milliseconds(), Description: ans})
	c.mu.Lock()
	c.negotiation.Completed++
	c.mu.Unlock()
	if rolledBack {
		// Our own change still needs negotiating: offer it again now
		// that the remote offer is settled.
		if err := s.offerNegotiation(c, false); err != nil {
			s.log.Warn("negotiation re-offer failed", "call", c.id, "err", err)
		}
	}
}
