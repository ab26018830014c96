package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/websocket"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/sfu"
	"github.com/medicus-health/medicus/server/store"
	"github.com/medicus-health/medicus/server/turn"
)

// Teleconsult media: the embedded TURN relay and the room-call SFU
// (docs/api.md, "Calls").

func (c Config) validateMedia() []error {
	var errs []error
	if c.TURNListen != "" {
		if _, _, err := net.SplitHostPort(c.TURNListen); err != nil {
			errs = append(errs, fmt.Errorf("turn_listen %q: %w", c.TURNListen, err))
		}
	}
	if c.TURNRelayIP != "" && net.ParseIP(c.TURNRelayIP) == nil {
		errs = append(errs, fmt.Errorf("turn_relay_ip %q is not an IP address", c.TURNRelayIP))
	}
	if c.TURNCredentialTTL.Duration < time.Minute {
		errs = append(errs, errors.New("turn_credential_ttl must be at least 1m"))
	}
	if c.SFUMaxParticipants < 2 || c.SFUMaxParticipants > 16 {
		errs = append(errs, fmt.Errorf("sfu_max_participants %d must be 2-16", c.SFUMaxParticipants))
	}
	if c.SFUKeyframeInterval.Duration < 100*time.Millisecond {
		errs = append(errs, errors.New("sfu_keyframe_interval must be at least 100ms"))
	}
	if c.SFUUDPPort < 0 || c.SFUUDPPort > 65535 {
		errs = append(errs, fmt.Errorf("sfu_udp_port %d is not a port", c.SFUUDPPort))
	}
	if c.SFUIP != "" && net.ParseIP(c.SFUIP) == nil {
		errs = append(errs, fmt.Errorf("sfu_ip %q is not an IP address", c.SFUIP))
	}
	return errs
}

// startMedia starts the TURN relay (if configured) and creates the SFU.
func (s *Server) startMedia() error {
	sc := sfu.Config{
		MaxParticipants: s.cfg.SFUMaxParticipants, PLIInterval: s.cfg.SFUKeyframeInterval.Duration,
		IP: s.cfg.SFUIP, UDPPort: s.cfg.SFUUDPPort, Logger: s.log.With("component", "sfu"),
	}
	if s.cfg.sfuTest != nil {
		(*s.cfg.sfuTest)(&sc)
	}
	var err error
	if s.sfu, err = sfu.New(sc); err != nil {
		return err
	}
	if s.cfg.TURNListen == "" {
		return nil
	}
	s.turn, err = turn.Start(turn.Config{
		Listen: s.cfg.TURNListen, RelayIP: s.cfg.TURNRelayIP, PublicHost: s.cfg.TURNPublicHost,
		Realm: s.cfg.ServerName, SharedSecret: s.cfg.TURNSharedSecret, TTL: s.cfg.TURNCredentialTTL.Duration,
		Logger: s.log.With("component", "turn"),
	})
	if err != nil {
		return err
	}
	s.log.Info("TURN relay listening", "udp", s.turn.UDPAddr().String(), "tcp", s.turn.TCPAddr().String())
	return nil
}

// closeMedia ends every call and stops the relay; later calls do nothing.
func (s *Server) closeMedia() error {
	var err error
	s.mediaClosed.Do(func() {
		if s.sfu != nil {
			s.sfu.Close()
		}
		if s.turn != nil {
			err = s.turn.Close()
		}
	})
	return err
}

// handleTURN hands out TURN REST credentials (as Matrix's
// /voip/turnServer does).
func (s *Server) handleTURN(w http.ResponseWriter, r *http.Request, c caller) {
	if s.turn == nil {
		writeError(w, http.StatusNotFound, proto.ErrNotFound, "this homeserver runs no TURN relay")
		return
	}
	cred := s.turn.Credentials(c.User.ID)
	writeJSON(w, http.StatusOK, proto.TURNServerResponse{
		Username: cred.Username, Password: cred.Password, TTL: int64(cred.TTL / time.Second), URIs: cred.URIs,
	})
}

var callUpgrader = websocket.Upgrader{
	ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10,
	// As for sync: authentication is the Authorization header, which a
	// foreign web page cannot set, so cross-origin requests carry no
	// ambient authority.
	CheckOrigin: func(*http.Request) bool { return true },
	Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
		writeError(w, status, proto.ErrInvalidParam, "a call needs a WebSocket handshake: "+reason.Error())
	},
}

// Close codes of the call WebSocket besides 1000 (hang-up).
const (
	closeCallFull      = 4009 // the call has sfu_max_participants
	closeNotMember     = 4003 // the user left or was removed from the room
	membershipInterval = 5 * time.Second
)

// handleCall joins the caller's device to the room's SFU call over a
// signalling WebSocket, for joined members only. The session ends when the
// client hangs up, the user stops being a joined member or the device's
// token is revoked (both re-checked periodically), or the server shuts down.
func (s *Server) handleCall(w http.ResponseWriter, r *http.Request, c caller) {
	room, err := s.roomFromPath(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.joinedMember(r.Context(), room.ID, c.User.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	// A device that reconnects replaces its old session, so it does not
	// count against the limit.
	if n := s.sfu.Participants(room.ID); len(n) >= s.cfg.SFUMaxParticipants && !slices.Contains(n, c.Device.DeviceID) {
		s.fail(w, r, errorf(http.StatusConflict, proto.ErrLimitExceeded, "the call has %d participants", len(n)))
		return
	}
	conn, err := callUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	s.sessions.Add(1)
	defer s.sessions.Done()
	s.audit(r.Context(), store.AuditEntry{Actor: c.User.ID, DeviceID: c.Device.DeviceID, Action: "call_join", Target: room.ID, Address: clientAddress(r)})

	ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
	defer cancel(nil)
	go func() {
		tick := time.NewTicker(min(membershipInterval, s.cfg.SyncPingInterval.Duration))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.shutdown:
				cancel(errShuttingDown)
				return
			case <-tick.C:
				// A revoked device or disabled account ends the call as it
				// ends the sync connection.
				if ok, err := s.stillAuthorized(ctx, c); err == nil && !ok {
					cancel(errRevoked)
					return
				}
				if err := s.joinedMember(ctx, room.ID, c.User.ID); err != nil {
					cancel(errNotJoined)
					return
				}
			}
		}
	}()
	sig := closingSignal{sfu.NewWebSocketSignal(conn)}
	// Serve logs how the session ended and closes sig with the reason;
	// only a refused join is left to close here.
	if err := s.sfu.Serve(ctx, room.ID, c.User.ID, c.Device.DeviceID, sig); errors.Is(err, sfu.ErrCallFull) {
		sig.CloseWith(closeCallFull, "the call is full")
	}
	sig.Close(nil) // no effect if already closed
}

var (
	errShuttingDown = errors.New("homeserver shutting down")
	errNotJoined    = errors.New("no longer a joined member of the room")
)

// closingSignal's close frame also says when the server ended the call.
type closingSignal struct{ *sfu.WebSocketSignal }

func (c closingSignal) Close(reason error) error {
	switch {
	case errors.Is(reason, errShuttingDown):
		return c.CloseWith(websocket.CloseGoingAway, reason.Error())
	case errors.Is(reason, errNotJoined):
		return c.CloseWith(closeNotMember, reason.Error())
	case errors.Is(reason, errRevoked):
		return c.CloseWith(websocket.ClosePolicyViolation, reason.Error())
	}
	return c.WebSocketSignal.Close(reason)
}

// joinedMember returns a 403 API error unless user is a joined member of room.
func (s *Server) joinedMember(ctx context.Context, roomID, user string) error {
	m, err := s.store.Member(ctx, roomID, user)
	if errors.Is(err, store.ErrNotFound) || (err == nil && m.Membership != proto.MembershipJoin) {
		return errorf(http.StatusForbidden, proto.ErrForbidden, "not a joined member of the room")
	}
	return err
}
