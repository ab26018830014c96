package test

import (
	"crypto/rand"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/crypto/identity"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/proto"
)

// TestServerCannotInjectAMember plays a malicious homeserver operator with
// full access to the database: it plants a KeyPackage for a device of Bob
// that Bob never had, and appends a commit that adds a device of its own to
// a room. Every client refuses both, and the room goes on working.
func TestServerCannotInjectAMember(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	a, b := newDevice(t, hs, alice), newDevice(t, hs, bob)
	ctx := ctxT(t)
	room, err := a.CreateRoom(ctx, "Second opinion")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Invite(ctx, room, bob); err != nil {
		t.Fatal(err)
	}
	b.sync()
	a.send(room, "PLAINTEXT-before-attack")
	b.sync()

	// The operator's own identity key, device key and KeyPackages.
	evilID, _ := identity.GenerateKey()
	sigPriv, sigPub, _ := mls.GenerateSignatureKey(client.DefaultSuite)
	dc, _ := evilID.Certify(bob, "EVILDEV", sigPub)
	evilCred := mls.Credential{CredentialType: mls.CredentialBasic, Identity: dc.Marshal()}
	plantedKP, _, err := mls.NewKeyPackage(client.DefaultSuite, evilCred, sigPriv, nil)
	if err != nil {
		t.Fatal(err)
	}
	sigPriv2, sigPub2, _ := mls.GenerateSignatureKey(client.DefaultSuite)
	dc2, _ := evilID.Certify(bob, "EVILDEV2", sigPub2)
	addKP, _, _ := mls.NewKeyPackage(client.DefaultSuite, mls.Credential{CredentialType: mls.CredentialBasic, Identity: dc2.Marshal()}, sigPriv2, nil)
	// A commit adding the operator's device, built on a group of the same
	// id that the operator controls, brought to the room's epoch and
	// claiming to come from Alice's leaf.
	info, _ := a.Room(room)
	evilGroup, err := mls.CreateGroup(nil, []byte(room), client.DefaultSuite, evilCred, sigPriv, nil)
	if err != nil {
		t.Fatal(err)
	}
	for evilGroup.Epoch() < info.Epoch {
		if _, err := evilGroup.Commit(&mls.CommitOptions{ForcePath: true}); err != nil {
			t.Fatal(err)
		}
		evilGroup.MergePendingCommit()
	}
	add, _ := mls.AddProposal(addKP)
	forged, err := evilGroup.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{add}})
	if err != nil {
		t.Fatal(err)
	}

	hs.stop(syscall.SIGTERM)
	db, err := sql.Open("sqlite", filepath.Join(hs.dir, "medicus.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	token := make([]byte, 32)
	rand.Read(token)
	mustExec(t, db, `INSERT INTO devices (user_id, device_id, token_hash, created_at, last_seen_at) VALUES (?, 'EVILDEV', ?, ?, ?)`, bob, token, now, now)
	mustExec(t, db, `INSERT INTO key_packages (user_id, device_id, data) VALUES (?, 'EVILDEV', ?)`, bob, plantedKP)
	// The forged commit goes into the log in Alice's name and device.
	mustExec(t, db, `UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?`, room)
	mustExec(t, db, `INSERT INTO events (room_id, seq, sender, device_id, txn_id, kind, body, ts)
		SELECT id, last_seq, ?, ?, 'forged', ?, ?, ? FROM rooms WHERE id = ?`, alice, a.DeviceID(), proto.KindMLSCommit, forged.Commit, now, room)
	db.Close()
	hs.start()

	// Both clients refuse the forged commit; membership is unchanged.
	for _, d := range []*device{a, b} {
		msgs := d.sync()
		if r := refused(msgs); len(r) != 1 || !strings.Contains(r[0].Notice, "mls-commit") {
			t.Errorf("%s did not refuse the forged commit: %+v", d.user, msgs)
		}
		info, _ := d.Room(room)
		if len(info.Members) != 2 || len(info.Members[bob]) != 1 || slices.Contains(info.Members[bob], "EVILDEV") {
			t.Errorf("%s's group changed: %v", d.user, info.Members)
		}
	}

	// Alice invites Bob into a new room: the claim hands her the planted
	// KeyPackage beside Bob's real one. She refuses it, warns, and adds
	// only Bob's real device.
	room2, err := a.CreateRoom(ctx, "Follow-up")
	if err != nil {
		t.Fatal(err)
	}
	err = a.Invite(ctx, room2, bob)
	if !errors.Is(err, client.ErrIdentityChanged) {
		t.Fatalf("invite with a planted key package: %v, want ErrIdentityChanged", err)
	}
	if w := a.Warnings(); len(w) != 1 || w[0].UserID != bob {
		t.Errorf("warnings: %+v", w)
	}
	info2, _ := a.Room(room2)
	if !slices.Equal(info2.Members[bob], []string{b.DeviceID()}) {
		t.Errorf("room 2 members of bob: %v, want only %s", info2.Members[bob], b.DeviceID())
	}
	// The rooms still work.
	b.sync()
	a.send(room, "PLAINTEXT-after-attack")
	a.send(room2, "PLAINTEXT-room-two")
	got := contents(b.sync(), "")
	all, _ := b.History(ctx, room, 1, 100)
	all2, _ := b.History(ctx, room2, 1, 100)
	texts := contents(append(all, all2...), "")
	for _, want := range []string{"PLAINTEXT-after-attack", "PLAINTEXT-room-two"} {
		if !slices.Contains(texts, want) {
			t.Errorf("bob lacks %q after the attack (got %q, %q)", want, texts, got)
		}
	}
	ident, err := b.Verify(ctx, alice, false)
	if err != nil || !ident.Known || len(ident.SafetyNumber) != 71 {
		t.Errorf("safety number: %+v, %v", ident, err)
	}
	identA, _ := a.Verify(ctx, bob, false)
	if identA.SafetyNumber != ident.SafetyNumber {
		t.Errorf("alice and bob see different safety numbers: %q vs %q", identA.SafetyNumber, ident.SafetyNumber)
	}
	hs.assertNoPlaintext([]byte("PLAINTEXT-"))
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}
