package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/hub"
	"github.com/medicus-health/medicus/server/store"
)

const (
	syncBatch      = 512
	pingInterval   = 30 * time.Second
	pongWait       = 75 * time.Second
	maxClientFrame = 64 << 10
	closeGoingAway = "server shutting down"
	// closeReplaced (a private-use code, RFC 6455 §7.4.2) closes a device's
	// older sync connection when it opens a new one.
	closeReplaced   = 4001
	deviceMsgsBatch = 256

	// frameInterval is the least time between two event frames of one
	// connection. Under load it gathers the events of several commits into
	// one frame (one TLS record and syscall instead of many per receiver);
	// an idle connection sends at once, so it adds no latency there.
	frameInterval = 5 * time.Millisecond
)

// binaryEventsHeader begins every binary events frame.
var binaryEventsHeader = []byte{proto.FrameTypeEvents}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 64 << 10,
	// Sync authenticates with the Authorization header, which a foreign web
	// page cannot set on a WebSocket, so cross-origin requests carry no
	// ambient authority.
	CheckOrigin: func(*http.Request) bool { return true },
	// A client offering the binary subprotocol gets binary event frames.
	Subprotocols: []string{proto.SyncSubprotocolBinary},
	// A request that is not a WebSocket handshake gets a coded JSON error
	// like every other endpoint.
	Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
		writeError(w, status, proto.ErrInvalidParam, "sync needs a WebSocket handshake: "+reason.Error())
	},
}

// roomFilter decides which stream events a user sees: events of rooms the
// user was joined to when they happened, and member events about the user.
// Replays from the store and live delivery use the same filter, so a resumed
// connection sees exactly what an uninterrupted one would.
type roomFilter struct {
	user   string
	joined map[string]bool
}

func (f *roomFilter) visible(ev *proto.Event) bool {
	about := ev.Kind == proto.KindMember && ev.Member != nil && ev.Member.UserID == f.user
	show := f.joined[ev.RoomID] || about
	if about {
		if ev.Member.Membership == proto.MembershipJoin {
			f.joined[ev.RoomID] = true
		} else {
			delete(f.joined, ev.RoomID)
		}
	}
	return show
}

// syncSession is one device's sync WebSocket.
type syncSession struct {
	s      *Server
	c      caller
	conn   *websocket.Conn
	sub    *hub.Subscription
	filter roomFilter
	cursor int64
	lastDM int64
	// binary is set when the client negotiated proto.SyncSubprotocolBinary:
	// events frames are then binary messages of event records.
	binary bool
	// gc, if not nil, sends each events frame with one write (gather.go).
	gc *gatherConn

	// Reused between frames so that fan-out does not allocate per event.
	entries []hub.Entry
	raws    [][]byte
	// lastFrame is when the last event frame was written.
	lastFrame time.Time
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request, c caller) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseInt(v, 10, 64); err != nil || since < 0 {
			s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "since must be a stream position ≥ 0"))
			return
		}
	}
	select {
	case <-s.shutdown:
		s.fail(w, r, errorf(http.StatusServiceUnavailable, proto.ErrUnavailable, "server is shutting down"))
		return
	default:
	}
	history, err := s.store.MembershipEventsUpTo(r.Context(), c.User.ID, since)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	s.sessions.Add(1)
	defer s.sessions.Done()
	defer conn.Close()

	sess := &syncSession{s: s, c: c, conn: conn, cursor: since,
		binary: conn.Subprotocol() == proto.SyncSubprotocolBinary, gc: gatherConnOf(conn),
		filter: roomFilter{user: c.User.ID, joined: map[string]bool{}}}
	for i := range history {
		sess.filter.visible(&history[i])
	}
	sess.sub = s.hub.Subscribe(c.User.ID, c.Device.DeviceID)
	defer s.hub.Unsubscribe(sess.sub)

	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	go sess.readLoop(ctx, cancel, r)
	if err := sess.run(ctx); err != nil {
		s.log.Debug("sync session ended", "user", c.User.ID, "device", c.Device.DeviceID, "err", err)
	}
}

// readLoop handles client frames (acknowledgements) and pongs; it cancels
// the session when the connection fails.
func (ss *syncSession) readLoop(ctx context.Context, cancel context.CancelFunc, r *http.Request) {
	defer cancel()
	ss.conn.SetReadLimit(maxClientFrame)
	pongWait := ss.s.cfg.SyncPingInterval.Duration * 5 / 2
	ss.conn.SetReadDeadline(time.Now().Add(pongWait))
	ss.conn.SetPongHandler(func(string) error { return ss.conn.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, data, err := ss.conn.ReadMessage()
		if err != nil {
			return
		}
		var f proto.SyncFrame
		if err := json.Unmarshal(data, &f); err != nil || f.Type != proto.FrameAck || f.Ack == nil {
			ss.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseUnsupportedData, "expected an ack frame"), time.Now().Add(time.Second))
			return
		}
		if err := ss.s.ackDeviceMessages(r.WithContext(ctx), ss.c, f.Ack.UpTo); err != nil {
			ss.s.log.Warn("acknowledge device messages", "user", ss.c.User.ID, "err", err)
			return
		}
	}
}

func (ss *syncSession) run(ctx context.Context) error {
	ping := time.NewTicker(ss.s.cfg.SyncPingInterval.Duration)
	defer ping.Stop()
	first := true
	for {
		if err := ss.catchUp(ctx); err != nil {
			return err
		}
		if first || ss.sub.TakeDeviceMessageFlag() {
			if err := ss.deliverDeviceMessages(ctx); err != nil {
				return err
			}
		}
		if first {
			// caught_up follows the replayed events and the queued device
			// messages, so a client that syncs once knows it has both.
			if err := ss.writeJSON(proto.SyncFrame{Type: proto.FrameCaughtUp, Stream: ss.cursor}); err != nil {
				return err
			}
		}
		first = false
		select {
		case <-ss.sub.C:
			if ss.sub.Revoked() {
				return ss.closeRevoked()
			}
			if ss.sub.Replaced() {
				msg := websocket.FormatCloseMessage(closeReplaced, "replaced by a newer sync connection of this device")
				ss.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
				return nil
			}
			if err := ss.gather(ctx); err != nil {
				return err
			}
		case <-ping.C:
			// A token revoked or an account disabled by another process
			// (`medicus admin user disable`) ends the connection here.
			if ok, err := ss.s.stillAuthorized(ctx, ss.c); err != nil {
				return err
			} else if !ok {
				return ss.closeRevoked()
			}
			if err := ss.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(ss.s.cfg.SyncWriteTimeout.Duration)); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-ss.s.shutdown:
			ss.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, closeGoingAway), time.Now().Add(time.Second))
			return nil
		}
	}
}

// closeRevoked closes the connection of a revoked device or disabled
// account with 1008 (policy violation, RFC 6455 §7.4.1).
func (ss *syncSession) closeRevoked() error {
	msg := websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "access token revoked")
	ss.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	return errRevoked
}

var errRevoked = errors.New("access token revoked")

// stillAuthorized reports whether the caller's token is still valid and its
// account enabled.
func (s *Server) stillAuthorized(ctx context.Context, c caller) (bool, error) {
	dev, err := s.store.DeviceByToken(ctx, c.Device.TokenHash)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	user, err := s.store.User(ctx, dev.UserID)
	if err != nil {
		return false, err
	}
	return !user.Disabled, nil
}

// gather waits, if the last event frame went out less than frameInterval
// ago, until that interval has passed, so that the next frame carries the
// events committed meanwhile.
func (ss *syncSession) gather(ctx context.Context) error {
	wait := frameInterval - time.Since(ss.lastFrame)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-ss.s.shutdown:
		return nil
	}
}

// catchUp sends every visible event after the cursor, from the hub's ring
// when it still holds them and from the store otherwise.
func (ss *syncSession) catchUp(ctx context.Context) error {
	for {
		select {
		case <-ss.s.shutdown:
			return nil
		default:
		}
		raws := ss.raws[:0]
		var next int64
		entries, ok := ss.s.hub.Since(ss.entries[:0], ss.cursor, syncBatch)
		ss.entries = entries
		if ok {
			if len(entries) == 0 {
				return nil
			}
			for i := range entries {
				if ss.filter.visible(&entries[i].Event) {
					if ss.binary {
						raws = append(raws, entries[i].Record)
					} else {
						raws = append(raws, entries[i].JSON)
					}
				}
			}
			next = entries[len(entries)-1].Event.Stream
		} else {
			// Everything up to known is committed and visible to this read.
			known := ss.s.hub.Last()
			evs, err := ss.s.store.StreamSince(ctx, ss.c.User.ID, ss.cursor, syncBatch)
			if err != nil {
				return err
			}
			for i := range evs {
				if ss.filter.visible(&evs[i]) {
					var b []byte
					if ss.binary {
						b = proto.AppendEventRecord(nil, &evs[i])
					} else if b, err = json.Marshal(evs[i]); err != nil {
						return err
					}
					raws = append(raws, b)
				}
			}
			next = ss.cursor
			if len(evs) > 0 {
				next = evs[len(evs)-1].Stream
			}
			if len(evs) < syncBatch {
				next = max(next, known)
			}
			if next == ss.cursor {
				return nil
			}
		}
		if len(raws) > 0 {
			if err := ss.writeEvents(raws); err != nil {
				return err
			}
			ss.lastFrame = time.Now()
		}
		// Drop references to event bodies between frames.
		clear(ss.entries)
		clear(raws)
		ss.raws = raws[:0]
		ss.cursor = next
	}
}

// writeEvents writes one events frame of encoded events: binary records
// or JSON objects, as negotiated.
func (ss *syncSession) writeEvents(raws [][]byte) error {
	ss.conn.SetWriteDeadline(time.Now().Add(ss.s.cfg.SyncWriteTimeout.Duration))
	if ss.gc != nil && frameSize(raws) > maxTLSRecord {
		ss.gc.gather()
		err := ss.writeFrame(raws)
		if ferr := ss.gc.flush(); err == nil {
			err = ferr
		}
		return err
	}
	return ss.writeFrame(raws)
}

// maxTLSRecord is the most plaintext one TLS record carries (RFC 8446
// §5.1); a frame up to this size goes out in one write anyway.
const maxTLSRecord = 16 << 10

func frameSize(raws [][]byte) int {
	n := 0
	for _, r := range raws {
		n += len(r) + 1
	}
	return n
}

func (ss *syncSession) writeFrame(raws [][]byte) error {
	if ss.binary {
		w, err := ss.conn.NextWriter(websocket.BinaryMessage)
		if err != nil {
			return err
		}
		w.Write(binaryEventsHeader)
		for _, raw := range raws {
			w.Write(raw)
		}
		return w.Close()
	}
	w, err := ss.conn.NextWriter(websocket.TextMessage)
	if err != nil {
		return err
	}
	// Stream the cached encodings into the frame without joining them first.
	io.WriteString(w, `{"type":"`+proto.FrameEvents+`","events":[`)
	for i, raw := range raws {
		if i > 0 {
			io.WriteString(w, ",")
		}
		w.Write(raw)
	}
	io.WriteString(w, `]}`)
	return w.Close()
}

func (ss *syncSession) writeJSON(f proto.SyncFrame) error {
	ss.conn.SetWriteDeadline(time.Now().Add(ss.s.cfg.SyncWriteTimeout.Duration))
	return ss.conn.WriteJSON(f)
}

func (ss *syncSession) deliverDeviceMessages(ctx context.Context) error {
	for {
		msgs, err := ss.s.store.DeviceMessagesAfter(ctx, ss.c.User.ID, ss.c.Device.DeviceID, ss.lastDM, deviceMsgsBatch)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			dm := proto.DeviceMessage{ID: m.ID, Sender: m.Sender, SenderDevice: m.SenderDevice, Kind: m.Kind, Body: m.Body, Time: m.Time}
			if err := ss.writeJSON(proto.SyncFrame{Type: proto.FrameDeviceMessage, DeviceMessage: &dm}); err != nil {
				return err
			}
			ss.lastDM = m.ID
		}
		if len(msgs) < deviceMsgsBatch {
			return nil
		}
	}
}
