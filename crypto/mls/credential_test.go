package mls

import (
	"errors"
	"testing"
)

var errUnknownIdentity = errors.New("unknown identity")

// TestCredentialValidatorRefusesInjectedMember has the hub (an external
// sender) propose adding a member whose credential the application does not
// accept, and a member commit such an Add: every other member refuses.
func TestCredentialValidatorRefusesInjectedMember(t *testing.T) {
	s := CipherSuite(1)
	calls := 0
	cfg := &Config{Credentials: CredentialValidatorFunc(func(c *Credential, _ []byte) error {
		calls++
		if string(c.Identity) == "mallory" {
			return errUnknownIdentity
		}
		return nil
	})}
	hubPriv, hubPub, err := GenerateSignatureKey(s)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := ExternalSendersExtension([]ExternalSender{{SignatureKey: hubPub, Credential: Credential{CredentialType: CredentialBasic, Identity: []byte("hub")}}})
	if err != nil {
		t.Fatal(err)
	}
	cred, priv := newIdentity(t, s, "m0")
	g, err := CreateGroup(cfg, []byte("room"), s, cred, priv, []Extension{ext})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, suite: s, members: []*client{{name: "m0", g: g}}, rng: newRNG(5), n: 1, ops: map[string]int{}}
	w.add(w.members[0], 2, true)
	for _, c := range w.members {
		c.g.cfg = cfg
	}
	if calls == 0 {
		t.Fatal("the validator was never called")
	}
	mallory, _ := newKP(t, s, "mallory")
	p, err := AddProposal(mallory)
	if err != nil {
		t.Fatal(err)
	}
	prop, err := NewExternalProposal(s, g.GroupID(), g.Epoch(), 0, hubPriv, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range w.members {
		if _, err := c.g.ProcessMessage(prop); !errors.Is(err, errUnknownIdentity) {
			t.Fatalf("%s accepted the hub's Add of mallory: %v", c.name, err)
		}
	}
	// A member that skips the check commits the Add; the others refuse.
	a := w.members[0].g
	a.test.noValidate = true
	out, err := a.Commit(&CommitOptions{Proposals: []*Proposal{p}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range w.members[1:] {
		if _, err := c.g.ProcessMessage(out.Commit); !errors.Is(err, errUnknownIdentity) {
			t.Fatalf("%s accepted a commit adding mallory: %v", c.name, err)
		}
	}
}

// TestForgedPrivateMessageBurnsNoKey checks that a PrivateMessage that does
// not authenticate leaves the sender's ratchet usable.
func TestForgedPrivateMessageBurnsNoKey(t *testing.T) {
	w := newWorld(t, 1, 17)
	w.add(w.members[0], 1, true)
	a, b := w.members[0].g, w.members[1].g
	ct, err := a.EncryptApplication([]byte("real"), nil)
	if err != nil {
		t.Fatal(err)
	}
	forged := append([]byte(nil), ct...)
	forged[len(forged)-1] ^= 1
	if _, err := b.ProcessMessage(forged); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("forged: %v", err)
	}
	if res, err := b.ProcessMessage(ct); err != nil || string(res.ApplicationData) != "real" {
		t.Fatalf("real message after a forgery: %v", err)
	}
	if _, err := b.ProcessMessage(ct); err == nil {
		t.Fatal("replayed message accepted")
	}
}

func TestKeyPackageCredential(t *testing.T) {
	cred := Credential{CredentialType: CredentialBasic, Identity: []byte("@bob:b.test/DEV")}
	priv, pub, err := GenerateSignatureKey(1)
	if err != nil {
		t.Fatal(err)
	}
	kp, _, err := NewKeyPackage(1, cred, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, sigKey, err := KeyPackageCredential(kp)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Identity) != "@bob:b.test/DEV" || string(sigKey) != string(pub) {
		t.Fatalf("got %q / %x", got.Identity, sigKey)
	}
	if _, _, err := KeyPackageCredential(kp[:len(kp)-3]); err == nil {
		t.Fatal("truncated KeyPackage accepted")
	}
}
