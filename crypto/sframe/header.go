package sframe

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// MaxHeaderLen is the longest encoded SFrame header: the config byte, an
// 8-byte KID and an 8-byte CTR.
const MaxHeaderLen = 17

// Header is a decoded SFrame header (RFC 9605 §4.3): the key id selecting
// the key and the counter from which the nonce is formed.
type Header struct {
	KID uint64
	CTR uint64
}

// valueLen is the minimum number of bytes encoding v (at least 1).
func valueLen(v uint64) int { return max(1, (bits.Len64(v)+7)/8) }

// Len returns the encoded length of h.
func (h Header) Len() int {
	n := 1
	if h.KID >= 8 {
		n += valueLen(h.KID)
	}
	if h.CTR >= 8 {
		n += valueLen(h.CTR)
	}
	return n
}

// Append appends the encoding of h to b. Values 0-7 are carried in the
// config byte; larger ones follow it, KID first, each in the minimum number
// of big-endian bytes with its length minus one in the config byte (§4.3).
func (h Header) Append(b []byte) []byte {
	var config byte
	var ext [16]byte
	n := 0
	if h.KID < 8 {
		config |= byte(h.KID) << 4
	} else {
		l := valueLen(h.KID)
		config |= 0x80 | byte(l-1)<<4
		n += putBE(ext[n:], h.KID, l)
	}
	if h.CTR < 8 {
		config |= byte(h.CTR)
	} else {
		l := valueLen(h.CTR)
		config |= 0x08 | byte(l-1)
		n += putBE(ext[n:], h.CTR, l)
	}
	b = append(b, config)
	return append(b, ext[:n]...)
}

func putBE(dst []byte, v uint64, l int) int {
	var full [8]byte
	binary.BigEndian.PutUint64(full[:], v)
	return copy(dst, full[8-l:])
}

// ParseHeader decodes the SFrame header at the start of b and returns it
// with its encoded length. It returns ErrMalformed if b is too short or a
// value is not in its minimal encoding (§4.3 requires the minimum number of
// bytes, so every header has exactly one encoding).
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) < 1 {
		return Header{}, 0, fmt.Errorf("%w: empty", ErrMalformed)
	}
	config := b[0]
	off := 1
	var h Header
	var err error
	if config&0x80 == 0 {
		h.KID = uint64(config>>4) & 0x7
	} else if h.KID, off, err = readValue(b, off, int(config>>4&0x7)+1, "KID"); err != nil {
		return Header{}, 0, err
	}
	if config&0x08 == 0 {
		h.CTR = uint64(config & 0x7)
	} else if h.CTR, off, err = readValue(b, off, int(config&0x7)+1, "CTR"); err != nil {
		return Header{}, 0, err
	}
	return h, off, nil
}

func readValue(b []byte, off, l int, name string) (uint64, int, error) {
	if len(b)-off < l {
		return 0, 0, fmt.Errorf("%w: %s needs %d bytes, %d left", ErrMalformed, name, l, len(b)-off)
	}
	var v uint64
	for _, c := range b[off : off+l] {
		v = v<<8 | uint64(c)
	}
	if v < 8 || valueLen(v) != l {
		return 0, 0, fmt.Errorf("%w: %s is not minimally encoded", ErrMalformed, name)
	}
	return v, off + l, nil
}
