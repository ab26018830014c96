package mls

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
)

// client is one test member: its group and identity.
type client struct {
	name string
	g    *Group
}

func newIdentity(t testing.TB, s CipherSuite, name string) (Credential, []byte) {
	t.Helper()
	priv, _, err := GenerateSignatureKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return Credential{CredentialType: CredentialBasic, Identity: []byte(name)}, priv
}

func newKP(t testing.TB, s CipherSuite, name string) ([]byte, *KeyPackagePrivate) {
	t.Helper()
	cred, priv := newIdentity(t, s, name)
	kp, kpp, err := NewKeyPackage(s, cred, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp, kpp
}

// world is a set of members of one group with a delivery service that
// broadcasts every handshake message to everyone.
type world struct {
	t       testing.TB
	suite   CipherSuite
	members []*client
	rng     *rand.Rand
	n       int
	ops     map[string]int
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 1)) }

func newWorld(t testing.TB, s CipherSuite, seed uint64) *world {
	cred, priv := newIdentity(t, s, "m0")
	g, err := CreateGroup(nil, []byte("group"), s, cred, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, suite: s, members: []*client{{name: "m0", g: g}}, rng: rand.New(rand.NewPCG(seed, 1)), n: 1, ops: map[string]int{}}
}

// commit has member c commit opts, delivers it to all others, and lets
// joiners join; it returns the joined clients.
func (w *world) commit(c *client, opts *CommitOptions, joiners [][]byte, privs []*KeyPackagePrivate, names []string) {
	w.t.Helper()
	out, err := c.g.Commit(opts)
	if err != nil {
		w.t.Fatalf("%s commit: %v", c.name, err)
	}
	w.deliver(c, out, opts, joiners, privs, names)
}

// deliver hands c's commit output to every member and the Welcome to the
// joiners, then checks agreement.
func (w *world) deliver(c *client, out *CommitOutput, opts *CommitOptions, joiners [][]byte, privs []*KeyPackagePrivate, names []string) {
	w.t.Helper()
	var err error
	var stay []*client
	for _, o := range w.members {
		if o == c {
			if _, err := o.g.ProcessMessage(out.Commit); err != nil {
				w.t.Fatalf("%s merge own commit: %v", o.name, err)
			}
			stay = append(stay, o)
			continue
		}
		_, err := o.g.ProcessMessage(out.Commit)
		if err != nil {
			w.t.Fatalf("%s process commit of %s: %v", o.name, c.name, err)
		}
		if errors.Is(o.g.usable(), ErrNotMember) {
			continue
		}
		stay = append(stay, o)
	}
	w.members = stay
	var tree []byte
	if len(joiners) > 0 && !opts.InlineTree {
		if tree, err = c.g.RatchetTree(); err != nil {
			w.t.Fatal(err)
		}
	}
	for i, kp := range joiners {
		g, err := JoinFromWelcome(nil, out.Welcome, kp, privs[i], tree)
		if err != nil {
			w.t.Fatalf("%s join: %v", names[i], err)
		}
		w.members = append(w.members, &client{name: names[i], g: g})
	}
	w.check()
}

// check asserts that all members agree on the epoch and its authenticator
// and can read each other's messages.
func (w *world) check() {
	w.t.Helper()
	ref := w.members[0].g
	for _, c := range w.members[1:] {
		if c.g.Epoch() != ref.Epoch() || !bytes.Equal(c.g.EpochAuthenticator(), ref.EpochAuthenticator()) {
			w.t.Fatalf("%s disagrees with %s at epoch %d/%d", c.name, w.members[0].name, c.g.Epoch(), ref.Epoch())
		}
	}
	if len(w.members) < 2 {
		return
	}
	from := w.members[w.rng.IntN(len(w.members))]
	msg := fmt.Appendf(nil, "hello from %s at %d", from.name, from.g.Epoch())
	ct, err := from.g.EncryptApplication(msg, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range w.members {
		if c == from {
			continue
		}
		res, err := c.g.ProcessMessage(ct)
		if err != nil {
			w.t.Fatalf("%s decrypt from %s: %v", c.name, from.name, err)
		}
		if res.Kind != ResultApplication || !bytes.Equal(res.ApplicationData, msg) || res.Sender != from.g.LeafIndex() {
			w.t.Fatalf("%s got %+v", c.name, res)
		}
	}
}

func (w *world) add(by *client, k int, inline bool) {
	var kps [][]byte
	var privs []*KeyPackagePrivate
	var names []string
	var props []*Proposal
	for range k {
		name := fmt.Sprintf("m%d", w.n)
		w.n++
		kp, priv := newKP(w.t, w.suite, name)
		p, err := AddProposal(kp)
		if err != nil {
			w.t.Fatal(err)
		}
		kps, privs, names, props = append(kps, kp), append(privs, priv), append(names, name), append(props, p)
	}
	w.commit(by, &CommitOptions{Proposals: props, InlineTree: inline}, kps, privs, names)
}

func TestGroupLifecycleAllSuites(t *testing.T) {
	for _, s := range ciphersuite.Supported() {
		t.Run(fmt.Sprintf("%#04x", uint16(s)), func(t *testing.T) {
			steps, maxN := 25, 12
			if testing.Short() || s == 5 || s == 7 {
				steps, maxN = 16, 8
			}
			w := newWorld(t, s, uint64(s))
			w.add(w.members[0], 2, true)
			for range steps {
				w.randomStep(maxN)
			}
			w.ops["removes"] = w.ops["remove"] + w.ops["remove-by-ref"]
			for _, op := range []string{"add", "removes", "update", "self-update"} {
				if w.ops[op] == 0 {
					t.Errorf("no %s step ran in %d steps (%v)", op, steps, w.ops)
				}
			}
			t.Logf("ops %v, final size %d, epoch %d", w.ops, len(w.members), w.members[0].g.Epoch())
		})
	}
}

// randomStep performs one random operation: add, remove, update by
// proposal, self-update commit, or proposals by reference from several
// members committed by another.
func (w *world) randomStep(maxN int) {
	c := w.members[w.rng.IntN(len(w.members))]
	switch op := w.rng.IntN(5); {
	case op == 0 && len(w.members) < maxN || len(w.members) < 2:
		w.add(c, 1+w.rng.IntN(3), w.rng.IntN(2) == 0)
		w.ops["add"]++
	case op == 1:
		victim := w.members[w.rng.IntN(len(w.members))]
		if victim == c {
			return
		}
		w.removeAndCheck(c, victim)
		w.ops["remove"]++
	case op == 2:
		// Another member proposes an update; c commits it by reference.
		u := w.members[w.rng.IntN(len(w.members))]
		if u == c {
			return
		}
		msg, err := u.g.ProposeUpdate(w.rng.IntN(2) == 0)
		if err != nil {
			w.t.Fatal(err)
		}
		w.broadcast(u, msg)
		w.commit(c, nil, nil, nil, nil)
		w.ops["update"]++
	case op == 3:
		w.commit(c, &CommitOptions{ForcePath: true, Private: w.rng.IntN(2) == 0}, nil, nil, nil)
		w.ops["self-update"]++
	default:
		// A remove proposed by one member, committed (with path) by another.
		if len(w.members) < 3 {
			return
		}
		p := w.members[w.rng.IntN(len(w.members))]
		victim := w.members[w.rng.IntN(len(w.members))]
		if p == victim || c == victim {
			return
		}
		msg, err := p.g.Propose(RemoveProposal(victim.g.LeafIndex()), false)
		if err != nil {
			w.t.Fatal(err)
		}
		w.broadcast(p, msg)
		w.commit(c, nil, nil, nil, nil)
		w.ops["remove-by-ref"]++
	}
}

func (w *world) broadcast(from *client, msg []byte) {
	w.t.Helper()
	for _, o := range w.members {
		if o == from {
			continue
		}
		if _, err := o.g.ProcessMessage(msg); err != nil {
			w.t.Fatalf("%s process proposal of %s: %v", o.name, from.name, err)
		}
	}
}

// removeAndCheck removes victim and asserts it can read nothing afterwards.
func (w *world) removeAndCheck(by, victim *client) {
	w.t.Helper()
	vg := victim.g
	w.commit(by, &CommitOptions{Proposals: []*Proposal{RemoveProposal(vg.LeafIndex())}}, nil, nil, nil)
	for _, c := range w.members {
		if c == victim {
			w.t.Fatalf("%s still listed after removal", victim.name)
		}
	}
	if !errors.Is(vg.usable(), ErrNotMember) {
		w.t.Fatalf("%s does not know it was removed", victim.name)
	}
	ct, err := w.members[0].g.EncryptApplication([]byte("secret after removal"), nil)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := vg.ProcessMessage(ct); err == nil {
		w.t.Fatalf("removed %s decrypted a message", victim.name)
	}
}

// TestOldEpochRefused checks forward secrecy across epochs: a message of the
// previous epoch is refused and the previous epoch's secrets are gone.
func TestOldEpochRefused(t *testing.T) {
	w := newWorld(t, 1, 7)
	w.add(w.members[0], 2, false)
	a, b := w.members[0], w.members[1]
	old, err := a.g.EncryptApplication([]byte("old"), nil)
	if err != nil {
		t.Fatal(err)
	}
	o := b.g.secrets
	oldTree, oldEnc := b.g.secretTree, b.g.encryptionSecret
	w.commit(a, &CommitOptions{ForcePath: true}, nil, nil, nil)
	if _, err := b.g.ProcessMessage(old); !errors.Is(err, ErrWrongEpoch) {
		t.Fatalf("old-epoch message: got %v, want ErrWrongEpoch", err)
	}
	// The previous epoch's secrets are zeroed, its secret tree erased.
	for i, s := range [][]byte{o.senderData, o.exporter, o.init, o.membership, o.confirmation, o.external, oldEnc} {
		if len(s) == 0 || !bytes.Equal(s, make([]byte, len(s))) {
			t.Fatalf("secret %d of the previous epoch survived the commit", i)
		}
	}
	if _, err := oldTree.Next(0, 1); err == nil {
		t.Fatal("the previous epoch's secret tree still derives keys")
	}
}

// TestLargeGroup grows a group to 50 members in every suite (20 with
// -short) and runs random steps in it.
func TestLargeGroup(t *testing.T) {
	for _, s := range ciphersuite.Supported() {
		t.Run(fmt.Sprintf("%#04x", uint16(s)), func(t *testing.T) {
			n, steps := 50, 12
			slow := s == 5 || s == 7 || s == 0xF002 // P-521, P-384 and ML-DSA-87 signatures
			if slow {
				steps = 4
			}
			if testing.Short() || (raceEnabled && slow) {
				// The race detector makes these suites ~20 times slower;
				// 20 members still exercise a multi-level tree.
				n, steps = 20, 4
			}
			w := newWorld(t, s, 3)
			w.add(w.members[0], n-1, false)
			if len(w.members) != n {
				t.Fatalf("%d members, want %d", len(w.members), n)
			}
			for range steps {
				w.randomStep(n)
			}
		})
	}
}

func TestCommitRaceLoserDiscards(t *testing.T) {
	w := newWorld(t, 1, 9)
	w.add(w.members[0], 2, true)
	a, b := w.members[0], w.members[1]
	outA, err := a.g.Commit(&CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.g.Commit(&CommitOptions{ForcePath: true}); err != nil {
		t.Fatal(err)
	}
	// The hub accepted a's commit: b drops its own and processes a's.
	b.g.DiscardPendingCommit()
	for _, c := range w.members {
		if _, err := c.g.ProcessMessage(outA.Commit); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	w.check()
}
