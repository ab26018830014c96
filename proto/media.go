package proto

// TURNServerResponse is the answer of GET /v1/voip/turn: short-lived TURN
// REST credentials for the homeserver's embedded relay.
type TURNServerResponse struct {
	// Username is "expiry:user_id", expiry in Unix seconds.
	Username string `json:"username"`
	// Password is base64(HMAC-SHA1(shared secret, username)).
	Password string `json:"password"`
	// TTL is how long the credentials are valid, in seconds.
	TTL int64 `json:"ttl"`
	// URIs are the relay's turn: URIs (UDP and TCP).
	URIs []string `json:"uris"`
}

// Types of the SFU signalling messages exchanged on the WebSocket of
// GET /v1/rooms/{room}/call.
const (
	SFUOffer        = "offer"        // server → client: an SDP offer to answer
	SFUAnswer       = "answer"       // client → server: the answer to the last offer
	SFUParticipants = "participants" // server → client: who is in the call now
)

// SFUMessage is one JSON text frame of the SFU signalling WebSocket.
type SFUMessage struct {
	Type string `json:"type"`
	// SDP is the session description of an offer or answer, with every ICE
	// candidate in it (no trickle).
	SDP string `json:"sdp,omitempty"`
	// Participants lists the call's participants in join order.
	Participants []SFUParticipant `json:"participants,omitempty"`
}

// SFUParticipant is one device in a room call. The media stream id
// (msid) of the tracks the SFU forwards from it is its DeviceID.
type SFUParticipant struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
}
