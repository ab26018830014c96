// Package store defines the homeserver's persistence interface: accounts,
// devices, rooms and their ordered logs, key packages, device messages,
// media records and the audit log. Handlers depend only on this interface,
// so a PostgreSQL implementation can be added beside the SQLite one in
// store/sqlite without touching them.
//
// Everything the store holds about messages is opaque ciphertext plus the
// routing metadata the hub needs; it never sees plaintext.
package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/medicus-health/medicus/proto"
)

// Errors that callers distinguish with errors.Is.
var (
	ErrNotFound  = errors.New("store: not found")
	ErrExists    = errors.New("store: already exists")
	ErrForbidden = errors.New("store: not allowed")
	ErrConflict  = errors.New("store: conflicting state")
	ErrClosed    = errors.New("store: closed")
	ErrQuota     = errors.New("store: quota exceeded")
)

// User is an account.
type User struct {
	ID           string
	Role         string
	PasswordHash string
	Disabled     bool
	CreatedAt    time.Time
}

// Device is one login of a user; TokenHash is the SHA-256 of its access token.
type Device struct {
	UserID     string
	DeviceID   string
	Name       string
	TokenHash  []byte
	CreatedAt  time.Time
	LastSeenAt time.Time
}

// Room is a room hosted (as hub) or followed by this server.
type Room struct {
	ID        string
	Hub       string
	Name      string
	Creator   string
	CreatedAt time.Time
	// Epoch is the MLS epoch the hub expects the next commit for.
	Epoch uint64
	// AllowedServers, if not empty, restricts a hosted room's members to
	// users of these servers (and of the hub).
	AllowedServers []string
}

// Admits reports whether users of server may be members of the room.
func (r Room) Admits(server string) bool {
	return len(r.AllowedServers) == 0 || server == r.Hub || slices.Contains(r.AllowedServers, server)
}

// Member is a user's membership in a room.
type Member struct {
	RoomID     string
	UserID     string
	Role       string // server role of the user
	RoomRole   string
	Membership string
}

// Append is one message to add to a room log.
type Append struct {
	RoomID   string
	Sender   string
	DeviceID string
	TxnID    string
	Kind     string
	Body     []byte
	// Epoch, if set, is the MLS epoch the message was made in. The store
	// accepts it only if it equals the room's current epoch and fails with
	// a *StaleEpochError otherwise; a commit (Kind proto.KindMLSCommit)
	// then advances the room to Epoch+1. Commits must set it.
	Epoch *uint64
	// PublicGroup, if set with a commit, is the room's public MLS group
	// state after the commit, stored in the transaction that accepts it.
	PublicGroup []byte
}

// StaleEpochError refuses a commit made in another epoch than the room's
// current one: another commit won the race for that epoch.
type StaleEpochError struct {
	Current uint64 // the room's epoch
	Got     uint64 // the epoch of the refused commit
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("store: commit for epoch %d, but the room is at epoch %d", e.Got, e.Current)
}

// Is makes errors.Is(err, ErrConflict) true for a stale epoch.
func (e *StaleEpochError) Is(target error) bool { return target == ErrConflict }

// MembershipUpdate changes a user's membership and records a member event
// in the room log in the same transaction. Check is called inside that
// transaction with the actor's and the target's current memberships (zero
// Member if none) and refuses the change by returning an error; this keeps
// the policy decision and the write atomic.
type MembershipUpdate struct {
	RoomID   string
	Actor    string
	DeviceID string
	Target   string
	// Membership and RoomRole are the new state of Target.
	Membership string
	RoomRole   string
	Check      func(actor, target Member) error
}

// KeyPackage is an unclaimed MLS KeyPackage of a device.
type KeyPackage struct {
	DeviceID   string
	Data       []byte
	LastResort bool
}

// DeviceMessage is a message queued for one device.
type DeviceMessage struct {
	ID           int64
	TargetUser   string
	TargetDevice string
	Sender       string
	SenderDevice string
	TxnID        string
	Kind         string
	Body         []byte
	Time         time.Time
}

// Media is a stored blob posted in a room.
type Media struct {
	SHA256   string
	Size     int64
	RoomID   string
	Uploader string
	Time     time.Time
}

// AuditEntry records who accessed what; never content.
type AuditEntry struct {
	Time     time.Time
	Actor    string
	DeviceID string
	Action   string // e.g. "login", "login_failed", "room_join", "media_download", "admin_user_add"
	Target   string
	Address  string
}

// Store is the persistence interface of the homeserver. Every method is safe
// for concurrent use. Writes that return without error are durable.
type Store interface {
	Federation
	CreateUser(ctx context.Context, u User) error
	User(ctx context.Context, id string) (User, error)
	Users(ctx context.Context) ([]User, error)
	SetUserDisabled(ctx context.Context, id string, disabled bool) error

	CreateDevice(ctx context.Context, d Device) error
	DeviceByToken(ctx context.Context, tokenHash []byte) (Device, error)
	Devices(ctx context.Context, userID string) ([]Device, error)
	// DeleteDevice removes a device with its token, key packages and queued
	// device messages.
	DeleteDevice(ctx context.Context, userID, deviceID string) error
	TouchDevice(ctx context.Context, userID, deviceID string, at time.Time) error

	// CreateRoom stores the room and makes creator a joined moderator,
	// appending the member event. It returns that event.
	CreateRoom(ctx context.Context, r Room, creatorDevice string) (proto.Event, error)
	Room(ctx context.Context, id string) (Room, error)
	Member(ctx context.Context, roomID, userID string) (Member, error)
	Members(ctx context.Context, roomID string) ([]Member, error)
	// RoomsOf lists the rooms in which the user is invited or joined.
	RoomsOf(ctx context.Context, userID string) ([]Room, error)
	LastSeq(ctx context.Context, roomID string) (int64, error)
	UpdateMembership(ctx context.Context, u MembershipUpdate) (proto.Event, error)

	// AppendMessage adds a message to a room log. If the sender's device has
	// used the transaction id in that room before, it returns the original
	// event and duplicate = true and stores nothing.
	AppendMessage(ctx context.Context, a Append) (ev proto.Event, duplicate bool, err error)
	// History returns up to limit events of a room with seq ≥ fromSeq.
	History(ctx context.Context, roomID string, fromSeq int64, limit int) ([]proto.Event, error)
	// StreamSince returns up to limit events with stream > since from rooms
	// in which the user has ever had a membership, in stream order. The
	// caller filters by membership at the time of each event.
	StreamSince(ctx context.Context, userID string, since int64, limit int) ([]proto.Event, error)
	// MembershipEventsUpTo returns the user's own member events with
	// stream ≤ upTo, in order, from which its memberships at upTo follow.
	MembershipEventsUpTo(ctx context.Context, userID string, upTo int64) ([]proto.Event, error)
	LatestStream(ctx context.Context) (int64, error)

	// RoomPublicGroup returns the hub's serialized public MLS group state
	// of a room, nil if none was published.
	RoomPublicGroup(ctx context.Context, roomID string) ([]byte, error)
	// SetRoomPublicGroup stores the first public group state of a room,
	// published at epoch. It fails with ErrConflict if the room has one
	// already or is at another epoch, ErrNotFound for no such room.
	SetRoomPublicGroup(ctx context.Context, roomID string, epoch uint64, data []byte) error

	// AddKeyPackages stores unclaimed key packages of a device for an MLS
	// cipher suite; a non-nil lastResort replaces the device's last-resort
	// package of that suite.
	AddKeyPackages(ctx context.Context, userID, deviceID string, suite uint16, pkgs [][]byte, lastResort []byte) error
	// ClaimKeyPackages returns and consumes one key package of the suite
	// per device of the user. A device with none left yields its
	// last-resort package of the suite (not consumed); a device with
	// neither is omitted. A non-empty deviceID restricts the claim to that
	// device.
	ClaimKeyPackages(ctx context.Context, userID, deviceID string, suite uint16) ([]KeyPackage, error)
	// CountKeyPackages counts a device's unclaimed key packages of the
	// suite and reports whether it has a last-resort one.
	CountKeyPackages(ctx context.Context, userID, deviceID string, suite uint16) (unclaimed int, hasLastResort bool, err error)

	// QueueDeviceMessages queues messages for devices; a message whose
	// (sender device, txn id, target device) was queued before is ignored.
	// If a target device already holds limit queued messages, it queues
	// nothing and returns ErrQuota.
	QueueDeviceMessages(ctx context.Context, msgs []DeviceMessage, limit int) error
	DeviceMessagesAfter(ctx context.Context, userID, deviceID string, after int64, limit int) ([]DeviceMessage, error)
	AckDeviceMessages(ctx context.Context, userID, deviceID string, upTo int64) error

	// AddMedia records that a blob was posted in a room.
	AddMedia(ctx context.Context, m Media) error
	// MediaForMember returns the blob's record if the user is a joined member
	// of a room in which it was posted, and ErrNotFound otherwise.
	MediaForMember(ctx context.Context, sha256, userID string) (Media, error)

	Audit(ctx context.Context, e AuditEntry) error
	AuditLog(ctx context.Context, limit int) ([]AuditEntry, error)

	Close() error
}

// FedOutbound is one item of a federation destination's durable queue.
type FedOutbound struct {
	ID   int64
	Item proto.FedItem
}

// GapError refuses a followed room's event that does not follow the last
// stored one: events from the hub must arrive in order.
type GapError struct {
	Last int64 // the room's last stored sequence number
	Got  int64 // the refused event's
}

func (e *GapError) Error() string {
	return fmt.Sprintf("store: event %d does not follow %d", e.Got, e.Last)
}

// ApplyResult is the outcome of one event of ApplyRemoteEvents: Applied if
// it was new; Err a *GapError (applying stopped there) or an ErrForbidden
// refusal.
type ApplyResult struct {
	Applied bool
	Err     error
}

// Federation is the part of the store that federation uses.
type Federation interface {
	// EnqueueFederation queues an item for a destination.
	EnqueueFederation(ctx context.Context, dest string, item proto.FedItem) error
	// FederationDestinations, FederationPending and FederationDelivered
	// drain the queue (see federation.Outbox).
	FederationDestinations(ctx context.Context) ([]string, error)
	FederationPending(ctx context.Context, dest string, limit int) ([]FedOutbound, error)
	FederationDelivered(ctx context.Context, dest string, upTo int64) error
	// FederationBacklog counts queued items per destination.
	FederationBacklog(ctx context.Context) (map[string]int, error)
	// ApplyRemoteEvent stores a followed room's event from its hub; it
	// reports whether the event was new, and fails with a *GapError if it
	// does not follow the last one.
	ApplyRemoteEvent(ctx context.Context, hub string, ev proto.Event) (bool, error)
	// ApplyRemoteEvents applies events in one transaction, stopping at a
	// gap; see ApplyResult.
	ApplyRemoteEvents(ctx context.Context, hub string, evs []proto.Event) ([]ApplyResult, error)
	// RequestJoin records a local user's request to join a followed room;
	// a hub's join event for a local user without one counts as an invite.
	RequestJoin(ctx context.Context, roomID, userID string) error
	// DeliverRemoteDeviceMessage queues a device message from origin for a
	// local device, once.
	DeliverRemoteDeviceMessage(ctx context.Context, origin string, m proto.FedDeviceMessage) (bool, error)
	// RecordRemoteMedia notes that a blob fetched from origin belongs to a room.
	RecordRemoteMedia(ctx context.Context, sha, roomID, origin string, size int64) error
	// MediaInRoom returns a blob's record if it was posted in the room.
	MediaInRoom(ctx context.Context, sha256, roomID string) (Media, error)
	// ServerHasMember reports whether a user of server is invited or joined.
	ServerHasMember(ctx context.Context, roomID, server string) (bool, error)
}
