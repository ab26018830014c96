package ciphersuite

import (
	"errors"
	"testing"
)

func TestParseIDAcceptsNamesAndNumbersOfSupportedSuitesOnly(t *testing.T) {
	for _, id := range Supported() {
		for _, in := range []string{id.Name(), " " + id.Name() + " ", "0x" + hex16(uint16(id))} {
			got, err := ParseID(in)
			if err != nil || got != id {
				t.Errorf("ParseID(%q) = %#04x, %v; want %#04x", in, uint16(got), err, uint16(id))
			}
		}
	}
	if got, err := ParseID("mls_128_mlkem768x25519_aes128gcm_sha256_ed25519"); err != nil || got != 0xF001 {
		t.Errorf("lower-case name: %#04x, %v", uint16(got), err)
	}
	for _, in := range []string{"", "0x0008", "0xF003", "MLS_128_FOO", "65536", "-1"} {
		if _, err := ParseID(in); !errors.Is(err, ErrUnsupported) {
			t.Errorf("ParseID(%q) = %v, want ErrUnsupported", in, err)
		}
	}
	if ID(0x1234).Name() != "0x1234" {
		t.Errorf("unknown suite name %q", ID(0x1234).Name())
	}
}

func TestOnlyThePrivateUseSuitesArePostQuantum(t *testing.T) {
	for _, id := range Supported() {
		if want := id >= 0xF000; id.PostQuantum() != want {
			t.Errorf("%s: PostQuantum() = %v", id.Name(), !want)
		}
	}
}

func hex16(v uint16) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[v>>12], digits[v>>8&15], digits[v>>4&15], digits[v&15]})
}
