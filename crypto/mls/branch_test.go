package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
)

// freshKPs makes a new KeyPackage in suite for each given member, with the
// member's credential and a new signature key if the suite changes.
func freshKPs(t *testing.T, suite CipherSuite, cs []*client) ([][]byte, []*KeyPackagePrivate) {
	t.Helper()
	var kps [][]byte
	var privs []*KeyPackagePrivate
	for _, c := range cs {
		sig := c.g.sigKey
		if suite != c.g.CipherSuite() {
			var err error
			if sig, _, err = GenerateSignatureKey(suite); err != nil {
				t.Fatal(err)
			}
		}
		kp, priv, err := NewKeyPackage(suite, c.g.tree.Leaf(c.g.LeafIndex()).Credential, sig, nil)
		if err != nil {
			t.Fatal(err)
		}
		kps, privs = append(kps, kp), append(privs, priv)
	}
	return kps, privs
}

func TestBranchSubgroupAllSuites(t *testing.T) {
	for _, s := range ciphersuite.Supported() {
		t.Run(fmt.Sprintf("%#04x", uint16(s)), func(t *testing.T) {
			w := newWorld(t, s, 41)
			w.add(w.members[0], 4, true)
			sub := w.members[1:3] // branch m0 with m1 and m2 only
			kps, privs := freshKPs(t, s, sub)
			exts := []Extension{{ExtensionType: 3, ExtensionData: []byte{0, 0, 0}}}
			ng, out, err := w.members[0].g.Branch([]byte("subgroup"), exts, kps, &CommitOptions{ForcePath: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := ng.MergePendingCommit(); err != nil {
				t.Fatal(err)
			}
			rt, err := ng.RatchetTree()
			if err != nil {
				t.Fatal(err)
			}
			nw := &world{t: t, suite: s, members: []*client{{name: "m0", g: ng}}, rng: newRNG(2), n: 10, ops: map[string]int{}}
			for i, c := range sub {
				g, err := JoinBranch(nil, c.g, out.Welcome, kps[i], privs[i], rt)
				if err != nil {
					t.Fatalf("%s joins the branch: %v", c.name, err)
				}
				nw.members = append(nw.members, &client{name: c.name, g: g})
			}
			if ng.Epoch() != 1 || string(ng.GroupID()) != "subgroup" || len(ng.Members()) != 3 {
				t.Fatalf("subgroup epoch %d id %q members %d", ng.Epoch(), ng.GroupID(), len(ng.Members()))
			}
			nw.check()
			// The parent group goes on independently.
			w.check()
			if bytes.Equal(ng.EpochAuthenticator(), w.members[0].g.EpochAuthenticator()) {
				t.Fatal("subgroup shares the parent's epoch")
			}
		})
	}
}

func TestBranchRefusesOutsiders(t *testing.T) {
	w := newWorld(t, 1, 42)
	w.add(w.members[0], 2, true)
	stranger, _ := newKP(t, 1, "mallory")
	if _, _, err := w.members[0].g.Branch([]byte("sub"), nil, [][]byte{stranger}, nil); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("branch with a stranger's key package: %v", err)
	}
}

func TestJoinBranchChecksTheParent(t *testing.T) {
	w := newWorld(t, 1, 43)
	w.add(w.members[0], 2, true)
	other := newWorld(t, 1, 44)
	other.add(other.members[0], 1, true)
	kps, privs := freshKPs(t, 1, w.members[1:2])

	// A Welcome of an ordinary new group is no branch.
	plain, err := CreateGroup(nil, []byte("plain"), 1, w.members[0].g.tree.Leaf(0).Credential, w.members[0].g.sigKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := AddProposal(kps[0])
	out, err := plain.Commit(&CommitOptions{Proposals: []*Proposal{p}, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinBranch(nil, w.members[1].g, out.Welcome, kps[0], privs[0], nil); !errors.Is(err, ErrInvalidWelcome) {
		t.Fatalf("join a non-branch as a branch: %v", err)
	}

	// A branch of w cannot be joined as a branch of another group (here one
	// with the same id and epoch, so only the PSK's secret differs).
	kps, privs = freshKPs(t, 1, w.members[1:2])
	_, out, err = w.members[0].g.Branch([]byte("sub"), nil, kps, &CommitOptions{InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinBranch(nil, other.members[0].g, out.Welcome, kps[0], privs[0], nil); !errors.Is(err, ErrInvalidWelcome) {
		t.Fatalf("join a branch of another group: %v", err)
	}
	if _, err := JoinBranch(nil, w.members[1].g, out.Welcome, kps[0], privs[0], nil); err != nil {
		t.Fatalf("join the real branch: %v", err)
	}
}

func TestReInitChangingSuite(t *testing.T) {
	w := newWorld(t, 1, 45)
	w.add(w.members[0], 2, true)
	exts := []Extension{{ExtensionType: 3, ExtensionData: []byte{0, 0, 0}}}
	msg, err := w.members[1].g.ProposeReInit([]byte("group-p256"), 2, exts, false)
	if err != nil {
		t.Fatal(err)
	}
	w.broadcast(w.members[1], msg)
	rc, err := w.members[0].g.Commit(nil)
	if err != nil {
		t.Fatal(err)
	}
	w.commitDeliver(w.members[0], rc)
	kps, privs := freshKPs(t, 2, w.members[1:])
	sig, _, err := GenerateSignatureKey(2)
	if err != nil {
		t.Fatal(err)
	}
	ng, out, err := w.members[0].g.ReInitGroupWithKey(sig, kps, &CommitOptions{ForcePath: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ng.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	rt, err := ng.RatchetTree()
	if err != nil {
		t.Fatal(err)
	}
	nw := &world{t: t, suite: 2, members: []*client{{name: "m0", g: ng}}, rng: newRNG(3), n: 10, ops: map[string]int{}}
	for i, c := range w.members[1:] {
		g, err := JoinReInit(nil, c.g, out.Welcome, kps[i], privs[i], rt)
		if err != nil {
			t.Fatalf("%s joins the reinitialized group: %v", c.name, err)
		}
		nw.members = append(nw.members, &client{name: c.name, g: g})
	}
	if ng.CipherSuite() != 2 || ng.Epoch() != 1 {
		t.Fatalf("new group suite %#04x epoch %d", uint16(ng.CipherSuite()), ng.Epoch())
	}
	nw.check()

	// A branch Welcome is not a reinit Welcome, even for the same members.
	w2 := newWorld(t, 1, 47)
	w2.add(w2.members[0], 1, true)
	kps2, privs2 := freshKPs(t, 1, w2.members[1:2])
	_, bout, err := w2.members[0].g.Branch([]byte("group-p256"), exts, kps2, &CommitOptions{InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := JoinReInit(nil, w.members[1].g, bout.Welcome, kps2[0], privs2[0], nil); err == nil {
		t.Fatal("joined a branch Welcome as the reinitialized group")
	}
}

func TestPastEpochApplicationMessages(t *testing.T) {
	for _, keep := range []int{0, 2} {
		t.Run(fmt.Sprint("keep", keep), func(t *testing.T) {
			cfg := &Config{PastEpochs: keep}
			cred, priv := newIdentity(t, 1, "alice")
			a, err := CreateGroup(cfg, []byte("g"), 1, cred, priv, nil)
			if err != nil {
				t.Fatal(err)
			}
			kp, kpp := newKP(t, 1, "bob")
			p, _ := AddProposal(kp)
			out, err := a.Commit(&CommitOptions{Proposals: []*Proposal{p}, InlineTree: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.MergePendingCommit(); err != nil {
				t.Fatal(err)
			}
			b, err := JoinFromWelcome(cfg, out.Welcome, kp, kpp, nil)
			if err != nil {
				t.Fatal(err)
			}
			var late [][]byte
			for e := range 3 {
				ct, err := a.EncryptApplication(fmt.Appendf(nil, "epoch %d", e), []byte("ad"))
				if err != nil {
					t.Fatal(err)
				}
				late = append(late, ct)
				c, err := a.Commit(nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := a.MergePendingCommit(); err != nil {
					t.Fatal(err)
				}
				if _, err := b.ProcessMessage(c.Commit); err != nil {
					t.Fatal(err)
				}
			}
			// late[0] is 3 epochs old, late[1] and late[2] within 2.
			for i := len(late) - 1; i >= 0; i-- {
				res, err := b.ProcessMessage(late[i])
				within := 3-i <= keep
				if within {
					if err != nil || string(res.ApplicationData) != fmt.Sprintf("epoch %d", i) || string(res.AuthenticatedData) != "ad" {
						t.Fatalf("late message %d: %v %+v", i, err, res)
					}
					if _, err := b.ProcessMessage(late[i]); err == nil {
						t.Fatalf("late message %d accepted twice", i)
					}
				} else if !errors.Is(err, ErrWrongEpoch) {
					t.Fatalf("late message %d beyond the window: %v", i, err)
				}
			}
		})
	}
}

func TestNewMemberAddProposalAndInspect(t *testing.T) {
	w := newWorld(t, 1, 48)
	w.add(w.members[0], 1, false)
	gi, err := w.members[0].g.GroupInfo(false, true)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := w.members[0].g.RatchetTree()
	d, err := InspectGroupInfo(nil, gi, rt)
	if err != nil {
		t.Fatal(err)
	}
	if d.Epoch != w.members[0].g.Epoch() || len(d.Members) != 2 || string(d.Members[1].Credential.Identity) != "m1" {
		t.Fatalf("inspect: %+v", d)
	}
	if _, err := InspectGroupInfo(nil, gi, nil); !errors.Is(err, ErrInvalidWelcome) {
		t.Fatalf("inspect without a tree: %v", err)
	}
	cred, sig := newIdentity(t, 1, "newbie")
	kp, kpp, err := NewKeyPackage(1, cred, sig, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherSig := newIdentity(t, 1, "x")
	if _, err := NewMemberAddProposal(gi, kp, otherSig); !errors.Is(err, ErrInvalidProposal) {
		t.Fatalf("proposal signed with a foreign key: %v", err)
	}
	prop, err := NewMemberAddProposal(gi, kp, sig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range w.members {
		res, err := c.g.ProcessMessage(prop)
		if err != nil || res.Kind != ResultProposal {
			t.Fatalf("%s: %v", c.name, err)
		}
	}
	out, err := w.members[0].g.Commit(&CommitOptions{InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	w.commitDeliver(w.members[0], out)
	g, err := JoinFromWelcome(nil, out.Welcome, kp, kpp, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g.EpochAuthenticator(), w.members[0].g.EpochAuthenticator()) {
		t.Fatal("new member disagrees")
	}
	// External sender entries round-trip.
	es := ExternalSender{SignatureKey: []byte("key"), Credential: cred}
	b, err := MarshalExternalSender(es)
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalExternalSender(b)
	if err != nil || !bytes.Equal(back.SignatureKey, es.SignatureKey) || string(back.Credential.Identity) != "newbie" {
		t.Fatalf("external sender round trip: %v %+v", err, back)
	}
	if _, err := UnmarshalExternalSender(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestExternalJoinWithPSK(t *testing.T) {
	psk := map[string][]byte{"psk1": bytes.Repeat([]byte{7}, 32)}
	cfg := &Config{ExternalPSK: func(id []byte) ([]byte, bool) { s, ok := psk[string(id)]; return s, ok }}
	cred, priv := newIdentity(t, 1, "alice")
	a, err := CreateGroup(cfg, []byte("g"), 1, cred, priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	gi, err := a.GroupInfo(true, true)
	if err != nil {
		t.Fatal(err)
	}
	bcred, bpriv := newIdentity(t, 1, "bob")
	if _, _, err := JoinExternal(nil, gi, bcred, bpriv, &ExternalJoinOptions{ExternalPSKs: [][]byte{[]byte("psk1")}}); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("external join with an unknown psk: %v", err)
	}
	b, commit, err := JoinExternal(cfg, gi, bcred, bpriv, &ExternalJoinOptions{ExternalPSKs: [][]byte{[]byte("psk1")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.ProcessMessage(commit); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.EpochAuthenticator(), b.EpochAuthenticator()) {
		t.Fatal("disagree after external join with psk")
	}
	// Without the PSK the member cannot follow.
	a2, _ := CreateGroup(&Config{}, []byte("g"), 1, cred, priv, nil)
	gi2, _ := a2.GroupInfo(true, true)
	_, commit2, err := JoinExternal(cfg, gi2, bcred, bpriv, &ExternalJoinOptions{ExternalPSKs: [][]byte{[]byte("psk1")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a2.ProcessMessage(commit2); !errors.Is(err, ErrUnknownPSK) {
		t.Fatalf("member without the psk: %v", err)
	}
}
