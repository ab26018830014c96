package conformance

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

func init() { register("deserialization", runDeserialization) }

// runDeserialization checks that a variable-length integer header decodes to
// the given length and that the length re-encodes to the same header
// (RFC 9420 §2.1.2).
func runDeserialization(t *testing.T, raw json.RawMessage) {
	var c struct {
		Header hexBytes `json:"vlbytes_header"`
		Length uint64   `json:"length"`
	}
	decodeCase(t, raw, &c)
	r := codec.NewReader(c.Header)
	got, err := r.ReadVarint()
	if err != nil {
		t.Fatalf("decode %x: %v", []byte(c.Header), err)
	}
	if got != c.Length || !r.Empty() {
		t.Fatalf("decode %x = %d (%d bytes left), want %d", []byte(c.Header), got, r.Len(), c.Length)
	}
	var w codec.Writer
	w.WriteVarint(c.Length)
	enc, err := w.Bytes()
	if err != nil || !bytes.Equal(enc, c.Header) {
		t.Fatalf("encode %d = %x, %v; want %x", c.Length, enc, err, []byte(c.Header))
	}
}
