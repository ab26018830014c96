package identity

import (
	"bytes"
	"errors"
	"regexp"
	"testing"
)

func TestCredentialBindsSignatureKey(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	sigKey := bytes.Repeat([]byte{7}, 32)
	c, err := k.Certify("@alice:a.test", "DEV1", sigKey)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseCredential(c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if err := parsed.Verify(sigKey); err != nil {
		t.Fatalf("valid credential refused: %v", err)
	}
	if parsed.UserID != "@alice:a.test" || parsed.DeviceID != "DEV1" || !bytes.Equal(parsed.IdentityKey, k.Public()) {
		t.Fatalf("round trip changed the credential: %+v", parsed)
	}
	// Another signature key, user or device must not verify.
	if err := parsed.Verify(bytes.Repeat([]byte{8}, 32)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other signature key: %v", err)
	}
	forged := *parsed
	forged.UserID = "@mallory:a.test"
	if err := forged.Verify(sigKey); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed user: %v", err)
	}
	forged = *parsed
	forged.DeviceID = "DEV2"
	if err := forged.Verify(sigKey); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed device: %v", err)
	}
	// A server-made credential with its own key verifies only under that key,
	// which contacts have not pinned for the user.
	other, _ := GenerateKey()
	fake, _ := other.Certify("@alice:a.test", "DEV9", sigKey)
	if bytes.Equal(fake.IdentityKey, c.IdentityKey) {
		t.Fatal("two identity keys are equal")
	}
}

func TestSeedRoundTrip(t *testing.T) {
	k, _ := GenerateKey()
	k2, err := KeyFromSeed(k.Seed())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Public(), k2.Public()) {
		t.Fatal("seed does not restore the key")
	}
	if _, err := KeyFromSeed([]byte("short")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short seed: %v", err)
	}
}

func TestParseCredentialRefusesMalformed(t *testing.T) {
	k, _ := GenerateKey()
	c, _ := k.Certify("@a:s", "D", []byte("k"))
	good := c.Marshal()
	for name, data := range map[string][]byte{
		"empty":         nil,
		"version":       append([]byte{2}, good[1:]...),
		"trailing":      append(bytes.Clone(good), 0),
		"truncated":     good[:len(good)-1],
		"empty user":    (&DeviceCredential{DeviceID: "D", IdentityKey: c.IdentityKey, Signature: c.Signature}).Marshal(),
		"short key":     (&DeviceCredential{UserID: "@a:s", DeviceID: "D", IdentityKey: c.IdentityKey[:31], Signature: c.Signature}).Marshal(),
		"short sig":     (&DeviceCredential{UserID: "@a:s", DeviceID: "D", IdentityKey: c.IdentityKey, Signature: c.Signature[:63]}).Marshal(),
		"length beyond": {1, 200, 'a'},
	} {
		if _, err := ParseCredential(data); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func TestSafetyNumberIsSymmetricAndKeyDependent(t *testing.T) {
	a, _ := GenerateKey()
	b, _ := GenerateKey()
	c, _ := GenerateKey()
	ab := SafetyNumber("@a:s", a.Public(), "@b:s", b.Public())
	ba := SafetyNumber("@b:s", b.Public(), "@a:s", a.Public())
	if ab != ba {
		t.Fatalf("not symmetric: %q vs %q", ab, ba)
	}
	if !regexp.MustCompile(`^(\d{5} ){11}\d{5}$`).MatchString(ab) {
		t.Fatalf("format: %q", ab)
	}
	if ac := SafetyNumber("@a:s", a.Public(), "@b:s", c.Public()); ac == ab {
		t.Fatal("a substituted key gives the same safety number")
	}
	if other := SafetyNumber("@a:s", a.Public(), "@c:s", b.Public()); other == ab {
		t.Fatal("another user id gives the same safety number")
	}
}

func FuzzParseCredential(f *testing.F) {
	k, _ := GenerateKey()
	c, _ := k.Certify("@a:s", "D", []byte("k"))
	f.Add(c.Marshal())
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCredential(data)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Marshal(), data) {
			t.Fatal("re-encoding differs")
		}
		_ = c.Verify([]byte("k"))
	})
}

func TestSignIsBoundToLabelAndKey(t *testing.T) {
	k, _ := GenerateKey()
	other, _ := GenerateKey()
	sig := k.Sign("consent", []byte("Consent/1 active"))
	if err := VerifySignature(k.Public(), "consent", []byte("Consent/1 active"), sig); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"other label": VerifySignature(k.Public(), "other", []byte("Consent/1 active"), sig),
		"other msg":   VerifySignature(k.Public(), "consent", []byte("Consent/1 rejected"), sig),
		"other key":   VerifySignature(other.Public(), "consent", []byte("Consent/1 active"), sig),
	} {
		if !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
