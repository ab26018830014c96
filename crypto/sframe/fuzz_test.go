package sframe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// FuzzParseHeader checks that every parsed header re-encodes to the bytes
// it was parsed from (one encoding per header) and that parsing never panics.
func FuzzParseHeader(f *testing.F) {
	for _, v := range everyNth(17) {
		b, _ := hex.DecodeString(v.encoded)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if enc := h.Append(nil); !bytes.Equal(enc, b[:n]) || n > MaxHeaderLen {
			t.Fatalf("%x parsed as %+v re-encodes as %x", b[:n], h, enc)
		}
	})
}

// FuzzDecrypt feeds arbitrary ciphertexts to a Context holding receive keys
// for KIDs 0-7 and 300: nothing panics, and nothing but the sender's own
// frames authenticates.
func FuzzDecrypt(f *testing.F) {
	base := bytes.Repeat([]byte{3}, 48)
	k, _ := DeriveKey(AES128CTRHMACSHA256_32, 300, base)
	genuine := k.Seal(nil, 42, nil, []byte("genuine frame"))
	f.Add(genuine)
	f.Add(genuine[:5])
	f.Add([]byte{0x00, 1, 2, 3, 4})
	f.Add([]byte{0x91, 0x01, 0x2c})
	f.Fuzz(func(t *testing.T, ct []byte) {
		c, _ := NewContext(AES128CTRHMACSHA256_32)
		for kid := range uint64(8) {
			c.AddReceiveKey(kid, base)
		}
		c.AddReceiveKey(300, base)
		pt, _, err := c.Decrypt(nil, nil, ct)
		if err == nil && !bytes.Equal(ct, genuine) {
			t.Fatalf("forged ciphertext %x authenticated as %q", ct, pt)
		}
	})
}

func everyNth(n int) (out []struct {
	kid, ctr uint64
	encoded  string
}) {
	for i := 0; i < len(headerVectors); i += n {
		out = append(out, headerVectors[i])
	}
	return out
}
