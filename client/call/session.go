package call

import (
	"context"
	"fmt"
	"time"

	"github.com/medicus-health/medicus/client/content"
)

// EphemeralSender is what call signalling needs of a client session:
// MLS-encrypted messages of a room delivered to one user's devices as
// direct device messages, outside the room's history
// (client.Session.SendEphemeral).
type EphemeralSender interface {
	SendEphemeral(ctx context.Context, roomID, user string, content []byte) error
}

// SessionSignaller is the Signaller of a client session: each event
// travels as a content message of type "call" (client/content.Call: the
// event type and its JSON body), encrypted for the room's MLS group and
// sent to the target user's devices. The session addresses users, not
// devices, so Target.DeviceID is not honoured: the user's other devices
// receive the event too and ignore it, as they are not the call's party.
type SessionSignaller struct {
	// Session sends the encrypted messages.
	Session EphemeralSender
}

// Send implements Signaller.
func (s SessionSignaller) Send(ctx context.Context, to Target, ev Event) error {
	raw, err := EncodeContent(ev)
	if err != nil {
		return err
	}
	if err := s.Session.SendEphemeral(ctx, to.Room, to.UserID, raw); err != nil {
		return fmt.Errorf("send %s to %s: %w", ev.Type(), to.UserID, err)
	}
	return nil
}

// EncodeContent encodes ev as a content message (the bytes a client sends
// encrypted).
func EncodeContent(ev Event) ([]byte, error) {
	typ, body, err := Marshal(ev)
	if err != nil {
		return nil, err
	}
	raw, err := content.Encode(content.New(&content.Call{Event: string(typ), Body: body}))
	if err != nil {
		return nil, fmt.Errorf("encode %s as content: %w", typ, err)
	}
	return raw, nil
}

// DecodeContent decodes a call event from a decrypted content message. ok
// is false (and err nil) if the message is valid content of another type.
func DecodeContent(raw []byte) (ev Event, ok bool, err error) {
	m, err := content.Decode(raw)
	if err != nil {
		return nil, false, fmt.Errorf("decode call content: %w", err)
	}
	c, isCall := m.Body.(*content.Call)
	if !isCall {
		return nil, false, nil
	}
	ev, err = Unmarshal(EventType(c.Event), c.Body)
	if err != nil {
		return nil, true, err
	}
	return ev, true, nil
}

// DeliverContent hands the switchboard a decrypted ephemeral message of a
// room if it is a call event: the client calls it for each ephemeral
// message its sync brings. sentAt is the homeserver's receive time; the
// event's age is the switchboard's clock minus sentAt (never negative), so a
// device whose clock runs ahead of the homeserver's by more than an invite's
// lifetime does not ring. It reports whether the message was a call event.
func (s *Switchboard) DeliverContent(ctx context.Context, room, sender, senderDevice string, sentAt time.Time, raw []byte) (bool, error) {
	ev, ok, err := DecodeContent(raw)
	if !ok || err != nil {
		return ok, err
	}
	var age time.Duration
	if !sentAt.IsZero() {
		age = max(0, s.clock.Now().Sub(sentAt))
	}
	return true, s.Deliver(ctx, Received{Room: room, Sender: sender, SenderDevice: senderDevice, Age: age, Event: ev})
}
