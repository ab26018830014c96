package call

import (
	"context"
	"time"
)

// Target addresses call events: the devices of one user, in the context of
// one room (the MLS group whose members' devices carry the signalling).
type Target struct {
	// Room is the room the call belongs to.
	Room string
	// UserID is the user whose devices receive the event.
	UserID string
	// DeviceID, if set, restricts delivery to that one device; empty means
	// every device of UserID (an invite rings them all; a select_answer
	// stops the others ringing).
	DeviceID string
}

// Signaller carries call events between devices. The client library
// implements it with MLS-encrypted direct device messages, which the server
// routes without seeing their content and does not keep in room history.
type Signaller interface {
	// Send delivers ev to the devices of to. It returns once the transport
	// accepted the event (not when it was delivered) and must be safe for
	// concurrent use.
	Send(ctx context.Context, to Target, ev Event) error
}

// Received is one call event received by this device, handed to
// Switchboard.Deliver by the transport.
type Received struct {
	// Room is the room the event was sent in.
	Room string
	// Sender and SenderDevice identify the sending user and device, as
	// authenticated by the transport (the MLS sender's credential).
	Sender, SenderDevice string
	// Age is how long ago the sender sent the event, by the homeserver's
	// clock (its receive time to now); invites and negotiations older than
	// their lifetime are ignored. Zero if unknown.
	Age time.Duration
	// Event is the decoded call event (see Unmarshal).
	Event Event
}
