package content

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Version is the content format version this package writes and reads.
const Version = 1

// Limits on encoded messages. They bound what Decode parses, whatever the
// sender claims.
const (
	// MaxMessageSize is the largest encoded message, in bytes.
	MaxMessageSize = 256 << 10
	// MaxDepth is the deepest nesting of JSON objects and arrays.
	MaxDepth = 32
	// MaxTextSize is the largest markdown text in a text, reply or edit.
	MaxTextSize = 32 << 10
	// MaxCallBodySize is the largest body of a call signalling message.
	MaxCallBodySize = 64 << 10
	// MaxFHIRSize is the largest FHIR resource carried in a message.
	MaxFHIRSize = 192 << 10
)

// Errors that callers distinguish with errors.Is. Every error returned by
// Decode and Encode wraps exactly one of them.
var (
	// ErrTooLarge means the message, or a field of it, exceeds a limit.
	ErrTooLarge = errors.New("content: too large")
	// ErrMalformed means the bytes are not one strict JSON object of the
	// expected shape (syntax, duplicate or unknown fields, wrong JSON types,
	// invalid UTF-8, trailing data, nesting deeper than MaxDepth).
	ErrMalformed = errors.New("content: malformed")
	// ErrUnsupportedVersion means the message is of a format version this
	// package does not implement; errors.As gives a *VersionError.
	ErrUnsupportedVersion = errors.New("content: unsupported format version")
	// ErrUnknownType means the message is of this format version but of a
	// type this package does not know; a client shows it as unsupported.
	ErrUnknownType = errors.New("content: unknown message type")
	// ErrInvalid means the message is well-formed JSON but breaks a rule of
	// its type (a missing required field, a value out of range, a FHIR
	// resource that is not valid R4).
	ErrInvalid = errors.New("content: invalid")
)

// VersionError reports a message of a format version this package does not
// implement. It wraps ErrUnsupportedVersion.
type VersionError struct {
	Got int // the version the message declares (0 when absent)
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("content: unsupported format version %d (this client reads version %d; update it to read this message)", e.Got, Version)
}

// Unwrap returns ErrUnsupportedVersion.
func (e *VersionError) Unwrap() error { return ErrUnsupportedVersion }

// Type names a message body type on the wire.
type Type string

// The message types of format version 1.
const (
	TypeText            Type = "text"
	TypeReply           Type = "reply"
	TypeReaction        Type = "reaction"
	TypeEdit            Type = "edit"
	TypeRetraction      Type = "retraction"
	TypeAttachment      Type = "attachment"
	TypeFHIR            Type = "fhir"
	TypeCall            Type = "call"
	TypeAlert           Type = "alert"
	TypeAlertAck        Type = "alert_ack"
	TypeConsentRequest  Type = "consent_request"
	TypeConsentResponse Type = "consent_response"
)

// Timestamp is a point in time as milliseconds since the Unix epoch (UTC),
// which is how every time in this format is encoded.
type Timestamp int64

// At returns the Timestamp of t, truncated to the millisecond. The zero
// time.Time gives 0, which optional time fields omit and required ones
// refuse.
func At(t time.Time) Timestamp {
	if t.IsZero() {
		return 0
	}
	return Timestamp(t.UnixMilli())
}

// Time returns the Timestamp as a time.Time in UTC.
func (t Timestamp) Time() time.Time { return time.UnixMilli(int64(t)).UTC() }

// Bounds of timestamps: 2000-01-01 to 2200-01-01. Anything outside is a bug
// or an attack, never a clinical time.
const (
	minTimestamp Timestamp = 946684800000
	maxTimestamp Timestamp = 7258118400000
)

func (t Timestamp) valid() bool { return t >= minTimestamp && t < maxTimestamp }

// Body is the typed payload of a Message: one of *Text, *Reply, *Reaction,
// *Edit, *Retraction, *Attachment, *FHIR, *Call, *Alert, *AlertAck,
// *ConsentRequest or *ConsentResponse.
type Body interface {
	// Type returns the wire type of the body.
	Type() Type
	// validate checks the body's rules; m is the enclosing message.
	validate(m *Message) error
}

// Message is one content message: the envelope and its body.
type Message struct {
	// Version is the format version; Encode writes Version when it is 0.
	Version int
	// ID identifies the message within its room: 16 to 64 characters of
	// [A-Za-z0-9_-]. NewID makes one; New sets it.
	ID string
	// Time is when the sender created the message (sender's clock).
	Time Timestamp
	// InReplyTo is the ID of the message this one answers or refers to.
	// It is required for replies and reactions and optional otherwise.
	InReplyTo string
	// Body is the typed payload. Its Type is written as the message type.
	Body Body
}

// wireMessage is the JSON form of a Message.
type wireMessage struct {
	V         int             `json:"v"`
	ID        string          `json:"id"`
	Type      Type            `json:"type"`
	TS        Timestamp       `json:"ts"`
	InReplyTo string          `json:"irt,omitempty"`
	Body      json.RawMessage `json:"body"`
}

// NewID returns a fresh random message id: 128 random bits as 22 characters
// of unpadded base64url.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// New returns a message of the current version with a fresh id, the current
// time and the given body.
func New(body Body) *Message {
	return &Message{Version: Version, ID: NewID(), Time: At(time.Now()), Body: body}
}

// Encode validates m and returns its compact JSON encoding. It fails with
// ErrInvalid (or ErrTooLarge) for a message that Decode would refuse.
func Encode(m *Message) ([]byte, error) {
	if m == nil || m.Body == nil {
		return nil, invalid("body", "missing")
	}
	v := m.Version
	if v == 0 {
		v = Version
	}
	if v != Version {
		return nil, &VersionError{Got: v}
	}
	mm := *m
	mm.Version = v
	if err := mm.validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(m.Body)
	if err != nil {
		return nil, fmt.Errorf("content: encode %s body: %w", m.Body.Type(), err)
	}
	out, err := json.Marshal(wireMessage{V: v, ID: m.ID, Type: m.Body.Type(), TS: m.Time, InReplyTo: m.InReplyTo, Body: body})
	if err != nil {
		return nil, fmt.Errorf("content: encode message: %w", err)
	}
	if len(out) > MaxMessageSize {
		return nil, fmt.Errorf("%w: message is %d bytes, limit %d", ErrTooLarge, len(out), MaxMessageSize)
	}
	return out, nil
}

// Decode parses and validates one encoded message. Errors wrap ErrTooLarge,
// ErrMalformed, ErrUnsupportedVersion (as a *VersionError), ErrUnknownType
// or ErrInvalid; none of them echo message content.
func Decode(b []byte) (*Message, error) {
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: message is %d bytes, limit %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	if err := checkStrictJSON(b, MaxDepth); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// The version decides how to read everything else, so it is read first
	// and alone: a future version may change any other field.
	var probe struct {
		V json.RawMessage `json:"v"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var v int
	if probe.V == nil {
		return nil, &VersionError{Got: 0}
	}
	if err := json.Unmarshal(probe.V, &v); err != nil {
		return nil, fmt.Errorf("%w: field v is not an integer", ErrMalformed)
	}
	if v != Version {
		return nil, &VersionError{Got: v}
	}
	var w wireMessage
	if err := strictUnmarshal(b, &w); err != nil {
		return nil, err
	}
	if w.Body == nil {
		return nil, invalid("body", "missing")
	}
	newBody, ok := bodyTypes[w.Type]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, truncate(string(w.Type), 32))
	}
	body := newBody()
	if err := strictUnmarshal(w.Body, body); err != nil {
		return nil, fmt.Errorf("%s body: %w", w.Type, err)
	}
	m := &Message{Version: w.V, ID: w.ID, Time: w.TS, InReplyTo: w.InReplyTo, Body: body}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

var bodyTypes = map[Type]func() Body{
	TypeText:            func() Body { return new(Text) },
	TypeReply:           func() Body { return new(Reply) },
	TypeReaction:        func() Body { return new(Reaction) },
	TypeEdit:            func() Body { return new(Edit) },
	TypeRetraction:      func() Body { return new(Retraction) },
	TypeAttachment:      func() Body { return new(Attachment) },
	TypeFHIR:            func() Body { return new(FHIR) },
	TypeCall:            func() Body { return new(Call) },
	TypeAlert:           func() Body { return new(Alert) },
	TypeAlertAck:        func() Body { return new(AlertAck) },
	TypeConsentRequest:  func() Body { return new(ConsentRequest) },
	TypeConsentResponse: func() Body { return new(ConsentResponse) },
}

func (m *Message) validate() error {
	if !validID(m.ID) {
		return invalid("id", "must be 16 to 64 characters of [A-Za-z0-9_-]")
	}
	if !m.Time.valid() {
		return invalid("ts", "out of range")
	}
	if m.InReplyTo != "" && !validID(m.InReplyTo) {
		return invalid("irt", "must be a message id")
	}
	if m.InReplyTo == m.ID {
		return invalid("irt", "a message cannot refer to itself")
	}
	if err := m.Body.validate(m); err != nil {
		return fmt.Errorf("%s: %w", m.Body.Type(), err)
	}
	return nil
}

// strictUnmarshal decodes one JSON value into v, refusing unknown fields and
// trailing data. Type mismatches are ErrMalformed.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var ve *validationError
		if errors.As(err, &ve) {
			return ve
		}
		return fmt.Errorf("%w: %v", ErrMalformed, sanitize(err))
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data", ErrMalformed)
	}
	return nil
}

// sanitize keeps decoder errors short and free of message content: Go's
// messages name fields and types, not values, but may quote an unknown
// field name, which comes from the peer.
func sanitize(err error) string {
	return truncate(err.Error(), 160)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// validationError is an ErrInvalid with the path of the offending field.
type validationError struct {
	field, reason string
}

func (e *validationError) Error() string {
	return fmt.Sprintf("content: invalid %s: %s", e.field, e.reason)
}

func (e *validationError) Unwrap() error { return ErrInvalid }

func invalid(field, reason string) error { return &validationError{field, reason} }

func invalidf(field, format string, args ...any) error {
	return &validationError{field, fmt.Sprintf(format, args...)}
}

func validID(s string) bool {
	return len(s) >= 16 && len(s) <= 64 && urlSafe(s)
}

// urlSafe reports whether s consists of base64url characters [A-Za-z0-9_-].
func urlSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
