package policy

import (
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

const (
	mod   = "@mod:a.example"
	doc   = "@doc:a.example"
	nurse = "@nurse:a.example"
	pat   = "@pat:a.example"
	bot   = "@bot:a.example"
	fresh = "@fresh:b.example" // not in the room
)

// device is one client of a user.
type device struct {
	user string
	sig  []byte
	g    *mls.Group
}

// room is a group with the standard roles, its members, and the hub's
// public view of it with a Checker.
type room struct {
	t       *testing.T
	suite   mls.CipherSuite
	devices []*device
	hub     *mls.PublicGroup
	checker Checker
}

var kpOpts = &mls.KeyPackageOptions{Extensions: []uint16{ExtensionType}}

func keyPackage(t *testing.T, s mls.CipherSuite, user string) ([]byte, *mls.KeyPackagePrivate, []byte) {
	t.Helper()
	priv, _, err := mls.GenerateSignatureKey(s)
	if err != nil {
		t.Fatal(err)
	}
	kp, kpp, err := mls.NewKeyPackage(s, mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte(user)}, priv, kpOpts)
	if err != nil {
		t.Fatal(err)
	}
	return kp, kpp, priv
}

// newRoom creates a room whose moderator added one device of each other
// participant (that commit itself checked by the hub).
func newRoom(t *testing.T, s mls.CipherSuite) *room {
	t.Helper()
	pol, err := New(map[string]uint8{mod: RoleModerator, doc: RoleDoctor, nurse: RoleNurse, pat: RolePatient, bot: RoleBot})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := pol.Extension()
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := mls.GenerateSignatureKey(s)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.CreateGroup(nil, []byte("!room:a.example"), s, mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte(mod)}, priv, []mls.Extension{ext})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := g.GroupInfo(true, false)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := mls.NewPublicGroup(nil, gi, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &room{t: t, suite: s, devices: []*device{{user: mod, sig: priv, g: g}}, hub: hub}
	for _, u := range []string{doc, nurse, pat, bot} {
		if err := r.add(r.dev(mod), u, nil); err != nil {
			t.Fatalf("setting up the room, adding %s: %v", u, err)
		}
	}
	return r
}

func (r *room) dev(user string) *device {
	for _, d := range r.devices {
		if d.user == user {
			return d
		}
	}
	r.t.Fatalf("no device of %s", user)
	return nil
}

// commit has d commit opts; the hub checks it and, if allowed, sequences
// it (every member processes it, joiners join). It returns the hub's
// verdict.
func (r *room) commit(d *device, opts *mls.CommitOptions, joiners map[string]joiner) error {
	r.t.Helper()
	out, err := d.g.Commit(opts)
	if err != nil {
		r.t.Fatalf("%s commit: %v", d.user, err)
	}
	if err := r.submit(out, joiners); err != nil {
		d.g.DiscardPendingCommit()
		return err
	}
	return nil
}

func (r *room) submit(out *mls.CommitOutput, joiners map[string]joiner) error {
	r.t.Helper()
	pc, err := r.checker.CheckCommit(r.hub, out.Commit)
	if err != nil {
		return err
	}
	if err := r.hub.Merge(pc); err != nil {
		r.t.Fatal(err)
	}
	var stay []*device
	for _, o := range r.devices {
		if _, err := o.g.ProcessMessage(out.Commit); err != nil {
			if errors.Is(err, mls.ErrNotMember) {
				continue
			}
			r.t.Fatalf("%s processing an allowed commit: %v", o.user, err)
		}
		if o.g.Epoch() == r.hub.Epoch() {
			stay = append(stay, o)
		}
	}
	r.devices = stay
	rt, err := r.hub.RatchetTree()
	if err != nil {
		r.t.Fatal(err)
	}
	for user, j := range joiners {
		g, err := mls.JoinFromWelcome(nil, out.Welcome, j.kp, j.priv, rt)
		if err != nil {
			r.t.Fatalf("%s join: %v", user, err)
		}
		r.devices = append(r.devices, &device{user: user, sig: j.priv.SignatureKey, g: g})
	}
	return nil
}

// joiner is a KeyPackage and its private keys.
type joiner struct {
	kp   []byte
	priv *mls.KeyPackagePrivate
}

// add has d add a new device of user; listAs, if set, also lists the user
// in the policy with that role in the same commit.
func (r *room) add(d *device, user string, listAs *uint8) error {
	r.t.Helper()
	kp, kpp, _ := keyPackage(r.t, r.suite, user)
	p, err := mls.AddProposal(kp)
	if err != nil {
		r.t.Fatal(err)
	}
	props := []*mls.Proposal{p}
	if listAs != nil {
		props = append(props, r.policyProposal(func(p *RoomPolicy) *RoomPolicy { return p.WithParticipant(user, *listAs) }))
	}
	return r.commit(d, &mls.CommitOptions{Proposals: props}, map[string]joiner{user: {kp, kpp}})
}

func (r *room) remove(d *device, user string) error {
	r.t.Helper()
	return r.commit(d, &mls.CommitOptions{Proposals: []*mls.Proposal{mls.RemoveProposal(r.dev(user).g.LeafIndex())}}, nil)
}

// policyProposal proposes the current policy changed by f.
func (r *room) policyProposal(f func(*RoomPolicy) *RoomPolicy) *mls.Proposal {
	r.t.Helper()
	cur, err := FromExtensions(r.hub.Extensions())
	if err != nil {
		r.t.Fatal(err)
	}
	exts, err := f(cur).ReplaceIn(r.hub.Extensions())
	if err != nil {
		r.t.Fatal(err)
	}
	return mls.GroupContextExtensionsProposal(exts)
}

// forge re-signs d's commit after mutate with key (nil keeps the
// signature), using the GroupContext from a GroupInfo of the epoch.
func (r *room) forge(d *device, commit []byte, mutate func(*wire.FramedContent), key []byte) []byte {
	r.t.Helper()
	var m wire.MLSMessage
	if err := codec.Unmarshal(commit, &m); err != nil {
		r.t.Fatal(err)
	}
	mutate(&m.PublicMessage.Content)
	if key != nil {
		gib, err := d.g.GroupInfo(false, false)
		if err != nil {
			r.t.Fatal(err)
		}
		var gi wire.MLSMessage
		if err := codec.Unmarshal(gib, &gi); err != nil {
			r.t.Fatal(err)
		}
		tbs, err := m.PublicMessage.AuthenticatedContent().TBS(&gi.GroupInfo.GroupContext)
		if err != nil {
			r.t.Fatal(err)
		}
		s, err := ciphersuite.Lookup(r.suite)
		if err != nil {
			r.t.Fatal(err)
		}
		if m.PublicMessage.Auth.Signature, err = s.SignWithLabel(key, "FramedContentTBS", tbs); err != nil {
			r.t.Fatal(err)
		}
	}
	out, err := codec.Marshal(&m)
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

func role(r uint8) *uint8 { return &r }

// TestHubChecksCommitsAgainstTheRoomPolicy is the table of allowed and
// refused commits, each in a fresh room, in the classical and the
// post-quantum suites.
func TestHubChecksCommitsAgainstTheRoomPolicy(t *testing.T) {
	cases := []struct {
		name string
		run  func(r *room) error
		want error // nil: allowed
	}{
		{"moderator adds a new user listed as doctor", func(r *room) error { return r.add(r.dev(mod), fresh, role(RoleDoctor)) }, nil},
		{"moderator adds a second device of the nurse", func(r *room) error { return r.add(r.dev(mod), nurse, nil) }, nil},
		{"moderator adds a new user without listing them", func(r *room) error { return r.add(r.dev(mod), fresh, nil) }, ErrForbidden},
		{"doctor adds a new user", func(r *room) error { return r.add(r.dev(doc), fresh, role(RoleDoctor)) }, ErrForbidden},
		{"patient adds a new user", func(r *room) error { return r.add(r.dev(pat), fresh, role(RolePatient)) }, ErrForbidden},
		{"patient adds a device of the doctor", func(r *room) error { return r.add(r.dev(pat), doc, nil) }, ErrForbidden},
		{"patient adds its own second device", func(r *room) error { return r.add(r.dev(pat), pat, nil) }, nil},
		{"bot adds its own device", func(r *room) error { return r.add(r.dev(bot), bot, nil) }, ErrForbidden},
		{"moderator removes the patient", func(r *room) error { return r.remove(r.dev(mod), pat) }, nil},
		{"bot removes the patient", func(r *room) error { return r.remove(r.dev(bot), pat) }, ErrForbidden},
		{"doctor removes the nurse", func(r *room) error { return r.remove(r.dev(doc), nurse) }, ErrForbidden},
		{"patient updates its keys", func(r *room) error { return r.commit(r.dev(pat), &mls.CommitOptions{ForcePath: true}, nil) }, nil},
		{"moderator promotes the doctor to moderator", func(r *room) error {
			return r.commit(r.dev(mod), &mls.CommitOptions{Proposals: []*mls.Proposal{r.policyProposal(func(p *RoomPolicy) *RoomPolicy { return p.WithParticipant(doc, RoleModerator) })}}, nil)
		}, nil},
		{"doctor promotes itself to moderator", func(r *room) error {
			return r.commit(r.dev(doc), &mls.CommitOptions{Proposals: []*mls.Proposal{r.policyProposal(func(p *RoomPolicy) *RoomPolicy { return p.WithParticipant(doc, RoleModerator) })}}, nil)
		}, ErrForbidden},
		{"nurse gives patients the right to add", func(r *room) error {
			return r.commit(r.dev(nurse), &mls.CommitOptions{Proposals: []*mls.Proposal{r.policyProposal(func(p *RoomPolicy) *RoomPolicy {
				q := p.clone()
				rp, _ := q.Role(RolePatient)
				rp.Capabilities = []Capability{AddParticipant, AddOwnClient, RemoveOwnClient}
				return q
			})}}, nil)
		}, ErrForbidden},
		{"moderator drops the room policy", func(r *room) error {
			return r.commit(r.dev(mod), &mls.CommitOptions{Proposals: []*mls.Proposal{mls.GroupContextExtensionsProposal(nil)}}, nil)
		}, ErrForbidden},
		{"moderator unlists the patient but keeps its device", func(r *room) error {
			return r.commit(r.dev(mod), &mls.CommitOptions{Proposals: []*mls.Proposal{r.policyProposal(func(p *RoomPolicy) *RoomPolicy { return p.WithoutParticipant(pat) })}}, nil)
		}, ErrForbidden},
		{"moderator removes and unlists the patient", func(r *room) error {
			return r.commit(r.dev(mod), &mls.CommitOptions{Proposals: []*mls.Proposal{mls.RemoveProposal(r.dev(pat).g.LeafIndex()),
				r.policyProposal(func(p *RoomPolicy) *RoomPolicy { return p.WithoutParticipant(pat) })}}, nil)
		}, nil},
		{"nurse leaves: its Remove proposal committed by the doctor", func(r *room) error {
			n := r.dev(nurse)
			msg, err := n.g.Propose(mls.RemoveProposal(n.g.LeafIndex()), false)
			if err != nil {
				r.t.Fatal(err)
			}
			if _, err := r.checker.CheckProposal(r.hub, msg); err != nil {
				return err
			}
			r.broadcast(n, msg)
			return r.commit(r.dev(doc), nil, nil)
		}, nil},
		{"bot proposes adding a new user", func(r *room) error {
			kp, _, _ := keyPackage(r.t, r.suite, fresh)
			msg, err := r.dev(bot).g.ProposeAdd(kp, false)
			if err != nil {
				r.t.Fatal(err)
			}
			_, err = r.checker.CheckProposal(r.hub, msg)
			return err
		}, ErrForbidden},
		{"forged: sender is not a member", func(r *room) error {
			out, err := r.dev(doc).g.Commit(&mls.CommitOptions{ForcePath: true})
			if err != nil {
				r.t.Fatal(err)
			}
			_, err = r.checker.CheckCommit(r.hub, r.forge(r.dev(doc), out.Commit, func(fc *wire.FramedContent) { fc.Sender.LeafIndex = 99 }, nil))
			return err
		}, mls.ErrInvalidMessage},
		{"forged: the doctor signs a removal as the moderator", func(r *room) error {
			d := r.dev(doc)
			out, err := d.g.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{mls.RemoveProposal(r.dev(pat).g.LeafIndex())}})
			if err != nil {
				r.t.Fatal(err)
			}
			m := r.dev(mod).g.LeafIndex()
			_, err = r.checker.CheckCommit(r.hub, r.forge(d, out.Commit, func(fc *wire.FramedContent) { fc.Sender.LeafIndex = m }, d.sigOrFail(r)))
			return err
		}, mls.ErrInvalidMessage},
		{"forged: signed with a key that is not in the tree", func(r *room) error {
			d := r.dev(mod)
			out, err := d.g.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{mls.RemoveProposal(r.dev(pat).g.LeafIndex())}})
			if err != nil {
				r.t.Fatal(err)
			}
			_, _, other := keyPackage(r.t, r.suite, mod)
			_, err = r.checker.CheckCommit(r.hub, r.forge(d, out.Commit, func(*wire.FramedContent) {}, other))
			return err
		}, mls.ErrInvalidMessage},
		{"stale epoch", func(r *room) error {
			out, err := r.dev(mod).g.Commit(&mls.CommitOptions{ForcePath: true})
			if err != nil {
				r.t.Fatal(err)
			}
			r.dev(mod).g.DiscardPendingCommit()
			if err := r.commit(r.dev(doc), &mls.CommitOptions{ForcePath: true}, nil); err != nil {
				r.t.Fatal(err)
			}
			_, err = r.checker.CheckCommit(r.hub, out.Commit)
			return err
		}, mls.ErrWrongEpoch},
		{"proposal by reference the hub has not seen", func(r *room) error {
			msg, err := r.dev(mod).g.Propose(mls.RemoveProposal(r.dev(pat).g.LeafIndex()), true)
			if err != nil {
				r.t.Fatal(err)
			}
			if _, err := r.dev(doc).g.ProcessMessage(msg); err != nil {
				r.t.Fatal(err)
			}
			return r.commit(r.dev(doc), nil, nil)
		}, mls.ErrProposalNotSeen},
		{"external rejoin of a listed doctor's device", func(r *room) error { return r.externalJoin(doc) }, nil},
		{"external join of a user not in the room", func(r *room) error { return r.externalJoin(fresh) }, ErrForbidden},
		{"external join of the bot", func(r *room) error { return r.externalJoin(bot) }, ErrForbidden},
	}
	for _, s := range []mls.CipherSuite{mls.SuiteDefault, mls.SuiteXWing, mls.SuiteMLKEM1024MLDSA87} {
		for _, tc := range cases {
			t.Run(s.Name()+"/"+tc.name, func(t *testing.T) {
				r := newRoom(t, s)
				epoch := r.hub.Epoch()
				err := tc.run(r)
				if tc.want == nil {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					if r.hub.Epoch() == epoch && tc.name != "bot proposes adding a new user" {
						t.Fatal("allowed, but the hub did not move to the next epoch")
					}
					return
				}
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				t.Logf("refused: %v", err)
			})
		}
	}
}

// broadcast delivers a proposal of from to the other devices.
func (r *room) broadcast(from *device, msg []byte) {
	r.t.Helper()
	for _, o := range r.devices {
		if o == from {
			continue
		}
		if _, err := o.g.ProcessMessage(msg); err != nil {
			r.t.Fatalf("%s processing a proposal: %v", o.user, err)
		}
	}
}

func (d *device) sigOrFail(r *room) []byte {
	if d.sig == nil {
		r.t.Fatalf("no signature key kept for %s", d.user)
	}
	return d.sig
}

// externalJoin has a new device of user join by external commit.
func (r *room) externalJoin(user string) error {
	r.t.Helper()
	gi, err := r.dev(mod).g.GroupInfo(true, true)
	if err != nil {
		r.t.Fatal(err)
	}
	_, _, priv := keyPackage(r.t, r.suite, user)
	g, commit, err := mls.JoinExternal(nil, gi, mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte(user)}, priv,
		&mls.ExternalJoinOptions{Leaf: kpOpts})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.submit(&mls.CommitOutput{Commit: commit}, nil); err != nil {
		return err
	}
	r.devices = append(r.devices, &device{user: user, sig: priv, g: g})
	return nil
}
