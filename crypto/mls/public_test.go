package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// observed is a world whose PublicMessage handshake messages also go to a
// PublicGroup, as they go to a room's hub.
type observed struct {
	*world
	pg *PublicGroup
}

func newObserved(t testing.TB, s CipherSuite, seed uint64) *observed {
	w := newWorld(t, s, seed)
	gi, err := w.members[0].g.GroupInfo(true, false)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := NewPublicGroup(nil, gi, nil)
	if err != nil {
		t.Fatalf("NewPublicGroup: %v", err)
	}
	return &observed{world: w, pg: pg}
}

// propose hands a PublicMessage proposal to the observer and the members.
func (o *observed) propose(from *client, msg []byte) {
	o.t.Helper()
	if _, err := o.pg.StoreProposal(msg); err != nil {
		o.t.Fatalf("observer refused %s's proposal: %v", from.name, err)
	}
	o.broadcast(from, msg)
}

// commit has the observer process c's commit before the members (as the
// hub does) and checks that its public state then equals theirs.
func (o *observed) commit(c *client, opts *CommitOptions, joiners [][]byte, privs []*KeyPackagePrivate, names []string) {
	o.t.Helper()
	out, err := c.g.Commit(opts)
	if err != nil {
		o.t.Fatal(err)
	}
	pc, err := o.pg.ProcessCommit(out.Commit)
	if err != nil {
		o.t.Fatalf("observer refused %s's commit: %v", c.name, err)
	}
	if pc.Committer != c.g.LeafIndex() || len(pc.Added) != len(joiners) {
		o.t.Fatalf("observer saw committer %d adding %v; want %d adding %d", pc.Committer, pc.Added, c.g.LeafIndex(), len(joiners))
	}
	o.deliver(c, out, opts, joiners, privs, names)
	o.agree()
}

// agree asserts the observer's epoch, tree and extensions equal a member's,
// and that its state survives Marshal.
func (o *observed) agree() {
	o.t.Helper()
	ref := o.members[0].g
	want, err := ref.RatchetTree()
	if err != nil {
		o.t.Fatal(err)
	}
	got, err := o.pg.RatchetTree()
	if err != nil {
		o.t.Fatal(err)
	}
	if o.pg.Epoch() != ref.Epoch() || !bytes.Equal(got, want) || len(o.pg.Members()) != len(o.members) {
		o.t.Fatalf("observer at epoch %d with %d members disagrees with members at %d with %d", o.pg.Epoch(), len(o.pg.Members()), ref.Epoch(), len(o.members))
	}
	st, err := o.pg.Marshal()
	if err != nil {
		o.t.Fatal(err)
	}
	pg2, err := UnmarshalPublicGroup(nil, st)
	if err != nil {
		o.t.Fatalf("reload observer: %v", err)
	}
	st2, err := pg2.Marshal()
	if err != nil || !bytes.Equal(st, st2) {
		o.t.Fatalf("observer state does not round-trip: %v", err)
	}
	o.pg = pg2
}

func (o *observed) add(by *client, k int) {
	var kps [][]byte
	var privs []*KeyPackagePrivate
	var names []string
	var props []*Proposal
	for range k {
		name := fmt.Sprintf("m%d", o.n)
		o.n++
		kp, priv := newKP(o.t, o.suite, name)
		p, err := AddProposal(kp)
		if err != nil {
			o.t.Fatal(err)
		}
		kps, privs, names, props = append(kps, kp), append(privs, priv), append(names, name), append(props, p)
	}
	o.commit(by, &CommitOptions{Proposals: props}, kps, privs, names)
}

// TestPublicGroupFollowsRandomGroupsInEverySuite is the lifecycle property
// test seen from outside: with every handshake message a PublicMessage, a
// PublicGroup that has no secret follows random adds, removes (by value and
// by reference), updates by reference and self-updates, and its ratchet
// tree and epoch equal the members' after every commit.
func TestPublicGroupFollowsRandomGroupsInEverySuite(t *testing.T) {
	for _, s := range ciphersuite.Supported() {
		t.Run(fmt.Sprintf("%#04x", uint16(s)), func(t *testing.T) {
			o := newObserved(t, s, uint64(s)+100)
			o.add(o.members[0], 3)
			steps := 20
			if testing.Short() || s == 5 || s == 7 {
				steps = 10
			}
			ops := map[int]int{}
			for range steps {
				c := o.members[o.rng.IntN(len(o.members))]
				other := o.members[o.rng.IntN(len(o.members))]
				op := o.rng.IntN(5)
				if len(o.members) < 3 {
					op = 0
				}
				if op != 0 && op != 3 && other == c {
					continue
				}
				switch op {
				case 0:
					o.add(c, 1+o.rng.IntN(2))
				case 1:
					o.commit(c, &CommitOptions{Proposals: []*Proposal{RemoveProposal(other.g.LeafIndex())}}, nil, nil, nil)
				case 2:
					msg, err := other.g.ProposeUpdate(false)
					if err != nil {
						t.Fatal(err)
					}
					o.propose(other, msg)
					o.commit(c, nil, nil, nil, nil)
				case 3:
					o.commit(c, &CommitOptions{ForcePath: true}, nil, nil, nil)
				case 4:
					msg, err := c.g.Propose(RemoveProposal(other.g.LeafIndex()), false)
					if err != nil {
						t.Fatal(err)
					}
					o.propose(c, msg)
					committer := o.members[0]
					if committer == other || committer == c {
						committer = o.members[1]
					}
					if committer == other || committer == c {
						committer = o.members[2]
					}
					o.commit(committer, nil, nil, nil, nil)
				}
				ops[op]++
			}
			t.Logf("ops %v, %d members, epoch %d", ops, len(o.members), o.pg.Epoch())
		})
	}
}

// TestPublicGroupFollowsExternalJoins checks external commits (RFC 9420
// §12.4.3.2), including a resync that removes the joiner's old leaf.
func TestPublicGroupFollowsExternalJoins(t *testing.T) {
	o := newObserved(t, SuiteXWing, 3)
	o.add(o.members[0], 2)
	out, err := o.members[1].g.Commit(&CommitOptions{ForcePath: true, ExternalPub: true, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.pg.ProcessCommit(out.Commit); err != nil {
		t.Fatal(err)
	}
	o.commitDeliver(o.members[1], out)
	old := o.members[2]
	leaf := old.g.LeafIndex()
	g, msg, err := JoinExternal(nil, out.GroupInfo, old.g.tree.Leaf(leaf).Credential, old.g.sigKey, &ExternalJoinOptions{ResyncLeaf: &leaf})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := o.pg.ProcessCommit(msg)
	if err != nil {
		t.Fatalf("observer refused the external commit: %v", err)
	}
	if !pc.External || len(pc.Removed) != 1 || pc.Removed[0] != leaf || pc.Committer != g.LeafIndex() {
		t.Fatalf("external commit seen as %+v", pc)
	}
	var stay []*client
	for _, c := range o.members {
		if _, err := c.g.ProcessMessage(msg); err != nil {
			t.Fatal(err)
		}
		if c != old {
			stay = append(stay, c)
		}
	}
	o.members = append(stay, &client{name: "rejoined", g: g})
	o.agree()
}

// TestPublicGroupRefusesWhatItCannotAccept checks the non-member checks of
// RFC 9420 §6.1 and §12.4: a commit in a PrivateMessage, of another group
// or epoch, whose sender is not a member, signed with another key, or
// referencing a proposal the observer never saw.
func TestPublicGroupRefusesWhatItCannotAccept(t *testing.T) {
	o := newObserved(t, 1, 4)
	o.add(o.members[0], 3)
	a, b := o.members[0], o.members[1]
	commitBy := func(c *client, opts *CommitOptions) []byte {
		out, err := c.g.Commit(opts)
		if err != nil {
			t.Fatal(err)
		}
		c.g.DiscardPendingCommit()
		return out.Commit
	}
	resign := func(msg []byte, mutate func(fc *wire.FramedContent), key []byte) []byte {
		var m wire.MLSMessage
		if err := codec.Unmarshal(msg, &m); err != nil {
			t.Fatal(err)
		}
		mutate(&m.PublicMessage.Content)
		if key != nil {
			ac := m.PublicMessage.AuthenticatedContent()
			tbs, err := ac.TBS(&a.g.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if m.PublicMessage.Auth.Signature, err = a.g.suite.SignWithLabel(key, "FramedContentTBS", tbs); err != nil {
				t.Fatal(err)
			}
		}
		out, err := codec.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	stale := commitBy(a, &CommitOptions{ForcePath: true})
	o.commit(b, &CommitOptions{ForcePath: true}, nil, nil, nil)
	good := commitBy(b, &CommitOptions{ForcePath: true})
	private, err := a.g.Propose(RemoveProposal(o.members[2].g.LeafIndex()), true)
	if err != nil {
		t.Fatal(err)
	}
	o.broadcast(a, private)
	unseen := commitBy(b, nil)
	_, mallory := newIdentity(t, 1, "mallory")
	for _, tc := range []struct {
		name string
		msg  []byte
		want error
	}{
		{"private commit", commitBy(a, &CommitOptions{ForcePath: true, Private: true}), ErrInvalidMessage},
		{"stale epoch", stale, ErrWrongEpoch},
		{"other group", resign(good, func(fc *wire.FramedContent) { fc.GroupID = []byte("other") }, nil), ErrWrongGroup},
		{"sender not a member", resign(good, func(fc *wire.FramedContent) { fc.Sender.LeafIndex = 40 }, nil), ErrInvalidMessage},
		{"sender changed, old signature", resign(good, func(fc *wire.FramedContent) { fc.Sender.LeafIndex = a.g.LeafIndex() }, nil), ErrInvalidMessage},
		{"signed with another key", resign(good, func(*wire.FramedContent) {}, mallory), ErrInvalidMessage},
		{"proposal not seen", unseen, ErrProposalNotSeen},
	} {
		epoch := o.pg.Epoch()
		if _, err := o.pg.ProcessCommit(tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if o.pg.Epoch() != epoch {
			t.Fatalf("%s: a refused commit moved the observer", tc.name)
		}
	}
	if _, err := o.pg.StageCommit(good); err != nil {
		t.Fatalf("the untampered commit: %v", err)
	}
}
