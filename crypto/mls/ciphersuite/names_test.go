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

func TestSignatureSchemesAndSharedKeys(t *testing.T) {
	want := map[ID]string{1: "ed25519", 2: "ecdsa_secp256r1_sha256", 3: "ed25519", 4: "ed448", 5: "ecdsa_secp521r1_sha512",
		6: "ed448", 7: "ecdsa_secp384r1_sha384", 0xF001: "ed25519", 0xF002: "mldsa87"}
	for _, id := range Supported() {
		if got := id.SignatureScheme(); got != want[id] {
			t.Errorf("%s: %q, want %q", id.Name(), got, want[id])
		}
	}
	if ID(0x1234).SignatureScheme() != "" {
		t.Error("unknown suite has a signature scheme")
	}
	// A key of 0x0001 signs for 0xF001, as SignatureScheme promises.
	classic, _ := Lookup(1)
	hybrid, _ := Lookup(0xF001)
	priv, pub, err := classic.GenerateSignatureKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := hybrid.SignWithLabel(priv, "LeafNodeTBS", []byte("x"))
	if err != nil || classic.VerifyWithLabel(pub, "LeafNodeTBS", []byte("x"), sig) != nil {
		t.Fatalf("0x0001 key does not serve 0xF001: %v", err)
	}
}
