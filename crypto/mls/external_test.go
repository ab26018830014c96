package mls

import (
	"errors"
	"fmt"
	"testing"
)

func TestExternalJoinAndResync(t *testing.T) {
	for _, s := range []CipherSuite{1, 3, 6} {
		w := newWorld(t, s, 21)
		w.add(w.members[0], 3, false)
		out, err := w.members[1].g.Commit(&CommitOptions{ForcePath: true, ExternalPub: true, InlineTree: true})
		if err != nil {
			t.Fatal(err)
		}
		w.commitDeliver(w.members[1], out)
		cred, priv := newIdentity(t, s, "newdevice")
		g, msg, err := JoinExternal(nil, out.GroupInfo, cred, priv, nil)
		if err != nil {
			t.Fatalf("suite %d: external join: %v", s, err)
		}
		for _, c := range w.members {
			res, err := c.g.ProcessMessage(msg)
			if err != nil {
				t.Fatalf("%s: external commit: %v", c.name, err)
			}
			if res.Kind != ResultCommit || len(res.Added) != 1 || res.Added[0] != g.LeafIndex() {
				t.Fatalf("result %+v", res)
			}
		}
		w.members = append(w.members, &client{name: "newdevice", g: g})
		w.check()

		// Resync: a member rejoins by external commit, removing its old leaf.
		old := w.members[2]
		out, err = w.members[0].g.Commit(&CommitOptions{ForcePath: true, ExternalPub: true})
		if err != nil {
			t.Fatal(err)
		}
		w.commitDeliver(w.members[0], out)
		leaf := old.g.LeafIndex()
		rt, err := w.members[0].g.RatchetTree()
		if err != nil {
			t.Fatal(err)
		}
		g2, msg, err := JoinExternal(nil, out.GroupInfo, old.g.tree.Leaf(leaf).Credential, old.g.sigKey, &ExternalJoinOptions{RatchetTree: rt, ResyncLeaf: &leaf})
		if err != nil {
			t.Fatalf("resync: %v", err)
		}
		var stay []*client
		for _, c := range w.members {
			if _, err := c.g.ProcessMessage(msg); err != nil {
				t.Fatalf("%s: resync commit: %v", c.name, err)
			}
			if c != old {
				stay = append(stay, c)
			}
		}
		w.members = append(stay, &client{name: "resynced", g: g2})
		w.check()
	}
}

// commitDeliver merges c's commit and delivers it to the others.
func (w *world) commitDeliver(c *client, out *CommitOutput) {
	w.t.Helper()
	for _, o := range w.members {
		if _, err := o.g.ProcessMessage(out.Commit); err != nil {
			w.t.Fatalf("%s: %v", o.name, err)
		}
	}
}

func TestExternalSenderHub(t *testing.T) {
	s := CipherSuite(1)
	hubPriv, hubPub, err := GenerateSignatureKey(s)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := ExternalSendersExtension([]ExternalSender{{SignatureKey: hubPub, Credential: Credential{CredentialType: CredentialBasic, Identity: []byte("hub")}}})
	if err != nil {
		t.Fatal(err)
	}
	cred, priv := newIdentity(t, s, "m0")
	g, err := CreateGroup(nil, []byte("room"), s, cred, priv, []Extension{ext})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, suite: s, members: []*client{{name: "m0", g: g}}, rng: newRNG(4), n: 1, ops: map[string]int{}}
	w.add(w.members[0], 3, true)
	victim := w.members[2]
	// The hub proposes a Remove; member 1 commits it.
	prop, err := NewExternalProposal(s, g.GroupID(), g.Epoch(), 0, hubPriv, RemoveProposal(victim.g.LeafIndex()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range w.members {
		res, err := c.g.ProcessMessage(prop)
		if err != nil || res.Kind != ResultProposal || res.SenderType != 2 {
			t.Fatalf("%s: hub proposal: %+v %v", c.name, res, err)
		}
	}
	w.commit(w.members[1], nil, nil, nil, nil)
	if len(w.members) != 3 || !errors.Is(victim.g.usable(), ErrNotMember) {
		t.Fatal("hub's Remove was not applied")
	}
	// The hub proposes an Add; member 0 commits it and the joiner joins.
	kp, kpPriv := newKP(t, s, "invitee")
	addP, err := AddProposal(kp)
	if err != nil {
		t.Fatal(err)
	}
	prop, err = NewExternalProposal(s, g.GroupID(), g.Epoch(), 0, hubPriv, addP)
	if err != nil {
		t.Fatal(err)
	}
	w.broadcast(nil, prop)
	w.commit(w.members[0], &CommitOptions{InlineTree: true}, [][]byte{kp}, []*KeyPackagePrivate{kpPriv}, []string{"invitee"})
	if len(w.members) != 4 || len(w.members[3].g.Members()) != 4 {
		t.Fatalf("%d members after the hub's Add", len(w.members))
	}
	// A proposal signed by someone else claiming to be the hub is refused.
	otherPriv, _, _ := GenerateSignatureKey(s)
	forged, err := NewExternalProposal(s, g.GroupID(), g.Epoch(), 0, otherPriv, RemoveProposal(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.members[0].g.ProcessMessage(forged); !errors.Is(err, ErrInvalidMessage) {
		t.Fatalf("forged hub proposal: %v", err)
	}
	// The hub may not propose an Update.
	if _, err := NewExternalProposal(s, g.GroupID(), g.Epoch(), 0, hubPriv, &Proposal{}); err == nil {
		t.Fatal("external Update-like proposal accepted")
	}
}

// TestPSKs commits an external PSK and a resumption PSK of a past epoch and
// checks that every member derives the same epoch; a member without the
// external PSK cannot follow.
func TestPSKs(t *testing.T) {
	psk := []byte("0123456789abcdef0123456789abcdef")
	cfg := &Config{ExternalPSK: func(id []byte) ([]byte, bool) { return psk, string(id) == "shared" }}
	w := newWorld(t, 1, 31)
	w.members[0].g.cfg = cfg
	w.add(w.members[0], 2, true)
	for _, c := range w.members {
		c.g.cfg = cfg
	}
	a := w.members[0].g
	w.commit(w.members[0], &CommitOptions{Proposals: []*Proposal{a.ExternalPSKProposal([]byte("shared")), a.ResumptionPSKProposal(1)}}, nil, nil, nil)
	// A PSK by reference, and a member that lacks it.
	msg, err := w.members[1].g.ProposeExternalPSK([]byte("shared"), false)
	if err != nil {
		t.Fatal(err)
	}
	w.broadcast(w.members[1], msg)
	w.members[2].g.cfg = &Config{}
	out, err := a.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.members[2].g.ProcessMessage(out.Commit); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("member without the PSK: %v", err)
	}
}

// TestReInit reinitializes a group under a new id: a ReInit proposal is
// committed, then one member creates the new group with the resumption PSK
// and the others join it.
func TestReInit(t *testing.T) {
	w := newWorld(t, 1, 23)
	w.add(w.members[0], 2, true)
	msg, err := w.members[1].g.ProposeReInit([]byte("group-v2"), 1, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	w.broadcast(w.members[1], msg)
	rc, err := w.members[0].g.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	w.commitDeliver(w.members[0], rc)
	for _, c := range w.members {
		if string(c.g.EpochAuthenticator()) != string(w.members[0].g.EpochAuthenticator()) {
			t.Fatalf("%s disagrees after the ReInit commit", c.name)
		}
		if c.g.ReInit() == nil {
			t.Fatalf("%s did not see the ReInit", c.name)
		}
		if _, err := c.g.EncryptApplication([]byte("x"), nil); err == nil {
			t.Fatal("a reinitialized group still sends")
		}
	}
	old := w.members[0].g
	var kps [][]byte
	var privs []*KeyPackagePrivate
	for _, c := range w.members[1:] {
		kp, priv, err := NewKeyPackage(1, c.g.tree.Leaf(c.g.LeafIndex()).Credential, c.g.sigKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		kps, privs = append(kps, kp), append(privs, priv)
	}
	ng, out, err := old.ReInitGroup(kps, &CommitOptions{InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ng.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{ResumptionPSK: func(id []byte, ep uint64) ([]byte, bool) {
		if string(id) != "group" {
			return nil, false
		}
		return w.members[1].g.ResumptionPSK(ep)
	}}
	nw := &world{t: t, suite: 1, members: []*client{{name: "m0", g: ng}}, rng: newRNG(1), n: 10, ops: map[string]int{}}
	for i := range kps {
		g, err := JoinFromWelcome(cfg, out.Welcome, kps[i], privs[i], nil)
		if err != nil {
			t.Fatalf("join the reinitialized group: %v", err)
		}
		nw.members = append(nw.members, &client{name: fmt.Sprint("j", i), g: g})
	}
	if string(ng.GroupID()) != "group-v2" {
		t.Fatal("new group id not used")
	}
	nw.check()
	// Without the old group's PSK a joiner cannot enter.
	if _, err := JoinFromWelcome(nil, out.Welcome, kps[0], privs[0], nil); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("join without the resumption psk: %v", err)
	}
}
