package server

import (
	"errors"
	"fmt"
	"testing"

	"github.com/medicus-health/medicus/crypto/identity"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/mls/policy"
	"github.com/medicus-health/medicus/proto"
)

const (
	polMod   = "@mod:a.example"
	polDoc   = "@doc:a.example"
	polPat   = "@pat:a.example"
	polBot   = "@bot:a.example"
	polFresh = "@fresh:b.example"
)

// policyDevice is one medicus device in a room's MLS group.
type policyDevice struct {
	user string
	g    *mls.Group
}

// policyRoom is a room's group with medicus device credentials and the
// hub's public view of it.
type policyRoom struct {
	t     testing.TB
	ids   map[string]*identity.Key
	devs  []*policyDevice
	hub   *mls.PublicGroup
	nextD int
	// groupID is the room's id ("!room:a.example" by default).
	groupID string
	// send, if set, submits each commit to a real homeserver first; the
	// local hub view then follows what it accepted.
	send func(commit []byte, epoch uint64) error
}

// policyKeyPackage makes a KeyPackage of a new device of user, certified
// by the user's identity key; with certifyOther the credential certifies
// another signature key than the one the package is signed with.
func (r *policyRoom) keyPackage(user string, certifyOther bool) ([]byte, *mls.KeyPackagePrivate) {
	r.t.Helper()
	cred, sig := r.credential(user, certifyOther)
	kp, kpp, err := mls.NewKeyPackage(mls.SuiteDefault, cred, sig, &mls.KeyPackageOptions{Extensions: []uint16{policy.ExtensionType}})
	if err != nil {
		r.t.Fatal(err)
	}
	return kp, kpp
}

func (r *policyRoom) credential(user string, certifyOther bool) (mls.Credential, []byte) {
	r.t.Helper()
	id, ok := r.ids[user]
	if !ok {
		var err error
		if id, err = identity.GenerateKey(); err != nil {
			r.t.Fatal(err)
		}
		r.ids[user] = id
	}
	priv, pub, err := mls.GenerateSignatureKey(mls.SuiteDefault)
	if err != nil {
		r.t.Fatal(err)
	}
	if certifyOther {
		if _, pub, err = mls.GenerateSignatureKey(mls.SuiteDefault); err != nil {
			r.t.Fatal(err)
		}
	}
	r.nextD++
	dc, err := id.Certify(user, fmt.Sprintf("DEV%d", r.nextD), pub)
	if err != nil {
		r.t.Fatal(err)
	}
	return mls.Credential{CredentialType: mls.CredentialBasic, Identity: dc.Marshal()}, priv
}

// newPolicyRoom: the moderator creates the room with the policy and adds
// the doctor, the patient and the bot in one commit the hub checks.
func newPolicyRoom(t *testing.T) *policyRoom {
	t.Helper()
	r := &policyRoom{t: t, ids: map[string]*identity.Key{}}
	r.create()
	return r
}

// create creates the group and has the moderator add the others.
func (r *policyRoom) create() {
	t := r.t
	g, _ := r.group(polMod)
	gi, err := g.GroupInfo(true, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.hub, err = mls.NewPublicGroup(nil, gi, nil); err != nil {
		t.Fatal(err)
	}
	r.devs = []*policyDevice{{user: polMod, g: g}}
	if err := r.add(polMod, false, polDoc, polPat, polBot); err != nil {
		t.Fatalf("setting up the room: %v", err)
	}
}

// group creates a group with the room's id and policy, user its creator.
func (r *policyRoom) group(user string) (*mls.Group, []byte) {
	r.t.Helper()
	pol, err := policy.New(map[string]uint8{polMod: policy.RoleModerator, polDoc: policy.RoleDoctor, polPat: policy.RolePatient, polBot: policy.RoleBot})
	if err != nil {
		r.t.Fatal(err)
	}
	ext, err := pol.Extension()
	if err != nil {
		r.t.Fatal(err)
	}
	cred, sig := r.credential(user, false)
	id := r.groupID
	if id == "" {
		id = "!room:a.example"
	}
	g, err := mls.CreateGroup(nil, []byte(id), mls.SuiteDefault, cred, sig, []mls.Extension{ext})
	if err != nil {
		r.t.Fatal(err)
	}
	return g, sig
}

func (r *policyRoom) dev(user string) *policyDevice {
	for _, d := range r.devs {
		if d.user == user {
			return d
		}
	}
	r.t.Fatalf("no device of %s", user)
	return nil
}

// commit has a device of user commit props; the hub checks the commit and,
// if it is allowed, merges it and every member processes it.
func (r *policyRoom) commit(user string, props []*mls.Proposal, joiners map[string][2]any) error {
	r.t.Helper()
	d := r.dev(user)
	epoch := d.g.Epoch()
	out, err := d.g.Commit(&mls.CommitOptions{Proposals: props, ForcePath: len(props) == 0})
	if err != nil {
		r.t.Fatalf("%s commit: %v", user, err)
	}
	if r.send != nil {
		if err := r.send(out.Commit, epoch); err != nil {
			d.g.DiscardPendingCommit()
			return err
		}
	}
	pc, err := CheckRoomCommit(r.hub, out.Commit)
	if err != nil {
		d.g.DiscardPendingCommit()
		return err
	}
	if err := r.hub.Merge(pc); err != nil {
		r.t.Fatal(err)
	}
	var stay []*policyDevice
	for _, o := range r.devs {
		if _, err := o.g.ProcessMessage(out.Commit); err != nil && !errors.Is(err, mls.ErrNotMember) {
			r.t.Fatalf("%s processing an allowed commit: %v", o.user, err)
		}
		if o.g.Epoch() == r.hub.Epoch() {
			stay = append(stay, o)
		}
	}
	r.devs = stay
	rt, err := r.hub.RatchetTree()
	if err != nil {
		r.t.Fatal(err)
	}
	for u, j := range joiners {
		g, err := mls.JoinFromWelcome(nil, out.Welcome, j[0].([]byte), j[1].(*mls.KeyPackagePrivate), rt)
		if err != nil {
			r.t.Fatalf("%s join: %v", u, err)
		}
		r.devs = append(r.devs, &policyDevice{user: u, g: g})
	}
	return nil
}

// add has user's device add a device of each of users; new users are
// listed in the policy as doctors in the same commit.
func (r *policyRoom) add(user string, certifyOther bool, users ...string) error {
	r.t.Helper()
	var props []*mls.Proposal
	joiners := map[string][2]any{}
	pol, err := policy.FromExtensions(r.hub.Extensions())
	if err != nil {
		r.t.Fatal(err)
	}
	listed := pol
	for _, u := range users {
		kp, kpp := r.keyPackage(u, certifyOther)
		p, err := mls.AddProposal(kp)
		if err != nil {
			r.t.Fatal(err)
		}
		props = append(props, p)
		joiners[u] = [2]any{kp, kpp}
		if _, ok := pol.RoleOf(u); !ok {
			listed = listed.WithParticipant(u, policy.RoleDoctor)
		}
	}
	if listed != pol {
		exts, err := listed.ReplaceIn(r.hub.Extensions())
		if err != nil {
			r.t.Fatal(err)
		}
		props = append(props, mls.GroupContextExtensionsProposal(exts))
	}
	return r.commit(user, props, joiners)
}

func (r *policyRoom) remove(user, target string) error {
	r.t.Helper()
	return r.commit(user, []*mls.Proposal{mls.RemoveProposal(r.dev(target).g.LeafIndex())}, nil)
}

// outsiderCommit builds a group of the room's id outside the room, with
// creator's user id in the creator's leaf (under a fresh signature key),
// grown by one commit adding extra devices to reach the hub's epoch 1;
// then the device at leaf commits a self-update, which is returned.
func (r *policyRoom) outsiderCommit(leaf uint32, extra int) []byte {
	r.t.Helper()
	g, _ := r.group(polMod)
	var props []*mls.Proposal
	var kps [][]byte
	var privs []*mls.KeyPackagePrivate
	for range extra {
		kp, kpp := r.keyPackage(polDoc, false)
		p, err := mls.AddProposal(kp)
		if err != nil {
			r.t.Fatal(err)
		}
		props, kps, privs = append(props, p), append(kps, kp), append(privs, kpp)
	}
	out, err := g.Commit(&mls.CommitOptions{Proposals: props, InlineTree: true})
	if err != nil {
		r.t.Fatal(err)
	}
	if err := g.MergePendingCommit(); err != nil {
		r.t.Fatal(err)
	}
	if leaf > 0 {
		if g, err = mls.JoinFromWelcome(nil, out.Welcome, kps[leaf-1], privs[leaf-1], nil); err != nil {
			r.t.Fatal(err)
		}
	}
	if g.Epoch() != r.hub.Epoch() {
		r.t.Fatalf("outsider group at epoch %d, hub at %d", g.Epoch(), r.hub.Epoch())
	}
	c, err := g.Commit(&mls.CommitOptions{ForcePath: true})
	if err != nil {
		r.t.Fatal(err)
	}
	return c.Commit
}

// TestHubRoomPolicyOnMedicusCredentials is the hub's commit check with real
// MLS groups of medicus device credentials: allowed and refused commits,
// and forged ones.
func TestHubRoomPolicyOnMedicusCredentials(t *testing.T) {
	cases := []struct {
		name string
		run  func(r *policyRoom) error
		want error // nil: allowed
		// before is how many allowed commits the case makes before the
		// one it judges.
		before uint64
	}{
		{"moderator adds a new user listed as doctor", func(r *policyRoom) error { return r.add(polMod, false, polFresh) }, nil, 0},
		{"moderator adds the doctor's second device", func(r *policyRoom) error { return r.add(polMod, false, polDoc) }, nil, 0},
		{"patient adds a new user", func(r *policyRoom) error { return r.add(polPat, false, polFresh) }, policy.ErrForbidden, 0},
		{"doctor adds a new user", func(r *policyRoom) error { return r.add(polDoc, false, polFresh) }, policy.ErrForbidden, 0},
		{"moderator removes the patient", func(r *policyRoom) error { return r.remove(polMod, polPat) }, nil, 0},
		{"bot removes the patient", func(r *policyRoom) error { return r.remove(polBot, polPat) }, policy.ErrForbidden, 0},
		{"patient updates its keys", func(r *policyRoom) error { return r.commit(polPat, nil, nil) }, nil, 0},
		{"moderator adds a device whose credential certifies another key", func(r *policyRoom) error { return r.add(polMod, true, polDoc) }, policy.ErrForbidden, 0},
		{"forged: sender leaf is not a member", func(r *policyRoom) error {
			_, err := CheckRoomCommit(r.hub, r.outsiderCommit(6, 6))
			return err
		}, mls.ErrInvalidMessage, 0},
		{"forged: the moderator's leaf, signed with another key", func(r *policyRoom) error {
			_, err := CheckRoomCommit(r.hub, r.outsiderCommit(0, 3))
			return err
		}, mls.ErrInvalidMessage, 0},
		{"stale epoch", func(r *policyRoom) error {
			out, err := r.dev(polMod).g.Commit(&mls.CommitOptions{ForcePath: true})
			if err != nil {
				r.t.Fatal(err)
			}
			r.dev(polMod).g.DiscardPendingCommit()
			if err := r.commit(polDoc, nil, nil); err != nil {
				r.t.Fatal(err)
			}
			_, err = CheckRoomCommit(r.hub, out.Commit)
			return err
		}, mls.ErrWrongEpoch, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newPolicyRoom(t)
			epoch := r.hub.Epoch() + tc.before
			err := tc.run(r)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if r.hub.Epoch() != epoch+1 {
					t.Fatalf("allowed, but the hub is at epoch %d, want %d", r.hub.Epoch(), epoch+1)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Logf("refused: %v", err)
			if r.hub.Epoch() != epoch {
				t.Fatalf("refused, but the hub moved to epoch %d", r.hub.Epoch())
			}
		})
	}
}

// TestHubChecksCommitsOfPolicyRooms drives the hub over HTTP: a moderator
// publishes the GroupInfo of a room with a policy, after which the hub
// (across a restart: the public group is in SQLite) accepts allowed
// commits and refuses the others with 403 M_FORBIDDEN, while rooms without
// a published group are not checked.
func TestHubChecksCommitsOfPolicyRooms(t *testing.T) {
	e := newEnv(t, nil)
	doc, nurse := e.login("doc"), e.login("nurse")
	roomID := e.createRoom(doc.AccessToken)
	path := "/v1/rooms/" + roomID + "/mls/group_info"
	r := &policyRoom{t: t, ids: map[string]*identity.Key{}, groupID: roomID}
	g, _ := r.group(polMod)
	gi, err := g.GroupInfo(true, false)
	if err != nil {
		t.Fatal(err)
	}
	other := &policyRoom{t: t, ids: map[string]*identity.Key{}, groupID: "!other:a.example"}
	og, _ := other.group(polMod)
	ogi, err := og.GroupInfo(true, false)
	if err != nil {
		t.Fatal(err)
	}
	cred, sig := r.credential(polMod, false)
	plain, err := mls.CreateGroup(nil, []byte(roomID), mls.SuiteDefault, cred, sig, nil)
	if err != nil {
		t.Fatal(err)
	}
	pgi, err := plain.GroupInfo(true, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		gi          []byte
		status      int
		code        string
	}{
		{"not a member", nurse.AccessToken, gi, 403, proto.ErrForbidden},
		{"not a group info", doc.AccessToken, []byte("not mls"), 400, proto.ErrInvalidParam},
		{"another group", doc.AccessToken, ogi, 400, proto.ErrInvalidParam},
		{"no room policy", doc.AccessToken, pgi, 400, proto.ErrInvalidParam},
	} {
		if status, code := e.call("PUT", path, tc.token, proto.GroupInfoRequest{GroupInfo: tc.gi}, nil); status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}
	e.must("PUT", path, doc.AccessToken, proto.GroupInfoRequest{GroupInfo: gi}, nil)
	if status, code := e.call("PUT", path, doc.AccessToken, proto.GroupInfoRequest{GroupInfo: gi}, nil); status != 409 || code != proto.ErrConflict {
		t.Errorf("second publication: %d %s, want 409 M_CONFLICT", status, code)
	}

	txn := 0
	var lastTxn string
	var lastBody []byte
	var lastEpoch uint64
	r.send = func(commit []byte, epoch uint64) error {
		txn++
		lastTxn, lastBody, lastEpoch = fmt.Sprintf("c%d", txn), commit, epoch
		status, code := e.call("PUT", "/v1/rooms/"+roomID+"/send/"+lastTxn, doc.AccessToken, proto.SendRequest{Kind: proto.KindMLSCommit, Body: commit, Epoch: &epoch}, nil)
		switch {
		case status == 200:
			return nil
		case status == 403 && code == proto.ErrForbidden:
			return fmt.Errorf("hub: %w", policy.ErrForbidden)
		default:
			return fmt.Errorf("hub: HTTP %d %s", status, code)
		}
	}
	r.hub, err = mls.NewPublicGroup(nil, gi, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.devs = []*policyDevice{{user: polMod, g: g}}
	if err := r.add(polMod, false, polDoc, polPat, polBot); err != nil {
		t.Fatalf("moderator adds the others: %v", err)
	}
	// A retried transaction of an accepted commit gets its event back.
	var sr proto.SendResponse
	e.must("PUT", "/v1/rooms/"+roomID+"/send/"+lastTxn, doc.AccessToken, proto.SendRequest{Kind: proto.KindMLSCommit, Body: lastBody, Epoch: &lastEpoch}, &sr)
	if sr.Seq == 0 {
		t.Error("retried commit got no sequence number")
	}
	ahead := lastEpoch + 5
	if status, code := e.call("PUT", "/v1/rooms/"+roomID+"/send/ahead", doc.AccessToken, proto.SendRequest{Kind: proto.KindMLSCommit, Body: lastBody, Epoch: &ahead}, nil); status != 409 || code != proto.ErrStaleEpoch {
		t.Errorf("commit for a later epoch: %d %s, want 409 M_STALE_EPOCH", status, code)
	}
	e.restart()
	if err := r.remove(polBot, polPat); !errors.Is(err, policy.ErrForbidden) {
		t.Errorf("bot removes the patient after a restart: %v, want refused", err)
	}
	if err := r.add(polPat, false, polFresh); !errors.Is(err, policy.ErrForbidden) {
		t.Errorf("patient adds a new user: %v, want refused", err)
	}
	if err := r.remove(polMod, polPat); err != nil {
		t.Errorf("moderator removes the patient: %v", err)
	}
	// A room without a published group is not checked: any commit body
	// with the right epoch is sequenced.
	plainRoom := e.createRoom(doc.AccessToken)
	zero := uint64(0)
	e.must("PUT", "/v1/rooms/"+plainRoom+"/send/x", doc.AccessToken, proto.SendRequest{Kind: proto.KindMLSCommit, Body: []byte("opaque"), Epoch: &zero}, nil)
}

// BenchmarkHubCommitCheck measures the hub's work per commit in a room of
// 50 users with a policy: load the public group from its serialized form,
// check a self-update commit (CheckRoomCommit), merge and serialize it.
func BenchmarkHubCommitCheck(b *testing.B) {
	r := &policyRoom{t: b, ids: map[string]*identity.Key{}}
	r.create()
	var users []string
	for i := range 46 {
		users = append(users, fmt.Sprintf("@u%02d:a.example", i))
	}
	if err := r.add(polMod, false, users...); err != nil {
		b.Fatal(err)
	}
	mod := r.dev(polMod)
	r.devs = []*policyDevice{mod} // only the committer follows the group
	data, err := r.hub.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		out, err := mod.g.Commit(&mls.CommitOptions{ForcePath: true})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		pg, err := mls.UnmarshalPublicGroup(nil, data)
		if err != nil {
			b.Fatal(err)
		}
		pc, err := CheckRoomCommit(pg, out.Commit)
		if err != nil {
			b.Fatal(err)
		}
		if err := pg.Merge(pc); err != nil {
			b.Fatal(err)
		}
		if data, err = pg.Marshal(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := mod.g.MergePendingCommit(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(len(data)), "state-bytes")
}
