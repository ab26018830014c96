// Package policy defines a medicus room's roles and capabilities as a
// GroupContext extension of the room's MLS group, and checks, as the room's
// hub can without any group secret, whether a PublicMessage commit is
// allowed by that policy.
//
// The model is IETF draft-ietf-mimi-room-policy (role-based access
// control): the policy lists roles, each with capabilities, and the room's
// participants (users, not devices), each with exactly one role. Every
// member leaf of the group must belong to a participant. A commit is
// allowed when every proposal in it is authorized by the role of whoever
// proposed it: adding another user's client needs AddParticipant (and the
// added user must be put in the participant list with a role the adder may
// give), removing another user's client RemoveParticipant, changing roles,
// other participants' roles or any other GroupContext extension
// UpdatePolicy, and a user's own clients AddOwnClient and RemoveOwnClient.
// StandardRoles gives the medicus roles: moderator (everything), doctor
// and nurse (their own devices), patient (its own devices; it may not add
// anyone) and bot (nothing: a bot may not add or remove).
//
// Encoding (TLS presentation language, RFC 9420 §2.1), extension type
// ExtensionType in the private-use range of RFC 9420 §17.3:
//
//	enum { add_participant(1), remove_participant(2), update_policy(3),
//	       add_own_client(4), remove_own_client(5), (65535) } Capability;
//	struct {
//	  uint8 index;                  /* 1..255, ascending */
//	  opaque name<V>;               /* 1..32 of [a-z0-9_-], unique */
//	  Capability capabilities<V>;   /* known values, ascending */
//	  uint8 addable_roles<V>;       /* defined roles, ascending */
//	} Role;
//	struct {
//	  opaque user_id<V>;            /* 1..255 printable ASCII bytes */
//	  uint8 role;                   /* a defined role */
//	} Participant;
//	struct {
//	  uint8 version = 1;
//	  Role roles<V>;                /* 1..32 */
//	  Participant participants<V>;  /* at most 10,000, ascending by user_id */
//	} RoomPolicy;
//
// Decoding is strict: exactly one canonical encoding per policy, so equal
// policies have equal bytes.
package policy

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// ExtensionType is the GroupContext extension type of the room policy, in
// the private-use range 0xF000–0xFFFF of RFC 9420 §17.3. Every member's
// KeyPackage must list it in its capabilities (mls.KeyPackageOptions
// Extensions) for a group carrying it to accept the member (§12.1.1).
const ExtensionType uint16 = 0xF0A1

// Limits of the encoding.
const (
	version         = 1
	MaxRoles        = 32
	MaxParticipants = 10000
	MaxNameLen      = 32
	MaxUserIDLen    = 255
	// MaxEncodedSize bounds an encoded policy.
	MaxEncodedSize = 1 << 20
)

// Errors callers distinguish with errors.Is.
var (
	// ErrMalformed means an encoded policy could not be decoded or breaks
	// the rules of the encoding.
	ErrMalformed = errors.New("room policy: malformed")
	// ErrNoPolicy means the group has no room policy extension.
	ErrNoPolicy = errors.New("room policy: group has no room policy")
	// ErrForbidden means a commit or proposal is not allowed by the policy.
	ErrForbidden = errors.New("room policy: forbidden")
)

// Capability is something a role allows (draft-ietf-mimi-room-policy §8).
type Capability uint16

// Capabilities.
const (
	// AddParticipant allows adding clients of other users, including users
	// not yet in the participant list (with a role from the adder's
	// AddableRoles), and listing such users.
	AddParticipant Capability = 1
	// RemoveParticipant allows removing other users' clients and removing
	// users from the participant list.
	RemoveParticipant Capability = 2
	// UpdatePolicy allows changing roles, participants' roles and any other
	// GroupContext extension, and reinitializing the group.
	UpdatePolicy Capability = 3
	// AddOwnClient allows adding a client of one's own user (by Add or by
	// external commit).
	AddOwnClient Capability = 4
	// RemoveOwnClient allows proposing the removal of one's own clients.
	RemoveOwnClient Capability = 5
)

var capabilityNames = map[Capability]string{
	AddParticipant: "add_participant", RemoveParticipant: "remove_participant", UpdatePolicy: "update_policy",
	AddOwnClient: "add_own_client", RemoveOwnClient: "remove_own_client",
}

// String returns the capability's name.
func (c Capability) String() string {
	if n, ok := capabilityNames[c]; ok {
		return n
	}
	return fmt.Sprintf("capability(%d)", uint16(c))
}

// The medicus roles of StandardRoles (DESIGN.md: roles doctor, nurse,
// patient, bot; only room moderators add and remove members).
const (
	RoleModerator uint8 = 1
	RoleDoctor    uint8 = 2
	RoleNurse     uint8 = 3
	RolePatient   uint8 = 4
	RoleBot       uint8 = 5
)

// Role is one role of the room.
type Role struct {
	Index        uint8
	Name         string
	Capabilities []Capability
	// AddableRoles are the roles a holder of AddParticipant may give to
	// the users it adds.
	AddableRoles []uint8
}

// Has reports whether the role has capability c.
func (r *Role) Has(c Capability) bool { return slices.Contains(r.Capabilities, c) }

// Participant is a user of the room and its role.
type Participant struct {
	UserID string
	Role   uint8
}

// RoomPolicy is the content of the room policy extension.
type RoomPolicy struct {
	Roles        []Role
	Participants []Participant
}

// StandardRoles returns the medicus roles: moderator (every capability, may
// add users as any role), doctor, nurse and patient (their own clients
// only), bot (no capability).
func StandardRoles() []Role {
	own := []Capability{AddOwnClient, RemoveOwnClient}
	return []Role{
		{Index: RoleModerator, Name: "moderator", Capabilities: []Capability{AddParticipant, RemoveParticipant, UpdatePolicy, AddOwnClient, RemoveOwnClient},
			AddableRoles: []uint8{RoleModerator, RoleDoctor, RoleNurse, RolePatient, RoleBot}},
		{Index: RoleDoctor, Name: "doctor", Capabilities: own},
		{Index: RoleNurse, Name: "nurse", Capabilities: own},
		{Index: RolePatient, Name: "patient", Capabilities: own},
		{Index: RoleBot, Name: "bot"},
	}
}

// New returns a policy with StandardRoles and the given participants
// (user id → role), validated.
func New(participants map[string]uint8) (*RoomPolicy, error) {
	p := &RoomPolicy{Roles: StandardRoles()}
	for u, r := range participants {
		p.Participants = append(p.Participants, Participant{UserID: u, Role: r})
	}
	p.sort()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *RoomPolicy) sort() {
	sort.Slice(p.Participants, func(i, j int) bool { return p.Participants[i].UserID < p.Participants[j].UserID })
}

// Role returns the role with index i.
func (p *RoomPolicy) Role(i uint8) (*Role, bool) {
	for k := range p.Roles {
		if p.Roles[k].Index == i {
			return &p.Roles[k], true
		}
	}
	return nil, false
}

// RoleOf returns the role of user, or false if the user is not a
// participant.
func (p *RoomPolicy) RoleOf(user string) (*Role, bool) {
	i, ok := slices.BinarySearchFunc(p.Participants, user, func(x Participant, u string) int { return strings.Compare(x.UserID, u) })
	if !ok {
		return nil, false
	}
	return p.Role(p.Participants[i].Role)
}

// WithParticipant returns a copy of p in which user has role (added or
// changed).
func (p *RoomPolicy) WithParticipant(user string, role uint8) *RoomPolicy {
	q := p.clone()
	q.Participants = slices.DeleteFunc(q.Participants, func(x Participant) bool { return x.UserID == user })
	q.Participants = append(q.Participants, Participant{UserID: user, Role: role})
	q.sort()
	return q
}

// WithoutParticipant returns a copy of p without user.
func (p *RoomPolicy) WithoutParticipant(user string) *RoomPolicy {
	q := p.clone()
	q.Participants = slices.DeleteFunc(q.Participants, func(x Participant) bool { return x.UserID == user })
	return q
}

func (p *RoomPolicy) clone() *RoomPolicy {
	q := &RoomPolicy{Participants: slices.Clone(p.Participants)}
	for _, r := range p.Roles {
		r.Capabilities, r.AddableRoles = slices.Clone(r.Capabilities), slices.Clone(r.AddableRoles)
		q.Roles = append(q.Roles, r)
	}
	return q
}

// Validate checks the rules of the encoding: role and participant counts,
// ascending unique indexes and user ids, known capabilities, roles that
// exist, and name and user id syntax.
func (p *RoomPolicy) Validate() error {
	if len(p.Roles) == 0 || len(p.Roles) > MaxRoles {
		return fmt.Errorf("%w: %d roles", ErrMalformed, len(p.Roles))
	}
	if len(p.Participants) > MaxParticipants {
		return fmt.Errorf("%w: %d participants", ErrMalformed, len(p.Participants))
	}
	names := map[string]bool{}
	for i, r := range p.Roles {
		if r.Index == 0 || (i > 0 && r.Index <= p.Roles[i-1].Index) {
			return fmt.Errorf("%w: role index %d not ascending or zero", ErrMalformed, r.Index)
		}
		if !validName(r.Name) || names[r.Name] {
			return fmt.Errorf("%w: role name %q", ErrMalformed, r.Name)
		}
		names[r.Name] = true
		for j, c := range r.Capabilities {
			if _, ok := capabilityNames[c]; !ok || (j > 0 && c <= r.Capabilities[j-1]) {
				return fmt.Errorf("%w: role %q: capability %d unknown or not ascending", ErrMalformed, r.Name, c)
			}
		}
		for j, a := range r.AddableRoles {
			if j > 0 && a <= r.AddableRoles[j-1] {
				return fmt.Errorf("%w: role %q: addable roles not ascending", ErrMalformed, r.Name)
			}
		}
	}
	for _, r := range p.Roles {
		for _, a := range r.AddableRoles {
			if _, ok := p.Role(a); !ok {
				return fmt.Errorf("%w: role %q: addable role %d undefined", ErrMalformed, r.Name, a)
			}
		}
	}
	for i, x := range p.Participants {
		if !validUserID(x.UserID) {
			return fmt.Errorf("%w: user id %q", ErrMalformed, x.UserID)
		}
		if i > 0 && x.UserID <= p.Participants[i-1].UserID {
			return fmt.Errorf("%w: participants not ascending and unique at %q", ErrMalformed, x.UserID)
		}
		if _, ok := p.Role(x.Role); !ok {
			return fmt.Errorf("%w: participant %q has undefined role %d", ErrMalformed, x.UserID, x.Role)
		}
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validUserID(s string) bool {
	if len(s) == 0 || len(s) > MaxUserIDLen {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// MarshalMLS encodes the policy; call Validate first (Marshal does).
func (p *RoomPolicy) MarshalMLS(w *codec.Writer) {
	w.WriteUint8(version)
	w.WriteVector(func(w *codec.Writer) {
		for _, r := range p.Roles {
			w.WriteUint8(r.Index)
			w.WriteOpaque([]byte(r.Name))
			w.WriteVector(func(w *codec.Writer) {
				for _, c := range r.Capabilities {
					w.WriteUint16(uint16(c))
				}
			})
			w.WriteOpaque(r.AddableRoles)
		}
	})
	w.WriteVector(func(w *codec.Writer) {
		for _, x := range p.Participants {
			w.WriteOpaque([]byte(x.UserID))
			w.WriteUint8(x.Role)
		}
	})
}

// UnmarshalMLS decodes one policy and validates it.
func (p *RoomPolicy) UnmarshalMLS(r *codec.Reader) error {
	v, err := r.ReadUint8()
	if err != nil {
		return err
	}
	if v != version {
		return fmt.Errorf("version %d", v)
	}
	*p = RoomPolicy{}
	err = r.ReadVector(func(r *codec.Reader) error {
		if len(p.Roles) == MaxRoles {
			return fmt.Errorf("more than %d roles", MaxRoles)
		}
		var role Role
		var err error
		if role.Index, err = r.ReadUint8(); err != nil {
			return err
		}
		name, err := r.ReadOpaque()
		if err != nil {
			return err
		}
		role.Name = string(name)
		err = r.ReadVector(func(r *codec.Reader) error {
			c, err := r.ReadUint16()
			role.Capabilities = append(role.Capabilities, Capability(c))
			return err
		})
		if err != nil {
			return err
		}
		if role.AddableRoles, err = r.ReadOpaque(); err != nil {
			return err
		}
		if len(role.AddableRoles) == 0 {
			role.AddableRoles = nil
		}
		p.Roles = append(p.Roles, role)
		return nil
	})
	if err != nil {
		return err
	}
	err = r.ReadVector(func(r *codec.Reader) error {
		if len(p.Participants) == MaxParticipants {
			return fmt.Errorf("more than %d participants", MaxParticipants)
		}
		id, err := r.ReadOpaque()
		if err != nil {
			return err
		}
		role, err := r.ReadUint8()
		p.Participants = append(p.Participants, Participant{UserID: string(id), Role: role})
		return err
	})
	if err != nil {
		return err
	}
	return p.Validate()
}

// Marshal validates and encodes the policy.
func (p *RoomPolicy) Marshal() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return codec.Marshal(p)
}

// Parse decodes an encoded policy strictly: the version, every length and
// every rule of Validate are checked, and no byte may follow. Errors wrap
// ErrMalformed.
func Parse(data []byte) (*RoomPolicy, error) {
	if len(data) > MaxEncodedSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(data))
	}
	var p RoomPolicy
	if err := codec.Unmarshal(data, &p); err != nil {
		if errors.Is(err, ErrMalformed) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &p, nil
}

// Extension returns the policy as a GroupContext extension, for
// mls.CreateGroup or mls.GroupContextExtensionsProposal.
func (p *RoomPolicy) Extension() (mls.Extension, error) {
	data, err := p.Marshal()
	if err != nil {
		return mls.Extension{}, err
	}
	return mls.Extension{ExtensionType: wire.ExtensionType(ExtensionType), ExtensionData: data}, nil
}

// FromExtensions finds and parses the room policy among GroupContext
// extensions; it returns ErrNoPolicy if there is none.
func FromExtensions(exts []mls.Extension) (*RoomPolicy, error) {
	data, ok := wire.FindExtension(exts, wire.ExtensionType(ExtensionType))
	if !ok {
		return nil, ErrNoPolicy
	}
	return Parse(data)
}

// ReplaceIn returns exts with the room policy extension replaced by (or,
// if absent, appended as) p's, leaving the other extensions in place.
func (p *RoomPolicy) ReplaceIn(exts []mls.Extension) ([]mls.Extension, error) {
	e, err := p.Extension()
	if err != nil {
		return nil, err
	}
	out := slices.Clone(exts)
	for i := range out {
		if uint16(out[i].ExtensionType) == ExtensionType {
			out[i] = e
			return out, nil
		}
	}
	return append(out, e), nil
}

// equalRoles reports whether two policies define the same roles.
func equalRoles(a, b *RoomPolicy) bool {
	var wa, wb codec.Writer
	(&RoomPolicy{Roles: a.Roles}).MarshalMLS(&wa)
	(&RoomPolicy{Roles: b.Roles}).MarshalMLS(&wb)
	ba, _ := wa.Bytes()
	bb, _ := wb.Bytes()
	return bytes.Equal(ba, bb)
}
