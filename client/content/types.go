package content

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text is a message of markdown text (CommonMark). Clients render it without
// raw HTML.
type Text struct {
	Markdown string `json:"md"`
}

// Type returns TypeText.
func (*Text) Type() Type { return TypeText }

func (b *Text) validate(*Message) error { return checkMarkdown("md", b.Markdown) }

// Reply is markdown text that answers another message; the envelope's
// InReplyTo names that message and is required.
type Reply struct {
	Markdown string `json:"md"`
}

// Type returns TypeReply.
func (*Reply) Type() Type { return TypeReply }

func (b *Reply) validate(m *Message) error {
	if m.InReplyTo == "" {
		return invalid("irt", "a reply needs the message it answers")
	}
	return checkMarkdown("md", b.Markdown)
}

// Reaction is a short reaction (usually one emoji) to the message named by
// the envelope's InReplyTo, which is required, as a MIMI reaction part is.
// A reaction is withdrawn by a Retraction of the reaction message.
type Reaction struct {
	Key string `json:"key"`
}

// MaxReactionSize bounds a reaction key in bytes.
const MaxReactionSize = 64

// Type returns TypeReaction.
func (*Reaction) Type() Type { return TypeReaction }

func (b *Reaction) validate(m *Message) error {
	if m.InReplyTo == "" {
		return invalid("irt", "a reaction needs the message it reacts to")
	}
	return checkLine("key", b.Key, MaxReactionSize, true)
}

// Edit replaces the text of an earlier message of the same sender (MIMI
// "replaces"). Receivers apply it only if the sender of the edit sent the
// replaced message, and show the newest edit.
type Edit struct {
	Replaces string `json:"replaces"`
	Markdown string `json:"md"`
}

// Type returns TypeEdit.
func (*Edit) Type() Type { return TypeEdit }

func (b *Edit) validate(m *Message) error {
	if !validID(b.Replaces) {
		return invalid("replaces", "must be a message id")
	}
	if b.Replaces == m.ID {
		return invalid("replaces", "a message cannot replace itself")
	}
	return checkMarkdown("md", b.Markdown)
}

// Retraction withdraws an earlier message of the same sender (MIMI
// "replaces" with a null part): receivers hide its content. The ciphertext
// remains on the servers; retraction is a courtesy, not erasure.
type Retraction struct {
	Replaces string `json:"replaces"`
}

// Type returns TypeRetraction.
func (*Retraction) Type() Type { return TypeRetraction }

func (b *Retraction) validate(m *Message) error {
	if !validID(b.Replaces) {
		return invalid("replaces", "must be a message id")
	}
	if b.Replaces == m.ID {
		return invalid("replaces", "a message cannot retract itself")
	}
	return nil
}

// Call carries one call signalling event of a teleconsult (package
// client/call defines the events and their bodies). Body is at most
// MaxCallBodySize bytes of JSON and is checked only for being JSON here.
type Call struct {
	// Event names the signalling event: 1 to 32 characters of [a-z0-9_.-].
	Event string `json:"event"`
	// Body is the event's JSON payload.
	Body json.RawMessage `json:"body,omitempty"`
}

// Type returns TypeCall.
func (*Call) Type() Type { return TypeCall }

func (b *Call) validate(*Message) error {
	if !validToken(b.Event, 32) {
		return invalid("event", "must be 1 to 32 characters of [a-z0-9_.-]")
	}
	if len(b.Body) > MaxCallBodySize {
		return tooLarge("body", len(b.Body), MaxCallBodySize)
	}
	if len(b.Body) > 0 && !json.Valid(b.Body) {
		return invalid("body", "not JSON")
	}
	return nil
}

// checkMarkdown checks a markdown text field: non-empty after trimming,
// at most MaxTextSize bytes, no control characters other than tab and line
// breaks.
func checkMarkdown(field, s string) error {
	if len(s) > MaxTextSize {
		return tooLarge(field, len(s), MaxTextSize)
	}
	if strings.TrimSpace(s) == "" {
		return invalid(field, "empty")
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return invalidf(field, "control character U+%04X", r)
		}
	}
	return nil
}

// checkLine checks a one-line string field: at most max bytes, no control
// characters, not blank when required.
func checkLine(field, s string, max int, required bool) error {
	if len(s) > max {
		return tooLarge(field, len(s), max)
	}
	if required && strings.TrimSpace(s) == "" {
		return invalid(field, "empty")
	}
	if !utf8.ValidString(s) {
		return invalid(field, "invalid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return invalidf(field, "control character U+%04X", r)
		}
	}
	return nil
}

// validToken reports whether s is 1 to max characters of [a-z0-9_.-].
func validToken(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validUserID reports whether s looks like a medicus user id,
// "@localpart:server.name", at most 255 bytes, without spaces or controls.
func validUserID(s string) bool {
	if len(s) < 4 || len(s) > 255 || s[0] != '@' {
		return false
	}
	colon := strings.IndexByte(s, ':')
	if colon < 2 || colon == len(s)-1 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func tooLarge(field string, n, limit int) error {
	return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, field, n, limit)
}
