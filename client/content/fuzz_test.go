package content

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode checks that Decode never panics, that every error wraps one of
// the documented sentinels, and that whatever it accepts re-encodes to a
// message that decodes again to the same encoding.
func FuzzDecode(f *testing.F) {
	for _, m := range validMessages() {
		b, err := Encode(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","type":"text","ts":1764403200000,"body":{"md":"x","md":"y"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			for _, s := range []error{ErrTooLarge, ErrMalformed, ErrUnsupportedVersion, ErrUnknownType, ErrInvalid} {
				if errors.Is(err, s) {
					return
				}
			}
			t.Fatalf("error %q wraps no sentinel", err)
		}
		enc, err := Encode(m)
		if err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v\n%s", err, enc)
		}
		enc2, err := Encode(m2)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable: %v\n%s\n%s", err, enc, enc2)
		}
	})
}

// FuzzCanonicalJSON checks that canonicalisation never panics and is
// idempotent.
func FuzzCanonicalJSON(f *testing.F) {
	f.Add([]byte(`{"b":[1.50,"\u20ac",true,null],"a":{"\r":1e21}}`))
	f.Add([]byte(consentActive))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := CanonicalJSON(b)
		if err != nil {
			return
		}
		c2, err := CanonicalJSON(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("not idempotent: %v\n%s\n%s", err, c, c2)
		}
	})
}
