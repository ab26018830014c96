// Package codec implements the subset of the TLS presentation language that
// MLS uses (RFC 9420 §2.1): big-endian fixed-width integers, fixed-length
// byte strings, optional values, and vectors whose byte length is prefixed by
// a variable-length integer in the QUIC style (RFC 9000 §16, limited to 30
// bits by RFC 9420 §2.1.2).
//
// Decoding is strict and bounded: every length is checked against the bytes
// that remain, variable-length integers must use their minimal encoding, and
// no length read from the input causes an allocation larger than the input
// itself. A Reader never panics on malformed input; it returns an error.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxVarint is the largest value a variable-length integer can carry in MLS
// (RFC 9420 §2.1.2: the two-bit prefix 0b11 is invalid).
const MaxVarint = 1<<30 - 1

// Errors returned by Reader and Marshal. Callers distinguish them with errors.Is.
var (
	// ErrTruncated means the input ended before a value was complete.
	ErrTruncated = errors.New("mls codec: truncated input")
	// ErrTrailingData means bytes remained after the outermost value.
	ErrTrailingData = errors.New("mls codec: trailing data")
	// ErrNonMinimalVarint means a variable-length integer did not use the
	// shortest encoding (RFC 9420 §2.1.2).
	ErrNonMinimalVarint = errors.New("mls codec: variable-length integer not minimally encoded")
	// ErrInvalidVarint means the variable-length integer prefix was 0b11.
	ErrInvalidVarint = errors.New("mls codec: invalid variable-length integer prefix")
	// ErrTooLarge means a value does not fit a variable-length integer.
	ErrTooLarge = errors.New("mls codec: value too large for a variable-length integer")
	// ErrInvalidValue means a field held a value the syntax forbids, such as
	// an optional or boolean byte other than 0 or 1.
	ErrInvalidValue = errors.New("mls codec: invalid value")
)

// Marshaler is implemented by MLS structures that can encode themselves.
type Marshaler interface {
	MarshalMLS(w *Writer)
}

// Unmarshaler is implemented by MLS structures that can decode themselves.
// UnmarshalMLS reads exactly one value from r.
type Unmarshaler interface {
	UnmarshalMLS(r *Reader) error
}

// Marshal encodes v and returns its bytes.
func Marshal(v Marshaler) ([]byte, error) {
	var w Writer
	v.MarshalMLS(&w)
	return w.Bytes()
}

// Unmarshal decodes exactly one value from b into v. It fails with
// ErrTrailingData if bytes remain afterwards.
func Unmarshal(b []byte, v Unmarshaler) error {
	r := NewReader(b)
	if err := v.UnmarshalMLS(r); err != nil {
		return err
	}
	return r.Finish()
}

// Writer accumulates an encoding. Errors (only: a length beyond MaxVarint)
// are sticky and reported by Bytes, so encoders need not check every call.
type Writer struct {
	buf []byte
	err error
}

// Bytes returns the encoding, or the first error that occurred while writing.
func (w *Writer) Bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// Err returns the first error that occurred while writing, if any.
func (w *Writer) Err() error { return w.err }

// Len returns the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

// WriteUint8 appends v.
func (w *Writer) WriteUint8(v uint8) { w.buf = append(w.buf, v) }

// WriteUint16 appends v in network byte order.
func (w *Writer) WriteUint16(v uint16) { w.buf = binary.BigEndian.AppendUint16(w.buf, v) }

// WriteUint32 appends v in network byte order.
func (w *Writer) WriteUint32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

// WriteUint64 appends v in network byte order.
func (w *Writer) WriteUint64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

// WriteBool appends a boolean as one byte, 0 or 1.
func (w *Writer) WriteBool(v bool) {
	if v {
		w.buf = append(w.buf, 1)
	} else {
		w.buf = append(w.buf, 0)
	}
}

// WriteRaw appends b with no length prefix (a fixed-length field).
func (w *Writer) WriteRaw(b []byte) { w.buf = append(w.buf, b...) }

// WriteVarint appends v in the minimal variable-length integer encoding.
func (w *Writer) WriteVarint(v uint64) {
	switch {
	case v <= 0x3f:
		w.buf = append(w.buf, byte(v))
	case v <= 0x3fff:
		w.buf = binary.BigEndian.AppendUint16(w.buf, uint16(v)|0x4000)
	case v <= MaxVarint:
		w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(v)|0x80000000)
	default:
		if w.err == nil {
			w.err = fmt.Errorf("%w: %d", ErrTooLarge, v)
		}
	}
}

// WriteOpaque appends b as opaque<V>: a variable-length byte count, then b.
func (w *Writer) WriteOpaque(b []byte) {
	w.WriteVarint(uint64(len(b)))
	w.buf = append(w.buf, b...)
}

// WriteVector appends a vector<V> whose contents are written by f: a
// variable-length byte count, then the bytes f wrote.
func (w *Writer) WriteVector(f func(w *Writer)) {
	// Reserve the largest prefix, write the body in place, then move the
	// body down if a shorter prefix suffices. This avoids a second buffer.
	start := len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0)
	f(w)
	n := len(w.buf) - start - 4
	var prefix [4]byte
	var p []byte
	switch {
	case n <= 0x3f:
		prefix[0] = byte(n)
		p = prefix[:1]
	case n <= 0x3fff:
		binary.BigEndian.PutUint16(prefix[:], uint16(n)|0x4000)
		p = prefix[:2]
	case n <= MaxVarint:
		binary.BigEndian.PutUint32(prefix[:], uint32(n)|0x80000000)
		p = prefix[:4]
	default:
		if w.err == nil {
			w.err = fmt.Errorf("%w: vector of %d bytes", ErrTooLarge, n)
		}
		return
	}
	copy(w.buf[start:], p)
	if len(p) < 4 {
		copy(w.buf[start+len(p):], w.buf[start+4:])
		w.buf = w.buf[:len(w.buf)-(4-len(p))]
	}
}

// WriteOptional appends optional<T>: a presence byte, then the value written
// by f if present is true.
func (w *Writer) WriteOptional(present bool, f func(w *Writer)) {
	w.WriteBool(present)
	if present {
		f(w)
	}
}

// Reader decodes from a byte slice. Byte slices it returns are copies, so they
// stay valid if the input is modified.
type Reader struct {
	b []byte
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.b) }

// Empty reports whether all bytes have been read.
func (r *Reader) Empty() bool { return len(r.b) == 0 }

// Finish returns ErrTrailingData if unread bytes remain.
func (r *Reader) Finish() error {
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes", ErrTrailingData, len(r.b))
	}
	return nil
}

func (r *Reader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b) {
		return nil, fmt.Errorf("%w: need %d bytes, have %d", ErrTruncated, n, len(r.b))
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v, nil
}

// ReadUint8 reads one byte.
func (r *Reader) ReadUint8() (uint8, error) {
	b, err := r.take(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// ReadUint16 reads a big-endian uint16.
func (r *Reader) ReadUint16() (uint16, error) {
	b, err := r.take(2)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b), nil
}

// ReadUint32 reads a big-endian uint32.
func (r *Reader) ReadUint32() (uint32, error) {
	b, err := r.take(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

// ReadUint64 reads a big-endian uint64.
func (r *Reader) ReadUint64() (uint64, error) {
	b, err := r.take(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

// ReadBool reads a boolean byte, which must be 0 or 1.
func (r *Reader) ReadBool() (bool, error) {
	v, err := r.ReadUint8()
	if err != nil {
		return false, err
	}
	switch v {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("%w: boolean byte %#x", ErrInvalidValue, v)
}

// ReadOptional reads the presence byte of optional<T>. If it returns true,
// the caller reads the value next.
func (r *Reader) ReadOptional() (bool, error) { return r.ReadBool() }

// ReadRaw reads a fixed-length field of n bytes.
func (r *Reader) ReadRaw(n int) ([]byte, error) {
	b, err := r.take(n)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), b...), nil
}

// ReadVarint reads a minimally encoded variable-length integer.
func (r *Reader) ReadVarint() (uint64, error) {
	if len(r.b) == 0 {
		return 0, fmt.Errorf("%w: variable-length integer", ErrTruncated)
	}
	var v uint64
	var n int
	switch r.b[0] >> 6 {
	case 0:
		v, n = uint64(r.b[0]), 1
	case 1:
		if len(r.b) < 2 {
			return 0, fmt.Errorf("%w: variable-length integer", ErrTruncated)
		}
		v, n = uint64(binary.BigEndian.Uint16(r.b)&0x3fff), 2
		if v <= 0x3f {
			return 0, ErrNonMinimalVarint
		}
	case 2:
		if len(r.b) < 4 {
			return 0, fmt.Errorf("%w: variable-length integer", ErrTruncated)
		}
		v, n = uint64(binary.BigEndian.Uint32(r.b)&0x3fffffff), 4
		if v <= 0x3fff {
			return 0, ErrNonMinimalVarint
		}
	default:
		return 0, ErrInvalidVarint
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *Reader) readLength() (int, error) {
	n, err := r.ReadVarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(r.b)) {
		return 0, fmt.Errorf("%w: length %d exceeds remaining %d bytes", ErrTruncated, n, len(r.b))
	}
	return int(n), nil
}

// ReadOpaque reads opaque<V>: a variable-length byte count and that many bytes.
func (r *Reader) ReadOpaque() ([]byte, error) {
	n, err := r.readLength()
	if err != nil {
		return nil, err
	}
	return r.ReadRaw(n)
}

// ReadNested reads a vector<V> header and calls f once with a Reader limited
// to the vector's bytes; f must consume all of them.
func (r *Reader) ReadNested(f func(r *Reader) error) error {
	n, err := r.readLength()
	if err != nil {
		return err
	}
	sub := &Reader{b: r.b[:n:n]}
	r.b = r.b[n:]
	if err := f(sub); err != nil {
		return err
	}
	return sub.Finish()
}

// ReadVector reads a vector<V> of elements: it calls f repeatedly with a
// Reader limited to the vector's bytes until they are consumed. Each call of
// f must read one element and consume at least one byte, so the number of
// elements is bounded by the vector's length.
func (r *Reader) ReadVector(f func(r *Reader) error) error {
	return r.ReadNested(func(sub *Reader) error {
		for !sub.Empty() {
			before := sub.Len()
			if err := f(sub); err != nil {
				return err
			}
			if sub.Len() == before {
				return fmt.Errorf("%w: vector element consumed no bytes", ErrInvalidValue)
			}
		}
		return nil
	})
}
