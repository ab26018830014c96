package proto

// Server-to-server types (docs/federation.md). Every federation request is
// made over mutually authenticated TLS; its origin is the server named by
// the client certificate, never a field of these bodies.

// Item kinds of a federation transaction.
const (
	FedItemEvent         = "event"
	FedItemDeviceMessage = "device_message"
)

// FedTransaction is the body of PUT /fed/v1/transactions/{txn}: items
// from the origin's durable outbound queue for this destination, in queue
// order. The receiver applies each item at most once.
type FedTransaction struct {
	Items []FedItem `json:"items"`
}

// FedItem is one entry of a transaction: a room event (only from the
// room's hub) or a direct device message for a device of the receiver.
type FedItem struct {
	Kind          string            `json:"kind"`
	Event         *Event            `json:"event,omitempty"`
	DeviceMessage *FedDeviceMessage `json:"device_message,omitempty"`
}

// FedDeviceMessage is a direct device message from a user of the origin to
// a device of a user of the receiver. Txn is the sending client's
// transaction id, which makes redelivery idempotent.
type FedDeviceMessage struct {
	Txn          string `json:"txn"`
	Sender       string `json:"sender"`
	SenderDevice string `json:"sender_device"`
	UserID       string `json:"user_id"`
	DeviceID     string `json:"device_id"`
	Kind         string `json:"kind"`
	Body         []byte `json:"body"`
}

// FedTransactionResult answers a transaction: how many items were new and
// how many were refused (with the reasons), so that the origin can log
// them; refused items are not retried.
type FedTransactionResult struct {
	Applied  int      `json:"applied"`
	Repeated int      `json:"repeated"`
	Refused  []string `json:"refused,omitempty"`
}

// FedSubmitRequest is the body of PUT /fed/v1/rooms/{room}/submit/{txn}:
// a follower forwards a message of its local member to the room's hub.
type FedSubmitRequest struct {
	Sender   string  `json:"sender"`
	DeviceID string  `json:"device_id"`
	Kind     string  `json:"kind"`
	Body     []byte  `json:"body"`
	Epoch    *uint64 `json:"epoch,omitempty"`
}

// FedMembershipRequest is the body of POST /fed/v1/rooms/{room}/membership:
// a follower forwards a membership action of its local user (Actor) to the
// room's hub: "join", "leave", or "invite"/"remove" of Target.
type FedMembershipRequest struct {
	Actor  string `json:"actor"`
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
}

// FedMembershipResponse tells the follower the sequence number of the
// membership event, which it waits for before answering its client.
type FedMembershipResponse struct {
	Seq int64 `json:"seq"`
}

// FedClaimRequest is the body of POST /fed/v1/keys/claim: Requester (a
// user of the origin) claims key packages of a user of the receiver.
type FedClaimRequest struct {
	Requester string `json:"requester"`
	UserID    string `json:"user_id"`
	DeviceID  string `json:"device_id,omitempty"`
	// Suite is the MLS cipher suite of the claimed packages; 0 (absent)
	// means DefaultSuite.
	Suite uint16 `json:"suite,omitempty"`
}
