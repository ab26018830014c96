package codec

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func vectorsDir() string {
	if d := os.Getenv("MLS_TEST_VECTORS"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "..", "..", "shared", "mls-test-vectors")
}

// TestDeserializationVectors runs deserialization.json: each case gives a
// variable-length integer header and the length it encodes.
func TestDeserializationVectors(t *testing.T) {
	path := filepath.Join(vectorsDir(), "deserialization.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("MLS test vectors not found at %s (set MLS_TEST_VECTORS)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Header string `json:"vlbytes_header"`
		Length uint64 `json:"length"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	passed := 0
	for i, c := range cases {
		header, err := hex.DecodeString(c.Header)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		r := NewReader(header)
		got, err := r.ReadVarint()
		if err != nil || got != c.Length || !r.Empty() {
			t.Errorf("case %d: decode %s = %d, %v; want %d", i, c.Header, got, err, c.Length)
			continue
		}
		var w Writer
		w.WriteVarint(c.Length)
		enc, _ := w.Bytes()
		if !bytes.Equal(enc, header) {
			t.Errorf("case %d: encode %d = %x; want %s", i, c.Length, enc, c.Header)
			continue
		}
		passed++
	}
	t.Logf("deserialization.json: %d passed, %d failed, 0 skipped", passed, len(cases)-passed)
}

func TestVarintRejectsNonMinimalAndInvalid(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"4001", ErrNonMinimalVarint},
		{"80000001", ErrNonMinimalVarint},
		{"80003fff", ErrNonMinimalVarint},
		{"c0", ErrInvalidVarint},
		{"40", ErrTruncated},
		{"800000", ErrTruncated},
		{"", ErrTruncated},
	} {
		b, _ := hex.DecodeString(tc.in)
		_, err := NewReader(b).ReadVarint()
		if !errors.Is(err, tc.want) {
			t.Errorf("ReadVarint(%s) error = %v; want %v", tc.in, err, tc.want)
		}
	}
}

func TestVectorRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 16383, 16384, 100000} {
		body := bytes.Repeat([]byte{0xab}, n)
		var w Writer
		w.WriteUint16(7)
		w.WriteVector(func(w *Writer) { w.WriteRaw(body) })
		w.WriteUint8(9)
		enc, err := w.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader(enc)
		if v, _ := r.ReadUint16(); v != 7 {
			t.Fatalf("n=%d: prefix field = %d", n, v)
		}
		got, err := r.ReadOpaque()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("n=%d: ReadOpaque = %d bytes, %v", n, len(got), err)
		}
		if v, _ := r.ReadUint8(); v != 9 || r.Finish() != nil {
			t.Fatalf("n=%d: trailing field = %d, finish %v", n, v, r.Finish())
		}
	}
}

func TestReadVectorBoundsAndElements(t *testing.T) {
	var w Writer
	w.WriteVector(func(w *Writer) {
		for i := range 5 {
			w.WriteUint16(uint16(i))
		}
	})
	enc, _ := w.Bytes()
	var got []uint16
	err := NewReader(enc).ReadVector(func(r *Reader) error {
		v, err := r.ReadUint16()
		got = append(got, v)
		return err
	})
	if err != nil || len(got) != 5 || got[4] != 4 {
		t.Fatalf("ReadVector = %v, %v", got, err)
	}
	// A length beyond the input is refused before anything is allocated.
	if _, err := NewReader([]byte{0xbf, 0xff, 0xff, 0xff, 1}).ReadOpaque(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("oversized length: %v", err)
	}
	// An element decoder that reads nothing cannot loop forever.
	err = NewReader([]byte{1, 0}).ReadVector(func(r *Reader) error { return nil })
	if !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("empty element: %v", err)
	}
	// Optional presence must be 0 or 1.
	if _, err := NewReader([]byte{2}).ReadOptional(); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("optional 2: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte{0x03, 1, 2, 3, 0x00})
	f.Add([]byte{0x40, 0x40})
	f.Add([]byte{0xbf, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(in)
		var items [][]byte
		err := r.ReadVector(func(r *Reader) error {
			b, err := r.ReadOpaque()
			items = append(items, b)
			return err
		})
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes (minimal encoding).
		var w Writer
		w.WriteVector(func(w *Writer) {
			for _, b := range items {
				w.WriteOpaque(b)
			}
		})
		enc, _ := w.Bytes()
		if !bytes.Equal(enc, in[:len(in)-r.Len()]) {
			t.Fatalf("re-encoding differs: %x vs %x", enc, in[:len(in)-r.Len()])
		}
	})
}
