// Package hl7 receives HL7 version 2 laboratory and monitoring results:
// a bounded parser for ER7 ("pipe and hat") messages, the ORU^R01 structure
// with the mapping of its OBX segments to the sepsis bot's variables, and an
// MLLP listener that answers every message with an ACK or a NAK.
//
// Most German laboratory and patient-monitoring systems send results as
// ORU^R01 over MLLP. The parser takes the field, component, repetition,
// escape and subcomponent separators from MSH-1 and MSH-2 (HL7 v2.5 §2.5.4),
// decodes escape sequences (§2.7), and bounds the message size, the number
// of segments and the number of fields. OBX segments are mapped by their
// LOINC code (OBX-3 with coding system "LN") and units (OBX-6) through
// package fhirobs, so FHIR and HL7 v2 values pass the same unit checks.
package hl7

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits of the parser.
const (
	// MaxMessageBytes bounds one message.
	MaxMessageBytes = 1 << 20
	// MaxSegments bounds the segments of one message.
	MaxSegments = 10000
	// MaxFields bounds the fields of one segment.
	MaxFields = 256
)

// Errors of the parser; callers distinguish them with errors.Is.
var (
	// ErrMalformed means the bytes are not an ER7-encoded HL7 v2 message.
	ErrMalformed = errors.New("hl7: malformed message")
	// ErrTooLarge means a limit of the parser was exceeded.
	ErrTooLarge = errors.New("hl7: message too large")
	// ErrUnsupported means a well-formed message the receiver does not
	// handle (another message type or version).
	ErrUnsupported = errors.New("hl7: unsupported message")
)

// Delimiters are a message's separators (MSH-1 and MSH-2).
type Delimiters struct {
	Field, Component, Repetition, Escape, Subcomponent byte
}

// DefaultDelimiters are the recommended separators |^~\&.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&'}

// Segment is one segment. Fields[0] is the segment name; Fields[n] is field
// n as sent, still escaped. In MSH, Fields[1] is the field separator and
// Fields[2] the encoding characters, so that MSH-n is Fields[n] as in the
// standard's numbering.
type Segment struct {
	Name   string
	Fields []string
	delims *Delimiters
}

// Message is a parsed HL7 v2 message.
type Message struct {
	Delimiters Delimiters
	Segments   []Segment
}

// Parse parses one ER7-encoded message. Segments end in CR (HL7 v2.5
// §2.5.1); LF and CR LF are accepted too because files and some gateways
// use them. It returns errors wrapping ErrTooLarge or ErrMalformed.
func Parse(data []byte) (*Message, error) {
	if len(data) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxMessageBytes)
	}
	if len(data) < 8 || string(data[:3]) != "MSH" {
		return nil, fmt.Errorf("%w: does not start with MSH", ErrMalformed)
	}
	d := Delimiters{Field: data[3]}
	end := bytes.IndexByte(data[4:], d.Field)
	if end < 0 {
		return nil, fmt.Errorf("%w: MSH-2 is not terminated", ErrMalformed)
	}
	enc := data[4 : 4+end]
	// MSH-2 has four characters; v2.7 adds a fifth, the truncation
	// character, which this parser does not interpret.
	if len(enc) != 4 && len(enc) != 5 {
		return nil, fmt.Errorf("%w: MSH-2 %q must have 4 or 5 characters", ErrMalformed, enc)
	}
	d.Component, d.Repetition, d.Escape, d.Subcomponent = enc[0], enc[1], enc[2], enc[3]
	seen := map[byte]bool{}
	for _, c := range append([]byte{d.Field}, enc...) {
		if seen[c] || c == '\r' || c == '\n' || c < 0x20 || c >= 0x7f || ('A' <= c && c <= 'Z') || ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == ' ' {
			return nil, fmt.Errorf("%w: invalid or repeated delimiter %q", ErrMalformed, c)
		}
		seen[c] = true
	}
	m := &Message{Delimiters: d}
	text := strings.ReplaceAll(string(data), "\r\n", "\r")
	text = strings.ReplaceAll(text, "\n", "\r")
	for i, line := range strings.Split(text, "\r") {
		if line == "" {
			continue
		}
		if len(m.Segments) >= MaxSegments {
			return nil, fmt.Errorf("%w: more than %d segments", ErrTooLarge, MaxSegments)
		}
		if strings.Count(line, string(d.Field)) >= MaxFields {
			return nil, fmt.Errorf("%w: segment %d has more than %d fields", ErrTooLarge, i+1, MaxFields)
		}
		if len(line) < 3 || !validName(line[:3]) || (len(line) > 3 && line[3] != d.Field) {
			return nil, fmt.Errorf("%w: segment %d has no valid name", ErrMalformed, len(m.Segments)+1)
		}
		seg := Segment{Name: line[:3], delims: &m.Delimiters}
		if seg.Name == "MSH" {
			if len(m.Segments) > 0 {
				return nil, fmt.Errorf("%w: a second MSH (batches are not supported)", ErrMalformed)
			}
			rest := line[4:]
			seg.Fields = append([]string{"MSH", string(d.Field)}, strings.Split(rest, string(d.Field))...)
		} else {
			seg.Fields = strings.Split(line, string(d.Field))
		}
		m.Segments = append(m.Segments, seg)
	}
	return m, nil
}

func validName(s string) bool {
	for i := 0; i < 3; i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// MSH returns the message header segment.
func (m *Message) MSH() *Segment { return &m.Segments[0] }

// Type returns MSH-9 as "ORU^R01" (message code and trigger event).
func (m *Message) Type() (code, event string) {
	return m.MSH().Get(9, 1, 1, 1), m.MSH().Get(9, 1, 2, 1)
}

// Raw returns field n as sent (escaped), or "" if absent.
func (s *Segment) Raw(n int) string {
	if n < 0 || n >= len(s.Fields) {
		return ""
	}
	return s.Fields[n]
}

// Get returns one subcomponent of one repetition of field n, unescaped.
// rep, comp and sub count from 1, as in "PID-3.1"; absent parts are "".
// MSH-1 and MSH-2 are returned verbatim.
func (s *Segment) Get(n, rep, comp, sub int) string {
	raw := s.Raw(n)
	if s.Name == "MSH" && (n == 1 || n == 2) {
		return raw
	}
	d := s.delims
	v, ok := nth(raw, d.Repetition, rep)
	if ok {
		v, ok = nth(v, d.Component, comp)
	}
	if ok {
		v, ok = nth(v, d.Subcomponent, sub)
	}
	if !ok {
		return ""
	}
	return Unescape(v, *d)
}

// Component returns component comp of the first repetition of field n,
// unescaped, with its subcomponents joined as sent.
func (s *Segment) Component(n, comp int) string {
	d := s.delims
	v, ok := nth(s.Raw(n), d.Repetition, 1)
	if ok {
		v, ok = nth(v, d.Component, comp)
	}
	if !ok {
		return ""
	}
	return Unescape(v, *d)
}

// nth returns the i-th (from 1) part of s split at sep.
func nth(s string, sep byte, i int) (string, bool) {
	if i < 1 {
		return "", false
	}
	for ; i > 1; i-- {
		j := strings.IndexByte(s, sep)
		if j < 0 {
			return "", false
		}
		s = s[j+1:]
	}
	if j := strings.IndexByte(s, sep); j >= 0 {
		s = s[:j]
	}
	return s, true
}

// Unescape decodes the escape sequences of HL7 v2.5 §2.7: \F\ \S\ \T\ \R\
// \E\ for the delimiters, \Xhh…\ for bytes, \.br\ for a line break.
// Highlighting (\H\, \N\), character-set (\C…\, \M…\) and other formatting
// sequences are dropped; an unterminated escape is kept literally.
func Unescape(s string, d Delimiters) string {
	if strings.IndexByte(s, d.Escape) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != d.Escape {
			b.WriteByte(c)
			continue
		}
		j := strings.IndexByte(s[i+1:], d.Escape)
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		seq := s[i+1 : i+1+j]
		i += j + 1
		switch {
		case seq == "F":
			b.WriteByte(d.Field)
		case seq == "S":
			b.WriteByte(d.Component)
		case seq == "T":
			b.WriteByte(d.Subcomponent)
		case seq == "R":
			b.WriteByte(d.Repetition)
		case seq == "E":
			b.WriteByte(d.Escape)
		case seq == ".br":
			b.WriteByte('\n')
		case len(seq) > 1 && seq[0] == 'X' && len(seq)%2 == 1:
			for k := 1; k+1 < len(seq); k += 2 {
				if v, err := strconv.ParseUint(seq[k:k+2], 16, 8); err == nil {
					b.WriteByte(byte(v))
				}
			}
		}
	}
	return b.String()
}

// Escape encodes the delimiters in s as escape sequences (HL7 v2.5 §2.7.1)
// and line breaks as \.br\.
func Escape(s string, d Delimiters) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case d.Escape:
			b.WriteString(string(d.Escape) + "E" + string(d.Escape))
		case d.Field:
			b.WriteString(string(d.Escape) + "F" + string(d.Escape))
		case d.Component:
			b.WriteString(string(d.Escape) + "S" + string(d.Escape))
		case d.Subcomponent:
			b.WriteString(string(d.Escape) + "T" + string(d.Escape))
		case d.Repetition:
			b.WriteString(string(d.Escape) + "R" + string(d.Escape))
		case '\r', '\n':
			b.WriteString(string(d.Escape) + ".br" + string(d.Escape))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
