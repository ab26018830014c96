package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gorilla/websocket"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/client/state"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/proto"
)

// Message types.
const (
	// TypeContent is a decrypted application message: Content holds the
	// content envelope (package client/content).
	TypeContent = "content"
	// TypeMembership is a membership change recorded by the homeserver.
	TypeMembership = "membership"
	// TypeGroup is a change of the MLS group (members added, removed,
	// keys updated) that the session verified and applied.
	TypeGroup = "group"
	// TypeRefused is a message the session refused: it failed
	// authentication or decryption, or a commit broke the rules (e.g. a
	// member the session cannot authenticate). Notice says why.
	TypeRefused = "refused"
	// TypeJoined says that this device joined the room's group.
	TypeJoined = "joined"
	// TypeRemoved says that this device was removed from the group.
	TypeRemoved = "removed"
)

// Message is one entry of a room as this device saw it.
type Message struct {
	Room         string    `json:"room"`
	Seq          int64     `json:"seq"`
	Sender       string    `json:"sender"`
	SenderDevice string    `json:"sender_device,omitempty"`
	Time         time.Time `json:"ts"`
	Type         string    `json:"type"`
	// Content is the decrypted content envelope of a TypeContent message.
	Content []byte `json:"content,omitempty"`
	// Notice explains other types in words.
	Notice string `json:"notice,omitempty"`
	// Own is set for messages this device sent.
	Own bool `json:"own,omitempty"`
	// Ephemeral is set for messages that came as device messages and are
	// not part of the room's history (call signalling).
	Ephemeral bool `json:"ephemeral,omitempty"`
}

// record remembers a message for the cache and for the caller.
func (s *Session) record(m Message) {
	s.unsaved = append(s.unsaved, m)
	s.pending = append(s.pending, m)
}

// takePending returns and forgets what the session learnt since the last call.
func (s *Session) takePending() []Message {
	p := s.pending
	s.pending = nil
	return p
}

// catchUp processes the room's log from the last processed message to its
// end.
func (s *Session) catchUp(ctx context.Context, r *room) error { return s.catchUpTo(ctx, r, 0) }

// catchUpTo processes the room's log up to sequence number to (0: to the end).
func (s *Session) catchUpTo(ctx context.Context, r *room, to int64) error {
	for to == 0 || r.Applied < to {
		limit := 500
		if to != 0 {
			limit = int(min(to-r.Applied, 500))
		}
		h, err := s.api.History(ctx, r.ID, r.Applied+1, limit)
		if err != nil {
			return fmt.Errorf("fetch history of %s: %w", r.ID, err)
		}
		for i := range h.Events {
			s.processEvent(&h.Events[i], r)
		}
		if len(h.Events) < limit {
			if to != 0 && r.Applied < to {
				return fmt.Errorf("history of %s ends at %d, before %d", r.ID, r.Applied, to)
			}
			return nil
		}
	}
	return nil
}

// processEvent applies one event of the room's log, which must be the next
// one; earlier ones are ignored.
func (s *Session) processEvent(ev *proto.Event, r *room) {
	if ev.Seq <= r.Applied || r.Left {
		return
	}
	r.Applied, r.dirty = ev.Seq, true
	base := Message{Room: r.ID, Seq: ev.Seq, Sender: ev.Sender, SenderDevice: ev.DeviceID, Time: ev.Time}
	own := ev.Sender == s.prof.UserID && ev.DeviceID == s.prof.DeviceID
	switch ev.Kind {
	case proto.KindMember:
		if ev.Member != nil {
			base.Type = TypeMembership
			base.Notice = fmt.Sprintf("%s: %s (by %s)", ev.Member.UserID, ev.Member.Membership, ev.Member.By)
			s.record(base)
		}
	case proto.KindMLSApp, proto.KindMLSCommit, proto.KindMLSProposal:
		if own {
			// The device's own messages were recorded when sent; its
			// ratchet keys for them are gone (RFC 9420 §9.2). Anything
			// else in its name was not sent by it.
			if i := slices.Index(r.OwnSent, ev.Seq); i >= 0 {
				r.OwnSent = slices.Delete(r.OwnSent, i, i+1)
				return
			}
			base.Type = TypeRefused
			base.Notice = fmt.Sprintf("refused %s: it claims to come from this device, which did not send it", ev.Kind)
			s.log.Warn("message in this device's name refused", "room", r.ID, "seq", ev.Seq)
			s.record(base)
			return
		}
		res, err := r.group.ProcessMessage(ev.Body)
		if err != nil {
			base.Type = TypeRefused
			base.Notice = fmt.Sprintf("refused %s: %v", ev.Kind, err)
			s.log.Warn("message refused", "room", r.ID, "seq", ev.Seq, "kind", ev.Kind, "err", err)
			s.record(base)
			return
		}
		switch res.Kind {
		case mls.ResultApplication:
			base.Type = TypeContent
			base.Content = res.ApplicationData
			s.record(base)
		case mls.ResultCommit:
			if !r.group.Active() {
				r.Left = true
				base.Type = TypeRemoved
				base.Notice = "this device was removed from the group"
				s.record(base)
				return
			}
			base.Type = TypeGroup
			base.Notice = fmt.Sprintf("group changed to epoch %d (%d added, %d removed)", r.group.Epoch(), len(res.Added), len(res.Removed))
			s.record(base)
		}
	}
}

// handleDeviceMessage handles a direct device message; it returns an error
// only for failures worth retrying (network, storage).
func (s *Session) handleDeviceMessage(ctx context.Context, dm *proto.DeviceMessage) error {
	switch dm.Kind {
	case proto.KindMLSWelcome:
	case KindEphemeral:
		s.handleEphemeral(dm)
		return nil
	case KindNewDevice:
		var nd newDeviceBody
		// Only the user's own devices may announce a device of the user;
		// the new device's credential is still checked before any Add.
		if json.Unmarshal(dm.Body, &nd) != nil || dm.Sender != s.prof.UserID || nd.DeviceID == "" {
			s.log.Warn("malformed or foreign device announcement", "sender", dm.Sender)
			return nil
		}
		return s.addOwnDevice(ctx, nd.DeviceID)
	default:
		s.pending = append(s.pending, Message{Sender: dm.Sender, SenderDevice: dm.SenderDevice, Time: dm.Time, Type: TypeRefused,
			Notice: "unknown device message kind " + dm.Kind})
		return nil
	}
	var w welcomeBody
	if err := json.Unmarshal(dm.Body, &w); err != nil || w.Room == "" {
		s.log.Warn("malformed welcome", "sender", dm.Sender)
		return nil
	}
	if r, ok := s.rooms[w.Room]; ok && !r.Left {
		return nil // already joined (a repeated delivery)
	}
	refuse := func(err error) error {
		s.log.Warn("welcome refused", "room", w.Room, "sender", dm.Sender, "err", err)
		s.record(Message{Room: w.Room, Sender: dm.Sender, SenderDevice: dm.SenderDevice, Time: dm.Time, Type: TypeRefused, Notice: "welcome refused: " + err.Error()})
		return nil
	}
	raw, err := s.st.Get(ctx, w.KeyPackage)
	if errors.Is(err, state.ErrNotFound) {
		return refuse(errors.New("it names a key package this device does not have"))
	}
	if err != nil {
		return err
	}
	var kp keyPackageRecord
	if err := json.Unmarshal(raw, &kp); err != nil {
		return fmt.Errorf("decode key package record: %w", err)
	}
	g, err := mls.JoinFromWelcome(s.mlsc, w.Welcome, kp.KeyPackage, &kp.Private, nil)
	if err != nil {
		return refuse(err)
	}
	if string(g.GroupID()) != w.Room {
		return refuse(fmt.Errorf("the group is %q, not the room", g.GroupID()))
	}
	// The KeyPackage is used up: delete its private keys (RFC 9420 §16.8),
	// unless it is the last-resort one.
	if !kp.LastResort {
		if err := s.st.Delete(ctx, w.KeyPackage); err != nil {
			return err
		}
	}
	if err := s.api.Join(ctx, w.Room); err != nil && !api.IsCode(err, proto.ErrConflict) {
		return fmt.Errorf("join %s: %w", w.Room, err)
	}
	name, err := openRoomName(g, w.SealedName)
	if err != nil {
		s.log.Warn("room name unreadable", "room", w.Room, "err", err)
	}
	r := &room{ID: w.Room, Name: name, Applied: w.CommitSeq, group: g, dirty: true, KeysUpdated: s.now()}
	s.rooms[w.Room] = r
	s.record(Message{Room: w.Room, Seq: w.CommitSeq, Sender: dm.Sender, SenderDevice: dm.SenderDevice, Time: dm.Time, Type: TypeJoined,
		Notice: fmt.Sprintf("joined the group at epoch %d, added by %s", g.Epoch(), dm.Sender)})
	if err := s.catchUp(ctx, r); err != nil {
		return err
	}
	// Keep KeyPackageTarget unclaimed KeyPackages on the homeserver.
	if err := s.TopUpKeyPackages(ctx); err != nil {
		s.log.Warn("key package top-up failed", "err", err)
	}
	return nil
}

// handleEvents processes live events: each room's next event directly, a
// gap by fetching the missing history first.
func (s *Session) handleEvents(ctx context.Context, evs []proto.Event) error {
	for i := range evs {
		ev := &evs[i]
		if r, ok := s.rooms[ev.RoomID]; ok && r.group != nil && !r.Left && ev.Seq > r.Applied {
			if ev.Seq > r.Applied+1 {
				if err := s.catchUpTo(ctx, r, ev.Seq-1); err != nil {
					return err
				}
			}
			s.processEvent(ev, r)
		}
		s.prof.Stream = max(s.prof.Stream, ev.Stream)
	}
	return nil
}

// Sync connects to the homeserver once, processes everything that arrived
// since the last sync (room events and device messages such as Welcomes),
// stores it, and returns the new messages.
func (s *Session) Sync(ctx context.Context) ([]Message, error) {
	var out []Message
	err := s.follow(ctx, true, func(m []Message) { out = append(out, m...) })
	return out, err
}

// Follow keeps the session synchronized until ctx ends, calling fn with
// every batch of new messages (from one goroutine). It reconnects after
// network failures with capped exponential backoff.
func (s *Session) Follow(ctx context.Context, fn func([]Message)) error {
	backoff := 250 * time.Millisecond
	for {
		err := s.follow(ctx, false, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var apiErr *api.Error
		if errors.As(err, &apiErr) && (apiErr.Code == proto.ErrUnknownToken || apiErr.Code == proto.ErrMissingToken) {
			return err
		}
		s.log.Warn("sync interrupted; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// keyCheckInterval is how often Follow looks for stale keys between frames.
const keyCheckInterval = 10 * time.Minute

func (s *Session) follow(ctx context.Context, once bool, fn func([]Message)) error {
	s.mu.Lock()
	since := s.prof.Stream
	s.mu.Unlock()
	// Binary event frames carry the ciphertext without base64.
	conn, err := s.api.SyncWith(ctx, since, api.SyncOptions{Binary: true})
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var nextKeyCheck time.Time
	for {
		f, err := conn.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation {
				return &api.Error{Status: 401, Code: proto.ErrUnknownToken, Message: ce.Text}
			}
			return fmt.Errorf("sync: %w", err)
		}
		s.mu.Lock()
		var ackUpTo int64
		switch f.Type {
		case proto.FrameEvents:
			err = s.handleEvents(ctx, f.Events)
		case proto.FrameDeviceMessage:
			if f.DeviceMessage != nil {
				if err = s.handleDeviceMessage(ctx, f.DeviceMessage); err == nil {
					ackUpTo = f.DeviceMessage.ID
				}
			}
		case proto.FrameCaughtUp:
			s.prof.Stream = max(s.prof.Stream, f.Stream)
		}
		if err == nil {
			err = s.flush(ctx)
		}
		msgs := s.takePending()
		s.mu.Unlock()
		if err != nil {
			return err
		}
		// Acknowledge a device message only once what it caused is stored.
		if ackUpTo != 0 {
			if err := conn.Ack(ackUpTo); err != nil {
				return fmt.Errorf("acknowledge device messages: %w", err)
			}
		}
		if len(msgs) > 0 {
			fn(msgs)
		}
		if once && f.Type == proto.FrameCaughtUp {
			return nil
		}
		if f.Type == proto.FrameCaughtUp || s.now().After(nextKeyCheck) {
			nextKeyCheck = s.now().Add(keyCheckInterval)
			if _, err := s.UpdateStaleKeys(ctx); err != nil {
				s.log.Warn("key update failed", "err", err)
			}
			// Others claim this device's KeyPackages to add it to rooms.
			if err := s.TopUpKeyPackages(ctx); err != nil {
				s.log.Warn("key package top-up failed", "err", err)
			}
		}
	}
}

// Send encrypts content for the room's group and posts it. If the group
// moved to a new epoch meanwhile, it processes the new commits and
// encrypts again. It returns the message's sequence number.
func (s *Session) Send(ctx context.Context, roomID string, content []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.liveRoom(roomID)
	if err != nil {
		return 0, err
	}
	for attempt := 0; attempt < maxCommitAttempts; attempt++ {
		ct, err := r.group.EncryptApplication(content, nil)
		if err != nil {
			return 0, fmt.Errorf("encrypt for %s: %w", roomID, err)
		}
		// Store the advanced ratchet before the ciphertext leaves: after a
		// crash the device must not encrypt with the same key and nonce
		// again (RFC 9420 §9.1).
		r.dirty = true
		if err := s.flush(ctx); err != nil {
			return 0, err
		}
		resp, err := s.sendInEpoch(ctx, roomID, proto.KindMLSApp, r.group.Epoch(), ct)
		if api.IsCode(err, proto.ErrStaleEpoch) {
			if err := s.catchUp(ctx, r); err != nil {
				return 0, err
			}
			if r.Left {
				return 0, fmt.Errorf("%s: %w", roomID, mls.ErrNotMember)
			}
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("send to %s: %w", roomID, err)
		}
		s.record(Message{Room: roomID, Seq: resp.Seq, Sender: s.prof.UserID, SenderDevice: s.prof.DeviceID, Time: s.now(),
			Type: TypeContent, Content: content, Own: true})
		s.pending = s.pending[:len(s.pending)-1] // the caller knows what it sent
		if resp.Seq > r.Applied {
			r.OwnSent = append(r.OwnSent, resp.Seq)
		}
		r.dirty = true
		if err := s.flush(ctx); err != nil {
			return 0, err
		}
		return resp.Seq, nil
	}
	return 0, fmt.Errorf("send to %s: the group kept changing", roomID)
}

// History returns up to limit messages of the room this device has seen,
// from sequence number from on, from the local cache.
func (s *Session) History(ctx context.Context, roomID string, from int64, limit int) ([]Message, error) {
	stored, err := s.st.Messages(ctx, roomID, from, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(stored))
	for _, sm := range stored {
		var m Message
		if err := json.Unmarshal(sm.Value, &m); err != nil {
			return nil, fmt.Errorf("decode cached message %d of %s: %w", sm.Seq, roomID, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Message returns one cached message.
func (s *Session) Message(ctx context.Context, roomID string, seq int64) (Message, error) {
	raw, err := s.st.Message(ctx, roomID, seq)
	if err != nil {
		return Message{}, err
	}
	var m Message
	if err := json.Unmarshal(raw, &m); err != nil {
		return Message{}, fmt.Errorf("decode cached message %d of %s: %w", seq, roomID, err)
	}
	return m, nil
}
