package password

import (
	"errors"
	"strings"
	"testing"
)

func TestHashVerifies(t *testing.T) {
	h, err := Hash("correct horse battery staple", Default)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the OWASP parameters", h)
	}
	if err := Verify("correct horse battery staple", h); err != nil {
		t.Fatalf("Verify(right password) = %v", err)
	}
	if err := Verify("correct horse battery stapler", h); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Verify(wrong password) = %v, want ErrMismatch", err)
	}
	h2, _ := Hash("correct horse battery staple", Default)
	if h == h2 {
		t.Fatal("two hashes of the same password are equal: salt not random")
	}
}

func TestVerifyRefusesMalformedAndHostileHashes(t *testing.T) {
	for _, h := range []string{
		"", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$a2V5",
	} {
		if err := Verify("x", h); !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, want ErrMalformedHash", h, err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("pw", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Fuzz(func(t *testing.T, pw, hash string) {
		_ = Verify(pw, hash) // must not panic
	})
}
