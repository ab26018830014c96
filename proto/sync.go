package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// SyncSubprotocolBinary is the WebSocket subprotocol (RFC 6455 §1.9) a
// client offers on /v1/sync to receive event frames in binary form. When the
// server selects it, every events frame is a binary WebSocket message in the
// layout below; all other frames stay JSON text messages, and client frames
// are JSON as always. docs/api.md ("Binary event frames") describes it.
//
// A binary events frame is
//
//	frame  = FrameTypeEvents, 1*record
//	record = length (uvarint), event (length bytes)
//	event  = stream (uvarint), seq (uvarint), ts (varint, Unix milliseconds),
//	         room_id, sender, device_id, kind (each a string),
//	         body (bytes), flags (1 byte: bit 0 set if member follows),
//	         [member: user_id, membership, room_role, by (each a string)]
//	string = bytes = length (uvarint), that many bytes
//
// Bytes after the known fields of an event, up to its record length, are
// ignored, so that later versions can append fields.
const SyncSubprotocolBinary = "medicus.sync.binary.v1"

// FrameTypeEvents is the first byte of a binary events frame. JSON frames
// begin with '{', so the first byte tells the two forms apart.
const FrameTypeEvents byte = 0x01

const memberFlag byte = 1

// ErrMalformedFrame is returned (wrapped) for a binary sync frame that does
// not follow the layout of SyncSubprotocolBinary.
var ErrMalformedFrame = errors.New("malformed binary sync frame")

// AppendEventRecord appends the binary record of ev (its length and
// encoding, as in a binary events frame) to dst and returns the extended
// slice. A frame is FrameTypeEvents followed by such records.
func AppendEventRecord(dst []byte, ev *Event) []byte {
	n := eventSize(ev)
	dst = slices.Grow(dst, uvarintLen(uint64(n))+n)
	dst = binary.AppendUvarint(dst, uint64(n))
	dst = binary.AppendUvarint(dst, uint64(ev.Stream))
	dst = binary.AppendUvarint(dst, uint64(ev.Seq))
	dst = binary.AppendVarint(dst, ev.Time.UnixMilli())
	dst = appendBytes(dst, ev.RoomID)
	dst = appendBytes(dst, ev.Sender)
	dst = appendBytes(dst, ev.DeviceID)
	dst = appendBytes(dst, ev.Kind)
	dst = appendBytes(dst, ev.Body)
	if ev.Member == nil {
		dst = append(dst, 0)
	} else {
		dst = append(dst, memberFlag)
		dst = appendBytes(dst, ev.Member.UserID)
		dst = appendBytes(dst, ev.Member.Membership)
		dst = appendBytes(dst, ev.Member.RoomRole)
		dst = appendBytes(dst, ev.Member.By)
	}
	return dst
}

// eventSize is the length of ev's encoding in AppendEventRecord, which the
// record's length prefix states.
func eventSize(ev *Event) int {
	n := uvarintLen(uint64(ev.Stream)) + uvarintLen(uint64(ev.Seq)) + varintLen(ev.Time.UnixMilli()) +
		bytesLen(len(ev.RoomID)) + bytesLen(len(ev.Sender)) + bytesLen(len(ev.DeviceID)) + bytesLen(len(ev.Kind)) +
		bytesLen(len(ev.Body)) + 1
	if m := ev.Member; m != nil {
		n += bytesLen(len(m.UserID)) + bytesLen(len(m.Membership)) + bytesLen(len(m.RoomRole)) + bytesLen(len(m.By))
	}
	return n
}

func appendBytes[T string | []byte](dst []byte, s T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func bytesLen(n int) int { return uvarintLen(uint64(n)) + n }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}

// DecodeEventsFrame decodes a binary events frame and appends its events to
// dst (pass dst[:0] to reuse its storage). Each event's Body aliases frame,
// so the caller must copy frame, or the bodies, to keep them beyond the
// frame buffer's reuse; strings are copied, and a string equal to the same
// field of the previous event is shared rather than allocated again. A frame
// that does not follow the layout yields an error wrapping
// ErrMalformedFrame and no events beyond those already in dst.
func DecodeEventsFrame(frame []byte, dst []Event) ([]Event, error) {
	if len(frame) == 0 || frame[0] != FrameTypeEvents {
		return dst, fmt.Errorf("%w: not an events frame", ErrMalformedFrame)
	}
	base := len(dst)
	rest := frame[1:]
	if len(rest) == 0 {
		return dst, fmt.Errorf("%w: no events", ErrMalformedFrame)
	}
	var prev *Event
	for i := 0; len(rest) > 0; i++ {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return dst[:base], fmt.Errorf("%w: event %d: bad record length", ErrMalformedFrame, i)
		}
		rec := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		dst = append(dst, Event{})
		ev := &dst[len(dst)-1]
		if err := decodeEvent(rec, ev, prev); err != nil {
			return dst[:base], fmt.Errorf("%w: event %d: %v", ErrMalformedFrame, i, err)
		}
		prev = ev
	}
	return dst, nil
}

// eventReader reads the fields of one event record, remembering the first
// error.
type eventReader struct {
	b   []byte
	err error
}

func (r *eventReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = fmt.Errorf("bad %s", what)
		return 0
	}
	r.b = r.b[k:]
	return v
}

func (r *eventReader) position(what string) int64 {
	v := r.uvarint(what)
	if v > math.MaxInt64 {
		r.err = fmt.Errorf("%s out of range", what)
		return 0
	}
	return int64(v)
}

func (r *eventReader) bytes(what string) []byte {
	n, k := binary.Uvarint(r.b)
	if r.err != nil {
		return nil
	}
	if k <= 0 {
		r.err = fmt.Errorf("bad length of %s", what)
		return nil
	}
	r.b = r.b[k:]
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%s longer than the record", what)
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

// string returns the next string field, reusing prev when equal.
func (r *eventReader) string(what, prev string) string {
	b := r.bytes(what)
	if string(b) == prev {
		return prev
	}
	return string(b)
}

func decodeEvent(rec []byte, ev *Event, prev *Event) error {
	var p Event
	var pm MembershipChange
	if prev != nil {
		p = *prev
		if prev.Member != nil {
			pm = *prev.Member
		}
	}
	r := eventReader{b: rec}
	ev.Stream = r.position("stream")
	ev.Seq = r.position("seq")
	if r.err == nil {
		ts, k := binary.Varint(r.b)
		if k <= 0 {
			return errors.New("bad timestamp")
		}
		r.b = r.b[k:]
		ev.Time = time.UnixMilli(ts).UTC()
	}
	ev.RoomID = r.string("room_id", p.RoomID)
	ev.Sender = r.string("sender", p.Sender)
	ev.DeviceID = r.string("device_id", p.DeviceID)
	ev.Kind = r.string("kind", p.Kind)
	if body := r.bytes("body"); len(body) > 0 {
		ev.Body = body
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) < 1 {
		return errors.New("missing flags")
	}
	flags := r.b[0]
	r.b = r.b[1:]
	if flags&memberFlag != 0 {
		m := &MembershipChange{}
		m.UserID = r.string("member user_id", pm.UserID)
		m.Membership = r.string("membership", pm.Membership)
		m.RoomRole = r.string("room_role", pm.RoomRole)
		m.By = r.string("member by", pm.By)
		ev.Member = m
	}
	return r.err
}
