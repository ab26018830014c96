package client

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/client/state"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/mls/policy"
	"github.com/medicus-health/medicus/proto"
)

// maxCommitAttempts bounds how often a commit that lost the race for an
// epoch is rebuilt and resubmitted.
const maxCommitAttempts = 8

// room is the session's state of one room.
type room struct {
	ID      string
	Name    string
	Applied int64 // the last sequence number processed
	Left    bool  // removed from the group, or left
	// OwnSent holds the sequence numbers of this device's messages not yet
	// passed in the log: only those may appear as sent by this device.
	OwnSent []int64
	// KeysUpdated is when this device last refreshed its keys in the
	// group (joined, or committed with an UpdatePath).
	KeysUpdated time.Time
	group       *mls.Group
	dirty       bool
}

type roomRecord struct {
	Name        string    `json:"name"`
	Applied     int64     `json:"applied"`
	Left        bool      `json:"left"`
	OwnSent     []int64   `json:"own_sent,omitempty"`
	KeysUpdated time.Time `json:"keys_updated"`
	Group       []byte    `json:"group,omitempty"`
}

func (s *Session) loadRooms(ctx context.Context) error {
	raw, err := s.st.Get(ctx, "rooms")
	if errors.Is(err, state.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var ids []string
	if err := json.Unmarshal(raw, &ids); err != nil {
		return fmt.Errorf("decode room list: %w", err)
	}
	for _, id := range ids {
		raw, err := s.st.Get(ctx, "room:"+id)
		if err != nil {
			return err
		}
		var rec roomRecord
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("decode room %s: %w", id, err)
		}
		r := &room{ID: id, Name: rec.Name, Applied: rec.Applied, Left: rec.Left, OwnSent: rec.OwnSent, KeysUpdated: rec.KeysUpdated}
		if rec.Group != nil {
			if r.group, err = mls.UnmarshalGroup(s.mlsc, rec.Group); err != nil {
				return fmt.Errorf("load group of %s: %w", id, err)
			}
		}
		s.rooms[id] = r
	}
	return nil
}

// flush persists dirty rooms, the messages learnt since the last flush, the
// pins and the sync cursor, in one transaction.
func (s *Session) flush(ctx context.Context) error {
	if err := s.pins.save(ctx, s.st); err != nil {
		return err
	}
	prof, err := json.Marshal(s.prof)
	if err != nil {
		return err
	}
	err = s.st.Update(ctx, func(tx *state.Tx) error {
		ids := make([]string, 0, len(s.rooms))
		for id, r := range s.rooms {
			ids = append(ids, id)
			if !r.dirty {
				continue
			}
			rec := roomRecord{Name: r.Name, Applied: r.Applied, Left: r.Left, OwnSent: r.OwnSent, KeysUpdated: r.KeysUpdated}
			if r.group != nil && !r.Left {
				g, err := r.group.Marshal()
				if err != nil {
					return fmt.Errorf("save group of %s: %w", id, err)
				}
				rec.Group = g
			}
			raw, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := tx.Put("room:"+id, raw); err != nil {
				return err
			}
		}
		slices.Sort(ids)
		raw, _ := json.Marshal(ids)
		if err := tx.Put("rooms", raw); err != nil {
			return err
		}
		for _, m := range s.unsaved {
			raw, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := tx.PutMessage(m.Room, m.Seq, raw); err != nil {
				return err
			}
		}
		return tx.Put("profile", prof)
	})
	if err != nil {
		return err
	}
	for _, r := range s.rooms {
		r.dirty = false
	}
	s.unsaved = s.unsaved[:0]
	return nil
}

func newTxnID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// RoomInfo describes a room the session is in.
type RoomInfo struct {
	RoomID string `json:"room_id"`
	Name   string `json:"name,omitempty"`
	Epoch  uint64 `json:"epoch"`
	// Members lists the users of the MLS group, each with its devices.
	Members map[string][]string `json:"members"`
	Left    bool                `json:"left,omitempty"`
	// Suite is the MLS cipher suite of the room's group.
	Suite mls.CipherSuite `json:"suite,omitempty"`
}

// Rooms lists the rooms whose group the session holds.
func (s *Session) Rooms() []RoomInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RoomInfo, 0, len(s.rooms))
	for _, r := range s.rooms {
		out = append(out, s.roomInfo(r))
	}
	slices.SortFunc(out, func(a, b RoomInfo) int {
		if a.RoomID < b.RoomID {
			return -1
		}
		return 1
	})
	return out
}

// Room describes one room.
func (s *Session) Room(roomID string) (RoomInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rooms[roomID]
	if !ok {
		return RoomInfo{}, fmt.Errorf("%s: %w", roomID, ErrUnknownRoom)
	}
	return s.roomInfo(r), nil
}

func (s *Session) roomInfo(r *room) RoomInfo {
	info := RoomInfo{RoomID: r.ID, Name: r.Name, Left: r.Left, Members: map[string][]string{}}
	if r.group == nil || r.Left {
		return info
	}
	info.Epoch = r.group.Epoch()
	info.Suite = r.group.CipherSuite()
	for _, m := range r.group.Members() {
		if dc, err := parseDeviceCredential(&m.Credential); err == nil {
			info.Members[dc.UserID] = append(info.Members[dc.UserID], dc.DeviceID)
		}
	}
	return info
}

func (s *Session) liveRoom(roomID string) (*room, error) {
	r, ok := s.rooms[roomID]
	if !ok || r.group == nil {
		return nil, fmt.Errorf("%s: %w", roomID, ErrUnknownRoom)
	}
	if r.Left {
		return nil, fmt.Errorf("%s: %w", roomID, mls.ErrNotMember)
	}
	return r, nil
}

// RoomOptions are the optional settings of a new room.
type RoomOptions struct {
	// AllowedServers restricts the room to users of these homeservers
	// (the hub's own users always qualify); empty admits every federated
	// server.
	AllowedServers []string
	// Suite is the room's MLS cipher suite, fixed for the room's life;
	// zero means DefaultSuite. It must share the signature scheme of this
	// device's key (e.g. 0xF001, the X-Wing post-quantum hybrid, with the
	// default Ed25519 key); invitees need KeyPackages in it, which current
	// clients publish for every such suite.
	Suite mls.CipherSuite
	// Policy puts a room policy (crypto/mls/policy, standard roles; this
	// user the moderator) into the group context and publishes the
	// group's GroupInfo to the hub, which from then on refuses commits the
	// policy does not allow: only moderators add and remove other users,
	// bots add and remove nobody. Invite and Remove keep the participant
	// list in step, in the same commit.
	Policy bool
}

// CreateRoom creates a room on the homeserver (which becomes its hub) and
// its MLS group, with this device as the only member.
func (s *Session) CreateRoom(ctx context.Context, name string) (string, error) {
	return s.CreateRoomWith(ctx, name, RoomOptions{})
}

// CreateRoomWith is CreateRoom with options.
func (s *Session) CreateRoomWith(ctx context.Context, name string, opts RoomOptions) (string, error) {
	suite := opts.Suite
	if suite == 0 {
		suite = DefaultSuite
	}
	if !slices.Contains(s.keyPackageSuites(), suite) {
		return "", fmt.Errorf("create room in suite %#04x: %w", uint16(suite), ErrUnsupportedSuite)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The server sees no room name: it stays inside the client's state.
	id, err := s.api.CreateRoomWith(ctx, proto.CreateRoomRequest{AllowedServers: opts.AllowedServers})
	if err != nil {
		return "", fmt.Errorf("create room: %w", err)
	}
	var exts []mls.Extension
	if opts.Policy {
		pol, err := policy.New(map[string]uint8{s.prof.UserID: policy.RoleModerator})
		if err != nil {
			return "", fmt.Errorf("room policy: %w", err)
		}
		ext, err := pol.Extension()
		if err != nil {
			return "", fmt.Errorf("room policy: %w", err)
		}
		exts = append(exts, ext)
	}
	g, err := mls.CreateGroup(s.mlsc, []byte(id), suite, s.cred, s.prof.SignatureKey, exts)
	if err != nil {
		return "", fmt.Errorf("create group for %s: %w", id, err)
	}
	if opts.Policy {
		gi, err := g.GroupInfo(true, false)
		if err != nil {
			return "", fmt.Errorf("group info of %s: %w", id, err)
		}
		if err := s.api.PublishGroupInfo(ctx, id, gi); err != nil {
			return "", fmt.Errorf("publish group info of %s: %w", id, err)
		}
	}
	r := &room{ID: id, Name: name, group: g, dirty: true, KeysUpdated: s.now()}
	s.rooms[id] = r
	// The creation's own m.member events come first in the log.
	if err := s.catchUp(ctx, r); err != nil {
		return "", err
	}
	if err := s.flush(ctx); err != nil {
		return "", err
	}
	s.log.Info("room created", "room", id)
	return id, nil
}

// welcomeBody is the device message that carries a Welcome.
type welcomeBody struct {
	Room string `json:"room"`
	// SealedName is the room name, encrypted under a key exported from
	// the epoch the Welcome opens (sealRoomName): the homeserver stores
	// device messages and must not learn it.
	SealedName []byte `json:"sealed_name,omitempty"`
	CommitSeq  int64  `json:"commit_seq"`
	KeyPackage string `json:"key_package"` // keyPackageName of the used KeyPackage
	Welcome    []byte `json:"welcome"`
}

// Invite adds every device of user to the room: it invites the user on the
// homeserver, claims one KeyPackage per device, verifies each device's
// credential, commits the Adds and sends each device its Welcome.
// Devices whose credential is refused are not added; if none is left,
// Invite fails.
func (s *Session) Invite(ctx context.Context, roomID, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.liveRoom(roomID)
	if err != nil {
		return err
	}
	if err := s.api.Invite(ctx, roomID, user); err != nil && !api.IsCode(err, proto.ErrConflict) {
		return fmt.Errorf("invite %s: %w", user, err)
	}
	// KeyPackages must be of the room's suite (RFC 9420 §12.2).
	claimed, err := s.api.ClaimKeyPackagesWith(ctx, proto.ClaimKeyPackagesRequest{UserID: user, Suite: uint16(r.group.CipherSuite())})
	if err != nil {
		return fmt.Errorf("claim key packages of %s: %w", user, err)
	}
	return s.addDevices(ctx, r, claimed.KeyPackages, user)
}

// addDevices commits Adds for the claimed KeyPackages that pass validation
// and delivers the Welcomes.
func (s *Session) addDevices(ctx context.Context, r *room, claimed []proto.ClaimedKeyPackage, user string) error {
	var adds []*mls.Proposal
	var targets []proto.ClaimedKeyPackage
	var refusals []error
	for _, kp := range claimed {
		p, err := mls.AddProposal(kp.KeyPackage)
		if err == nil {
			err = s.checkKeyPackage(kp.KeyPackage, user, kp.DeviceID)
		}
		if err != nil {
			refusals = append(refusals, fmt.Errorf("device %s: %w", kp.DeviceID, err))
			s.log.Warn("key package refused", "user", user, "device", kp.DeviceID, "err", err)
			continue
		}
		adds = append(adds, p)
		targets = append(targets, kp)
	}
	if err := s.pins.save(ctx, s.st); err != nil {
		return err
	}
	if len(adds) == 0 {
		if len(refusals) == 0 {
			return fmt.Errorf("%s has no device with a key package", user)
		}
		return fmt.Errorf("no device of %s could be added: %w", user, errors.Join(refusals...))
	}
	out, seq, err := s.commit(ctx, r, func(g *mls.Group) (*mls.CommitOptions, error) {
		props := adds
		change, err := s.policyChange(ctx, r.ID, g, user, true)
		if err != nil {
			return nil, err
		}
		if change != nil {
			props = append(slices.Clip(adds), change)
		}
		return &mls.CommitOptions{Proposals: props, InlineTree: true}, nil
	})
	if err != nil {
		return err
	}
	var msgs []proto.OutgoingDeviceMessage
	for _, kp := range targets {
		sealed, err := sealRoomName(r.group, r.Name)
		if err != nil {
			return err
		}
		body, err := json.Marshal(welcomeBody{Room: r.ID, SealedName: sealed, CommitSeq: seq, KeyPackage: keyPackageName(kp.KeyPackage), Welcome: out.Welcome})
		if err != nil {
			return err
		}
		msgs = append(msgs, proto.OutgoingDeviceMessage{UserID: user, DeviceID: kp.DeviceID, Kind: proto.KindMLSWelcome, Body: body})
	}
	if err := s.sendToDevices(ctx, msgs); err != nil {
		return fmt.Errorf("deliver welcome to %s: %w", user, err)
	}
	if len(refusals) > 0 {
		return fmt.Errorf("added %d device(s) of %s, refused: %w", len(targets), user, errors.Join(refusals...))
	}
	return nil
}

// checkKeyPackage verifies that a claimed KeyPackage's credential is a
// device credential of user and device, under the identity key pinned for
// user (pinning it on first use). The MLS layer validates it again.
func (s *Session) checkKeyPackage(kp []byte, user, device string) error {
	cred, sigKey, err := mls.KeyPackageCredential(kp)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadCredential, err)
	}
	dc, err := parseDeviceCredential(&cred)
	if err != nil {
		return err
	}
	if dc.UserID != user || dc.DeviceID != device {
		return fmt.Errorf("%w: key package of %s/%s names %s/%s", ErrBadCredential, user, device, dc.UserID, dc.DeviceID)
	}
	return s.validateCredential(&cred, sigKey)
}

// policyChange returns the GroupContextExtensions proposal that lists user
// in the group's room policy (add) or drops the user from it, or nil if the
// group has no policy or needs no change. A listed user's role follows the
// user's server role, as the homeserver reports it in the room's members.
func (s *Session) policyChange(ctx context.Context, roomID string, g *mls.Group, user string, add bool) (*mls.Proposal, error) {
	pol, err := policy.FromExtensions(g.Extensions())
	if errors.Is(err, policy.ErrNoPolicy) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("room policy of %s: %w", roomID, err)
	}
	_, listed := pol.RoleOf(user)
	var next *policy.RoomPolicy
	switch {
	case add && !listed:
		role, err := s.policyRole(ctx, roomID, user)
		if err != nil {
			return nil, err
		}
		next = pol.WithParticipant(user, role)
	case !add && listed:
		next = pol.WithoutParticipant(user)
	default:
		return nil, nil
	}
	exts, err := next.ReplaceIn(g.Extensions())
	if err != nil {
		return nil, fmt.Errorf("room policy of %s: %w", roomID, err)
	}
	return mls.GroupContextExtensionsProposal(exts), nil
}

// policyRole maps user's server role, from the room's member list on the
// homeserver, to a role of policy.StandardRoles.
func (s *Session) policyRole(ctx context.Context, roomID, user string) (uint8, error) {
	rooms, err := s.api.Rooms(ctx)
	if err != nil {
		return 0, fmt.Errorf("members of %s: %w", roomID, err)
	}
	for _, rm := range rooms {
		if rm.RoomID != roomID {
			continue
		}
		for _, m := range rm.Members {
			if m.UserID != user {
				continue
			}
			switch m.Role {
			case proto.RoleBot:
				return policy.RoleBot, nil
			case proto.RoleDoctor:
				return policy.RoleDoctor, nil
			case proto.RoleNurse:
				return policy.RoleNurse, nil
			default:
				return policy.RolePatient, nil
			}
		}
	}
	return 0, fmt.Errorf("%s is not listed as a member of %s on the homeserver", user, roomID)
}

// Remove removes every device of user from the room's group (a commit with
// Removes) and then the user's membership on the homeserver.
func (s *Session) Remove(ctx context.Context, roomID, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.liveRoom(roomID)
	if err != nil {
		return err
	}
	_, _, err = s.commit(ctx, r, func(g *mls.Group) (*mls.CommitOptions, error) {
		var removes []*mls.Proposal
		for _, m := range g.Members() {
			if dc, err := parseDeviceCredential(&m.Credential); err == nil && dc.UserID == user {
				removes = append(removes, mls.RemoveProposal(m.LeafIndex))
			}
		}
		if len(removes) == 0 {
			return nil, fmt.Errorf("%s is not a member of the group of %s", user, roomID)
		}
		change, err := s.policyChange(ctx, roomID, g, user, false)
		if err != nil {
			return nil, err
		}
		if change != nil {
			removes = append(removes, change)
		}
		return &mls.CommitOptions{Proposals: removes}, nil
	})
	if err != nil {
		return err
	}
	if err := s.api.Remove(ctx, roomID, user); err != nil && !api.IsCode(err, proto.ErrNotFound) {
		return fmt.Errorf("remove %s on the homeserver: %w", user, err)
	}
	return nil
}

// SelfUpdate commits a fresh UpdatePath for this device (post-compromise
// security: keys a thief may have copied stop working).
func (s *Session) SelfUpdate(ctx context.Context, roomID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.liveRoom(roomID)
	if err != nil {
		return err
	}
	_, _, err = s.commit(ctx, r, func(*mls.Group) (*mls.CommitOptions, error) {
		return &mls.CommitOptions{ForcePath: true}, nil
	})
	return err
}

// UpdateStaleKeys refreshes this device's keys, by a self-update commit, in
// every room where they are older than Config.KeyUpdateInterval, and
// returns those rooms. Follow calls it while it runs.
func (s *Session) UpdateStaleKeys(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	interval := s.cfg.KeyUpdateInterval
	if interval <= 0 {
		interval = DefaultKeyUpdateInterval
	}
	var updated []string
	for _, r := range s.rooms {
		if r.Left || r.group == nil || s.now().Sub(r.KeysUpdated) < interval {
			continue
		}
		_, _, err := s.commit(ctx, r, func(*mls.Group) (*mls.CommitOptions, error) {
			return &mls.CommitOptions{ForcePath: true}, nil
		})
		if err != nil {
			return updated, fmt.Errorf("update keys in %s: %w", r.ID, err)
		}
		updated = append(updated, r.ID)
	}
	slices.Sort(updated)
	return updated, nil
}

// commit builds a commit with build, submits it to the hub and merges it.
// If another commit won the epoch, it processes the room's log up to the
// winner and rebuilds. It returns the commit output and its sequence number.
func (s *Session) commit(ctx context.Context, r *room, build func(*mls.Group) (*mls.CommitOptions, error)) (*mls.CommitOutput, int64, error) {
	for attempt := 0; attempt < maxCommitAttempts; attempt++ {
		opts, err := build(r.group)
		if err != nil {
			return nil, 0, err
		}
		epoch := r.group.Epoch()
		out, err := r.group.Commit(opts)
		if err != nil {
			return nil, 0, fmt.Errorf("commit in %s: %w", r.ID, err)
		}
		resp, err := s.sendInEpoch(ctx, r.ID, proto.KindMLSCommit, epoch, out.Commit)
		if api.IsCode(err, proto.ErrStaleEpoch) {
			r.group.DiscardPendingCommit()
			s.log.Info("commit lost the race for its epoch; catching up", "room", r.ID, "epoch", epoch)
			if err := s.catchUp(ctx, r); err != nil {
				return nil, 0, err
			}
			continue
		}
		if err != nil {
			r.group.DiscardPendingCommit()
			return nil, 0, fmt.Errorf("submit commit to %s: %w", r.ID, err)
		}
		// Messages sequenced before the commit were made in the old
		// epoch: process them before its keys go.
		if err := s.catchUpTo(ctx, r, resp.Seq-1); err != nil {
			return nil, 0, err
		}
		if err := r.group.MergePendingCommit(); err != nil {
			return nil, 0, fmt.Errorf("merge own commit in %s: %w", r.ID, err)
		}
		r.Applied, r.dirty = resp.Seq, true
		r.KeysUpdated = s.now() // every commit of this client carries an UpdatePath (RFC 9420 §12.4)
		s.record(Message{Room: r.ID, Seq: resp.Seq, Sender: s.prof.UserID, SenderDevice: s.prof.DeviceID, Time: s.now(), Type: TypeGroup,
			Notice: fmt.Sprintf("group changed to epoch %d", r.group.Epoch())})
		if err := s.flush(ctx); err != nil {
			return nil, 0, err
		}
		return out, resp.Seq, nil
	}
	return nil, 0, fmt.Errorf("commit in %s: lost the race %d times", r.ID, maxCommitAttempts)
}

// sendInEpoch posts an MLS message, retrying transport failures with the
// same transaction id so that a message is never stored twice.
func (s *Session) sendInEpoch(ctx context.Context, roomID, kind string, epoch uint64, body []byte) (proto.SendResponse, error) {
	txn := newTxnID()
	var err error
	for attempt := range 4 {
		var resp proto.SendResponse
		resp, err = s.api.SendInEpoch(ctx, roomID, txn, kind, epoch, body)
		var apiErr *api.Error
		if err == nil || errors.As(err, &apiErr) || ctx.Err() != nil {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, ctx.Err()
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
	return proto.SendResponse{}, err
}

// maxDeviceBatchBytes bounds the bodies of one send-to-device request, well
// under the homeserver's request limit.
const maxDeviceBatchBytes = 512 << 10

// sendToDevices sends device messages in requests of bounded size.
func (s *Session) sendToDevices(ctx context.Context, msgs []proto.OutgoingDeviceMessage) error {
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && (n == 0 || size+len(msgs[n].Body) <= maxDeviceBatchBytes) {
			size += len(msgs[n].Body)
			n++
		}
		if err := s.api.SendToDevice(ctx, newTxnID(), msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

// roomNameLabel is the MLS exporter label of the key that seals a room's
// name in a Welcome's device message.
const roomNameLabel = "medicus room name"

func roomNameAEAD(g *mls.Group) (cipher.AEAD, error) {
	key, err := g.Export(roomNameLabel, nil, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.NewX(key)
}

// sealRoomName encrypts name under a key of the group's current epoch.
func sealRoomName(g *mls.Group, name string) ([]byte, error) {
	if name == "" {
		return nil, nil
	}
	aead, err := roomNameAEAD(g)
	if err != nil {
		return nil, fmt.Errorf("seal room name: %w", err)
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(name)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(name), nil), nil
}

// openRoomName decrypts a name sealed by sealRoomName in the same epoch.
func openRoomName(g *mls.Group, sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	aead, err := roomNameAEAD(g)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", errors.New("sealed room name too short")
	}
	name, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
	if err != nil {
		return "", errors.New("sealed room name does not open")
	}
	return string(name), nil
}
