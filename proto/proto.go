// Package proto defines the wire types of the medicus client API: the JSON
// request and response bodies of the HTTPS endpoints under /v1/, the frames of
// the sync WebSocket, and the stable error codes. The server, the client
// library and federation import it; it imports nothing of the project.
//
// docs/api.md describes the protocol these types carry.
package proto

import "time"

// Roles a user can hold on a homeserver (DESIGN.md, Identifiers).
const (
	RoleDoctor  = "doctor"
	RoleNurse   = "nurse"
	RolePatient = "patient"
	RoleBot     = "bot"
	RoleAdmin   = "admin"
)

// ValidRole reports whether r is one of the roles above.
func ValidRole(r string) bool {
	switch r {
	case RoleDoctor, RoleNurse, RolePatient, RoleBot, RoleAdmin:
		return true
	}
	return false
}

// Room-level roles of a member.
const (
	RoomRoleModerator = "moderator"
	RoomRoleMember    = "member"
)

// Membership states of a user in a room.
const (
	MembershipInvite = "invite"
	MembershipJoin   = "join"
	MembershipLeave  = "leave"
)

// Message kinds. The server treats every kind except KindMember as opaque;
// KindMember events are written by the server itself on membership changes.
const (
	KindMLSCommit   = "mls-commit"
	KindMLSWelcome  = "mls-welcome"
	KindMLSApp      = "mls-app"
	KindMLSProposal = "mls-proposal"
	KindEphemeral   = "ephemeral"
	KindMember      = "m.member"
)

// Error is the body of every error response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfterMS is set with M_LIMIT_EXCEEDED.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
	// CurrentEpoch is set with M_STALE_EPOCH: the room's epoch, so that the
	// client knows how far it has to catch up.
	CurrentEpoch *uint64 `json:"current_epoch,omitempty"`
}

// Stable error codes. Their meaning and HTTP status are listed in docs/api.md.
const (
	ErrBadJSON         = "M_BAD_JSON"         // 400: body is not the expected JSON
	ErrInvalidParam    = "M_INVALID_PARAM"    // 400: a field or path parameter is invalid
	ErrMissingToken    = "M_MISSING_TOKEN"    // 401: no access token
	ErrUnknownToken    = "M_UNKNOWN_TOKEN"    // 401: token unknown, logged out or revoked
	ErrForbidden       = "M_FORBIDDEN"        // 403: wrong password, disabled, or not allowed by policy
	ErrNotFound        = "M_NOT_FOUND"        // 404: no such room, user, device or media
	ErrTooLarge        = "M_TOO_LARGE"        // 413: body over the configured limit
	ErrLimitExceeded   = "M_LIMIT_EXCEEDED"   // 429: rate limited
	ErrUserInUse       = "M_USER_IN_USE"      // 409: user id already exists
	ErrConflict        = "M_CONFLICT"         // 409: state does not allow this (e.g. already a member)
	ErrUnrecognized    = "M_UNRECOGNIZED"     // 404/405: unknown endpoint or method
	ErrNoKeyPackage    = "M_NO_KEY_PACKAGE"   // 404: the user has no device with a key package
	ErrUnknown         = "M_UNKNOWN"          // 500: internal error, details only in the server log
	ErrUnavailable     = "M_UNAVAILABLE"      // 503: shutting down
	ErrInvalidUsername = "M_INVALID_USERNAME" // 400: user id not of the form @local:server
	ErrStaleEpoch      = "M_STALE_EPOCH"      // 409: an MLS commit for an epoch the room has left
)

// LoginRequest is the body of POST /v1/login.
type LoginRequest struct {
	UserID     string `json:"user_id"` // "@alice:server" or "alice"
	Password   string `json:"password"`
	DeviceName string `json:"device_name,omitempty"`
}

// LoginResponse is the reply to a successful login.
type LoginResponse struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	AccessToken string `json:"access_token"`
	Role        string `json:"role"`
}

// Device describes one login of a user.
type Device struct {
	DeviceID   string    `json:"device_id"`
	Name       string    `json:"name,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

// DevicesResponse is the reply of GET /v1/devices.
type DevicesResponse struct {
	Devices []Device `json:"devices"`
}

// UserInfo describes an account, as listed by administrators.
type UserInfo struct {
	UserID    string    `json:"user_id"`
	Role      string    `json:"role"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// CreateRoomRequest is the body of POST /v1/rooms.
type CreateRoomRequest struct {
	// Name is an optional label for the room visible to the server; clients
	// keep sensitive room names inside MLS.
	Name string `json:"name,omitempty"`
	// AllowedServers, if set, restricts the room to users of these servers
	// (the hub's own users always qualify): a room ACL for federation.
	AllowedServers []string `json:"allowed_servers,omitempty"`
}

// CreateRoomResponse is the reply of POST /v1/rooms.
type CreateRoomResponse struct {
	RoomID string `json:"room_id"`
}

// UserRequest names a user, for invite and remove.
type UserRequest struct {
	UserID string `json:"user_id"`
}

// Member is one user's membership in a room.
type Member struct {
	UserID     string `json:"user_id"`
	Role       string `json:"role"`       // server role of the user (doctor, patient, ...)
	RoomRole   string `json:"room_role"`  // moderator or member
	Membership string `json:"membership"` // invite, join or leave
}

// Room summarises a room the requesting user belongs to.
type Room struct {
	RoomID  string `json:"room_id"`
	Hub     string `json:"hub"`
	Name    string `json:"name,omitempty"`
	LastSeq int64  `json:"last_seq"`
	// Epoch is the MLS epoch the hub accepts the next commit for.
	Epoch   uint64   `json:"epoch"`
	Members []Member `json:"members"`
}

// RoomsResponse is the reply of GET /v1/rooms.
type RoomsResponse struct {
	Rooms []Room `json:"rooms"`
}

// SendRequest is the body of PUT /v1/rooms/{room}/send/{txn}.
type SendRequest struct {
	Kind string `json:"kind"`
	Body []byte `json:"body"` // base64 in JSON; opaque to the server
	// Epoch is the MLS epoch the message was made in, required for
	// KindMLSCommit. The hub accepts one commit per epoch, and messages
	// that carry an epoch only in the room's current one; it refuses others
	// with ErrStaleEpoch (RFC 9420 §14).
	Epoch *uint64 `json:"epoch,omitempty"`
}

// SendResponse is the reply of a send: the sequence number the hub assigned.
// A repeated transaction id returns the original sequence number.
type SendResponse struct {
	Seq    int64 `json:"seq"`
	Stream int64 `json:"stream"`
}

// MembershipChange is the content of a KindMember event.
type MembershipChange struct {
	UserID     string `json:"user_id"`
	Membership string `json:"membership"`
	RoomRole   string `json:"room_role"`
	By         string `json:"by"`
}

// Event is one entry of a room's log.
type Event struct {
	RoomID   string    `json:"room_id"`
	Seq      int64     `json:"seq"`    // position in the room, from 1
	Stream   int64     `json:"stream"` // position in this server's stream, the sync cursor
	Sender   string    `json:"sender"`
	DeviceID string    `json:"device_id,omitempty"`
	Kind     string    `json:"kind"`
	Body     []byte    `json:"body,omitempty"`
	Time     time.Time `json:"ts"`
	// Member is set on KindMember events.
	Member *MembershipChange `json:"member,omitempty"`
}

// HistoryResponse is the reply of GET /v1/rooms/{room}/messages.
type HistoryResponse struct {
	Events []Event `json:"events"`
	// Next is the sequence number to ask for next, or 0 at the end.
	Next int64 `json:"next,omitempty"`
}

// UploadKeyPackagesRequest is the body of POST /v1/keys/upload.
type UploadKeyPackagesRequest struct {
	KeyPackages [][]byte `json:"key_packages"`
	// LastResort, if set, replaces the device's last-resort key package,
	// which is handed out when no other is left and never used up.
	LastResort []byte `json:"last_resort,omitempty"`
	// Suite is the MLS cipher suite of every package of the upload; 0
	// (absent) means DefaultSuite. A device keeps separate packages, and a
	// separate last-resort one, per suite.
	Suite uint16 `json:"suite,omitempty"`
}

// KeyPackageCount is the reply of upload and of GET /v1/keys/count
// (?suite=N selects the suite, default DefaultSuite): the device's
// packages of that suite.
type KeyPackageCount struct {
	Unclaimed     int    `json:"unclaimed"`
	HasLastResort bool   `json:"has_last_resort"`
	Suite         uint16 `json:"suite,omitempty"`
}

// ClaimKeyPackagesRequest is the body of POST /v1/keys/claim.
type ClaimKeyPackagesRequest struct {
	UserID string `json:"user_id"`
	// DeviceID, if set, claims only that device's key package (a user's
	// device adding the user's new device to its rooms).
	DeviceID string `json:"device_id,omitempty"`
	// Suite selects key packages of this MLS cipher suite (the room's); 0
	// (absent) means DefaultSuite.
	Suite uint16 `json:"suite,omitempty"`
}

// ClaimedKeyPackage is one device's key package.
type ClaimedKeyPackage struct {
	DeviceID   string `json:"device_id"`
	KeyPackage []byte `json:"key_package"`
	LastResort bool   `json:"last_resort"`
}

// ClaimKeyPackagesResponse lists one key package per device of the user.
type ClaimKeyPackagesResponse struct {
	UserID      string              `json:"user_id"`
	KeyPackages []ClaimedKeyPackage `json:"key_packages"`
}

// OutgoingDeviceMessage is one message of PUT /v1/send_to_device/{txn}.
type OutgoingDeviceMessage struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Kind     string `json:"kind"`
	Body     []byte `json:"body"`
}

// SendToDeviceRequest is the body of PUT /v1/send_to_device/{txn}.
type SendToDeviceRequest struct {
	Messages []OutgoingDeviceMessage `json:"messages"`
}

// DeviceMessage is a message queued for one device, delivered over sync
// until the device acknowledges it.
type DeviceMessage struct {
	ID           int64     `json:"id"`
	Sender       string    `json:"sender"`
	SenderDevice string    `json:"sender_device"`
	Kind         string    `json:"kind"`
	Body         []byte    `json:"body"`
	Time         time.Time `json:"ts"`
}

// AckRequest acknowledges device messages up to and including UpTo, as the
// body of POST /v1/device_messages/ack or as a sync frame.
type AckRequest struct {
	UpTo int64 `json:"up_to"`
}

// MediaResponse is the reply of POST /v1/media.
type MediaResponse struct {
	MediaID string `json:"media_id"` // hex SHA-256 of the uploaded bytes
	Size    int64  `json:"size"`
}

// HealthResponse is the reply of GET /v1/health.
type HealthResponse struct {
	Status     string `json:"status"`
	ServerName string `json:"server_name"`
}

// Sync frame types.
const (
	FrameEvents        = "events"         // server → client: Events, in stream order
	FrameDeviceMessage = "device_message" // server → client: DeviceMessage
	FrameCaughtUp      = "caught_up"      // server → client: replay finished, Stream is the cursor
	FrameAck           = "ack"            // client → server: AckRequest
)

// SyncFrame is one WebSocket text message on /v1/sync.
type SyncFrame struct {
	Type          string         `json:"type"`
	Events        []Event        `json:"events,omitempty"`
	DeviceMessage *DeviceMessage `json:"device_message,omitempty"`
	Stream        int64          `json:"stream,omitempty"`
	Ack           *AckRequest    `json:"ack,omitempty"`
}
