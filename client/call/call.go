package call

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// State is the state of a call. States only move forward.
type State int

// Call states.
const (
	// StateRinging: the invite is out (outgoing) or ringing here (incoming).
	StateRinging State = iota + 1
	// StateConnecting: an answer was sent or selected; ICE and DTLS are
	// being set up.
	StateConnecting
	// StateConnected: media flows.
	StateConnected
	// StateEnded: the call is over; Reason says why.
	StateEnded
)

// String returns the state's lower-case name, as in Update.Event.
func (s State) String() string {
	switch s {
	case StateRinging:
		return "ringing"
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateEnded:
		return "ended"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Direction says who placed a call.
type Direction string

// Directions.
const (
	Outgoing Direction = "outgoing"
	Incoming Direction = "incoming"
)

// ErrEnded is returned by Call.Wait when the call ended before reaching the
// awaited state; it is wrapped in an *EndedError that carries the reason.
var ErrEnded = errors.New("call: call ended")

// EndedError reports that a call ended, and why.
type EndedError struct {
	// Reason is why the call ended.
	Reason Reason
}

func (e *EndedError) Error() string { return "call: call ended: " + string(e.Reason) }

// Unwrap returns ErrEnded.
func (e *EndedError) Unwrap() error { return ErrEnded }

// Call is one call of a Switchboard. Its methods are safe for concurrent
// use; its fields change only on the switchboard's goroutine.
type Call struct {
	id, room, remote string
	dir              Direction

	mu          sync.Mutex
	state       State
	reason      Reason
	remoteEnded bool
	changed     chan struct{}
	connectedAt time.Time
	startedAt   time.Time
	lastStats   Stats

	// Owned by the switchboard's goroutine.
	partyID       string
	remoteParty   string // caller: selected answer's party; callee: caller's party
	remoteDevice  string // the device remoteParty runs on
	invite        *Invite
	peer          *Peer
	remoteSet     bool
	pending       map[string][]Candidate // remote candidates by party, until usable
	localCands    []Candidate
	batchStop     func() bool
	timers        map[string]func() bool
	polite        bool
	offer         *SessionDescription // outstanding renegotiation offer, applied with its answer
	everConnected bool
	negotiation   Negotiations // guarded by mu
}

// Negotiations counts a call's renegotiations (m.call.negotiate).
type Negotiations struct {
	// Offered counts offers this side sent.
	Offered int
	// Completed counts offer/answer exchanges this side finished (applied
	// an answer, or answered an offer).
	Completed int
	// Ignored counts colliding remote offers ignored (impolite side).
	Ignored int
	// RolledBack counts local offers rolled back (forgotten) for a remote
	// one (polite side).
	RolledBack int
}

// Negotiations returns the call's renegotiation counters.
func (c *Call) Negotiations() Negotiations {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.negotiation
}

// ID returns the call id.
func (c *Call) ID() string { return c.id }

// Room returns the room the call belongs to.
func (c *Call) Room() string { return c.room }

// Remote returns the other user of the call.
func (c *Call) Remote() string { return c.remote }

// Direction says whether this device placed or received the call.
func (c *Call) Direction() Direction { return c.dir }

// State returns the call's current state.
func (c *Call) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Reason returns why the call ended ("" while it has not) and whether the
// remote party ended it.
func (c *Call) Reason() (r Reason, remote bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason, c.remoteEnded
}

// TimeToConnect returns how long the call took from invite (or ring) to
// connected, or 0 if it never connected.
func (c *Call) TimeToConnect() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.connectedAt.IsZero() {
		return 0
	}
	return c.connectedAt.Sub(c.startedAt)
}

// LastStats returns the latest statistics sampled by the switchboard.
func (c *Call) LastStats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastStats
}

// Wait blocks until the call reaches state s (or a later one other than
// ended). It returns an *EndedError if the call ended first (unless s is
// StateEnded), or ctx's error.
func (c *Call) Wait(ctx context.Context, s State) error {
	for {
		c.mu.Lock()
		st, reason, ch := c.state, c.reason, c.changed
		c.mu.Unlock()
		if st == StateEnded && s != StateEnded {
			return &EndedError{Reason: reason}
		}
		if st >= s {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for call %s to be %s (it is %s): %w", c.id, s, st, ctx.Err())
		}
	}
}

// setState moves the call forward; it reports whether the state changed.
func (c *Call) setState(s State, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s <= c.state {
		return false
	}
	c.state = s
	if s == StateConnected {
		c.connectedAt = now
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return true
}

func (c *Call) end(r Reason, remote bool) bool {
	c.mu.Lock()
	if c.state == StateEnded {
		c.mu.Unlock()
		return false
	}
	c.reason, c.remoteEnded = r, remote
	c.mu.Unlock()
	return c.setState(StateEnded, time.Time{})
}
