package call

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// EventType names a call signalling event, as in the Matrix VoIP module.
type EventType string

// The call signalling events (Matrix client-server API, "Voice over IP";
// MSC2746 added select_answer, reject, negotiate and party_id).
const (
	TypeInvite       EventType = "m.call.invite"
	TypeCandidates   EventType = "m.call.candidates"
	TypeAnswer       EventType = "m.call.answer"
	TypeSelectAnswer EventType = "m.call.select_answer"
	TypeReject       EventType = "m.call.reject"
	TypeNegotiate    EventType = "m.call.negotiate"
	TypeHangup       EventType = "m.call.hangup"
)

// ProtocolVersion is the VoIP version this package speaks and sends.
const ProtocolVersion = "1"

// Limits of the decoder. An event that exceeds one is refused with
// ErrInvalidEvent before any of it is used.
const (
	// MaxEventSize is the largest encoded event body accepted, the same
	// bound the client's content format puts on a call message.
	MaxEventSize = 64 << 10
	// MaxSDPSize is the largest session description accepted.
	MaxSDPSize = 48 << 10
	// MaxCandidates is the largest number of candidates in one
	// m.call.candidates event.
	MaxCandidates = 64
	// MaxCandidateSize is the longest candidate attribute line accepted.
	MaxCandidateSize = 1024
	// MaxLifetimeMillis bounds the lifetime of an invite or negotiate: one hour.
	MaxLifetimeMillis = 3_600_000
	maxIDLength       = 255
	maxUserIDLength   = 255
	maxMidLength      = 64
	maxVersionLength  = 16
)

// Errors of the decoder, checked with errors.Is.
var (
	// ErrInvalidEvent is wrapped by every error for a malformed event.
	ErrInvalidEvent = errors.New("call: invalid event")
	// ErrUnknownEvent is returned for an event type this package does not know.
	ErrUnknownEvent = errors.New("call: unknown event type")
	// ErrUnsupportedVersion is returned for a version 0 event: version 0 has
	// no party ids, select_answer or reject, which this package relies on.
	ErrUnsupportedVersion = errors.New("call: unsupported VoIP version 0")
)

// Header holds the fields every call event carries.
type Header struct {
	// CallID identifies the call: 1 to 255 characters of [0-9a-zA-Z._~-].
	CallID string `json:"call_id"`
	// PartyID identifies the sending party (one device's participation in
	// the call), with the same grammar as CallID.
	PartyID string `json:"party_id"`
	// Version is the VoIP version; this package sends "1".
	Version Version `json:"version"`
}

// Head returns h, so that every event exposes its header through Event.
func (h *Header) Head() *Header { return h }

// Version is the "version" field of a call event. The specification makes it
// a string but requires accepting the integer 0 (and treating any other value
// as "1"), so it decodes from a JSON string or a non-negative integer.
type Version string

// UnmarshalJSON accepts a short string or a small non-negative integer.
func (v *Version) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Version(s)
		return nil
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return fmt.Errorf("version must be a string or a small integer")
	}
	*v = Version(strconv.FormatUint(n, 10))
	return nil
}

// SessionDescription is an RTCSessionDescriptionInit: an SDP offer or answer.
type SessionDescription struct {
	// Type is "offer" or "answer".
	Type string `json:"type"`
	// SDP is the session description text (RFC 8866).
	SDP string `json:"sdp"`
}

// Candidate is one trickled ICE candidate (RFC 8838). A candidate whose
// Candidate is empty marks the end of the sender's candidates.
type Candidate struct {
	// Candidate is the candidate attribute line ("candidate:...").
	Candidate string `json:"candidate"`
	// SDPMid is the media stream identification the candidate belongs to.
	SDPMid string `json:"sdpMid"`
	// SDPMLineIndex is the index of the m= line the candidate belongs to.
	SDPMLineIndex uint16 `json:"sdpMLineIndex"`
}

// Reason says why a call ended. The first seven are the hangup reasons of
// the specification and travel in m.call.hangup; the others are local
// outcomes that are never sent.
type Reason string

// Hangup reasons (m.call.hangup "reason").
const (
	// ReasonICEFailed: no media connection could be established.
	ReasonICEFailed Reason = "ice_failed"
	// ReasonICETimeout: the connection failed after media had flowed.
	ReasonICETimeout Reason = "ice_timeout"
	// ReasonInviteTimeout: the callee did not answer within the invite's lifetime.
	ReasonInviteTimeout Reason = "invite_timeout"
	// ReasonUserHangup: a user ended the call.
	ReasonUserHangup Reason = "user_hangup"
	// ReasonUserMediaFailed: a party could not capture or send its media.
	ReasonUserMediaFailed Reason = "user_media_failed"
	// ReasonUserBusy: the callee is busy in another call.
	ReasonUserBusy Reason = "user_busy"
	// ReasonUnknownError: any other failure that ended the call.
	ReasonUnknownError Reason = "unknown_error"
)

// Local outcomes, never sent in a hangup.
const (
	// ReasonRejected: the callee rejected the call (m.call.reject).
	ReasonRejected Reason = "rejected"
	// ReasonAnsweredElsewhere: another device of the callee answered or
	// rejected the call (the caller selected another party).
	ReasonAnsweredElsewhere Reason = "answered_elsewhere"
	// ReasonReplaced: the call lost a glare race to the call with the lower
	// call id, which replaced it.
	ReasonReplaced Reason = "replaced"
)

// Sendable reports whether r is one of the hangup reasons of the
// specification, which may travel in m.call.hangup.
func (r Reason) Sendable() bool {
	switch r {
	case ReasonICEFailed, ReasonICETimeout, ReasonInviteTimeout, ReasonUserHangup,
		ReasonUserMediaFailed, ReasonUserBusy, ReasonUnknownError:
		return true
	}
	return false
}

// Event is one call signalling event: *Invite, *Candidates, *Answer,
// *SelectAnswer, *Reject, *Negotiate or *Hangup.
type Event interface {
	// Type returns the event's type.
	Type() EventType
	// Head returns the event's common fields.
	Head() *Header
	validate() error
}

// Invite offers a call (m.call.invite).
type Invite struct {
	Header
	// Lifetime is how long the invite is valid, in milliseconds.
	Lifetime int64 `json:"lifetime"`
	// Offer is the caller's SDP offer.
	Offer SessionDescription `json:"offer"`
	// Invitee is the user the call is for; empty means any other member.
	Invitee string `json:"invitee,omitempty"`
}

// Candidates carries a batch of trickled ICE candidates (m.call.candidates).
type Candidates struct {
	Header
	// Candidates are the batch, in gathering order.
	Candidates []Candidate `json:"candidates"`
}

// Answer accepts a call from one of the callee's devices (m.call.answer).
type Answer struct {
	Header
	// Answer is the callee's SDP answer.
	Answer SessionDescription `json:"answer"`
}

// SelectAnswer tells all the callee's devices which answer (or reject) the
// caller chose (m.call.select_answer); the others stop ringing.
type SelectAnswer struct {
	Header
	// SelectedPartyID is the party id of the chosen answer or reject.
	SelectedPartyID string `json:"selected_party_id"`
}

// Reject declines a call on all of the callee's devices (m.call.reject).
type Reject struct {
	Header
}

// Negotiate carries a renegotiation offer or answer during a call
// (m.call.negotiate), following WebRTC perfect negotiation.
type Negotiate struct {
	Header
	// Lifetime is how long the offer is valid, in milliseconds.
	Lifetime int64 `json:"lifetime"`
	// Description is the SDP offer or answer.
	Description SessionDescription `json:"description"`
}

// Hangup ends a call (m.call.hangup).
type Hangup struct {
	Header
	// Reason is one of the sendable reasons; absent means user_hangup.
	Reason Reason `json:"reason,omitempty"`
}

// Type returns TypeInvite.
func (*Invite) Type() EventType { return TypeInvite }

// Type returns TypeCandidates.
func (*Candidates) Type() EventType { return TypeCandidates }

// Type returns TypeAnswer.
func (*Answer) Type() EventType { return TypeAnswer }

// Type returns TypeSelectAnswer.
func (*SelectAnswer) Type() EventType { return TypeSelectAnswer }

// Type returns TypeReject.
func (*Reject) Type() EventType { return TypeReject }

// Type returns TypeNegotiate.
func (*Negotiate) Type() EventType { return TypeNegotiate }

// Type returns TypeHangup.
func (*Hangup) Type() EventType { return TypeHangup }

func newEvent(t EventType) Event {
	switch t {
	case TypeInvite:
		return new(Invite)
	case TypeCandidates:
		return new(Candidates)
	case TypeAnswer:
		return new(Answer)
	case TypeSelectAnswer:
		return new(SelectAnswer)
	case TypeReject:
		return new(Reject)
	case TypeNegotiate:
		return new(Negotiate)
	case TypeHangup:
		return new(Hangup)
	}
	return nil
}

// Marshal validates ev and returns its type and JSON body. It fails with
// ErrInvalidEvent if ev would not pass Unmarshal.
func Marshal(ev Event) (EventType, []byte, error) {
	if ev == nil {
		return "", nil, fmt.Errorf("%w: nil event", ErrInvalidEvent)
	}
	if err := ev.validate(); err != nil {
		return "", nil, err
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s: %w", ev.Type(), err)
	}
	if len(b) > MaxEventSize {
		return "", nil, invalid(ev.Type(), "event", fmt.Sprintf("%d bytes, more than %d", len(b), MaxEventSize))
	}
	return ev.Type(), b, nil
}

// Unmarshal decodes and validates the body of an event of type t. It is
// strict: at most MaxEventSize bytes, exactly one JSON object, no unknown or
// duplicated fields, every field within its bounds. Errors wrap
// ErrUnknownEvent, ErrUnsupportedVersion or ErrInvalidEvent; it never panics.
func Unmarshal(t EventType, body []byte) (Event, error) {
	ev := newEvent(t)
	if ev == nil {
		return nil, fmt.Errorf("%w: %.40q", ErrUnknownEvent, string(t))
	}
	if len(body) > MaxEventSize {
		return nil, invalid(t, "event", fmt.Sprintf("%d bytes, more than %d", len(body), MaxEventSize))
	}
	if err := checkNoDuplicateKeys(body); err != nil {
		return nil, invalid(t, "event", err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(ev); err != nil {
		return nil, invalid(t, "event", err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid(t, "event", "data after the JSON object")
	}
	if err := ev.validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

// checkNoDuplicateKeys refuses an object with a repeated key at any depth,
// which encoding/json would otherwise resolve silently (last one wins).
func checkNoDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // next token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			key, ok := tok.(string)
			if !ok {
				// A closing brace in key position.
				if d, ok := tok.(json.Delim); ok && d == '}' {
					stack = stack[:len(stack)-1]
					continue
				}
				return fmt.Errorf("malformed object")
			}
			if top.keys[key] {
				return fmt.Errorf("duplicate key %.40q", key)
			}
			top.keys[key] = true
			top.expect = false
			continue
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, expect: true})
				if len(stack) > 8 {
					return fmt.Errorf("nested too deeply")
				}
			case '[':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{})
				if len(stack) > 8 {
					return fmt.Errorf("nested too deeply")
				}
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top != nil && top.object {
			top.expect = true
		}
	}
}

func invalid(t EventType, field, why string) error {
	return fmt.Errorf("%w: %s %s: %s", ErrInvalidEvent, t, field, why)
}

// ValidID reports whether s is a valid call or party id: 1 to 255
// characters of [0-9a-zA-Z._~-] (Matrix "Grammar for VoIP IDs").
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z',
			c == '.', c == '_', c == '~', c == '-':
		default:
			return false
		}
	}
	return true
}

func (h *Header) check(t EventType) error {
	if !ValidID(h.CallID) {
		return invalid(t, "call_id", "must be 1 to 255 characters of [0-9a-zA-Z._~-]")
	}
	if !ValidID(h.PartyID) {
		return invalid(t, "party_id", "must be 1 to 255 characters of [0-9a-zA-Z._~-]")
	}
	switch {
	case h.Version == "":
		return invalid(t, "version", "missing")
	case h.Version == "0":
		return fmt.Errorf("%w (%s)", ErrUnsupportedVersion, t)
	case len(h.Version) > maxVersionLength || !ValidID(string(h.Version)):
		return invalid(t, "version", "must be a short version string")
	}
	return nil
}

func checkLifetime(t EventType, ms int64) error {
	if ms <= 0 || ms > MaxLifetimeMillis {
		return invalid(t, "lifetime", fmt.Sprintf("must be 1 to %d milliseconds", MaxLifetimeMillis))
	}
	return nil
}

func checkDescription(t EventType, field string, d SessionDescription, types ...string) error {
	ok := false
	for _, want := range types {
		ok = ok || d.Type == want
	}
	if !ok {
		return invalid(t, field+".type", "must be "+strings.Join(types, " or "))
	}
	if d.SDP == "" || len(d.SDP) > MaxSDPSize {
		return invalid(t, field+".sdp", fmt.Sprintf("must be 1 to %d bytes", MaxSDPSize))
	}
	if !strings.HasPrefix(d.SDP, "v=0") {
		return invalid(t, field+".sdp", "is not a session description (no v=0)")
	}
	if !printable(d.SDP, true) {
		return invalid(t, field+".sdp", "contains control characters or invalid UTF-8")
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters
// (line breaks allowed if lines is set).
func printable(s string, lines bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			if lines && (r == '\r' || r == '\n') {
				continue
			}
			return false
		}
	}
	return true
}

func (e *Invite) validate() error {
	if err := e.check(TypeInvite); err != nil {
		return err
	}
	if err := checkLifetime(TypeInvite, e.Lifetime); err != nil {
		return err
	}
	if len(e.Invitee) > maxUserIDLength || !printable(e.Invitee, false) {
		return invalid(TypeInvite, "invitee", "must be a user id")
	}
	return checkDescription(TypeInvite, "offer", e.Offer, "offer")
}

func (e *Candidates) validate() error {
	if err := e.check(TypeCandidates); err != nil {
		return err
	}
	if len(e.Candidates) == 0 || len(e.Candidates) > MaxCandidates {
		return invalid(TypeCandidates, "candidates", fmt.Sprintf("must hold 1 to %d candidates", MaxCandidates))
	}
	for i, c := range e.Candidates {
		field := fmt.Sprintf("candidates[%d]", i)
		if len(c.Candidate) > MaxCandidateSize || !printable(c.Candidate, false) {
			return invalid(TypeCandidates, field+".candidate", "must be one printable line")
		}
		if c.Candidate != "" && !strings.HasPrefix(c.Candidate, "candidate:") {
			return invalid(TypeCandidates, field+".candidate", `must start with "candidate:"`)
		}
		if len(c.SDPMid) > maxMidLength || !printable(c.SDPMid, false) {
			return invalid(TypeCandidates, field+".sdpMid", "must be a short printable token")
		}
		if c.SDPMLineIndex > 1023 {
			return invalid(TypeCandidates, field+".sdpMLineIndex", "must be at most 1023")
		}
	}
	return nil
}

func (e *Answer) validate() error {
	if err := e.check(TypeAnswer); err != nil {
		return err
	}
	return checkDescription(TypeAnswer, "answer", e.Answer, "answer")
}

func (e *SelectAnswer) validate() error {
	if err := e.check(TypeSelectAnswer); err != nil {
		return err
	}
	if !ValidID(e.SelectedPartyID) {
		return invalid(TypeSelectAnswer, "selected_party_id", "must be 1 to 255 characters of [0-9a-zA-Z._~-]")
	}
	return nil
}

func (e *Reject) validate() error { return e.check(TypeReject) }

func (e *Negotiate) validate() error {
	if err := e.check(TypeNegotiate); err != nil {
		return err
	}
	if err := checkLifetime(TypeNegotiate, e.Lifetime); err != nil {
		return err
	}
	return checkDescription(TypeNegotiate, "description", e.Description, "offer", "answer")
}

func (e *Hangup) validate() error {
	if err := e.check(TypeHangup); err != nil {
		return err
	}
	if e.Reason == "" {
		// A missing reason means user_hangup (Matrix spec, m.call.hangup).
		e.Reason = ReasonUserHangup
	}
	if !e.Reason.Sendable() {
		return invalid(TypeHangup, "reason", "must be one of the hangup reasons")
	}
	return nil
}
