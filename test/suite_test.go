package test

import (
	"errors"
	"slices"
	"testing"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/proto"
)

// TestRoomInPostQuantumSuite runs a room in the X-Wing hybrid suite 0xF001
// through invite, messages and removal against a real homeserver: the
// invitees' devices publish KeyPackages of that suite beside the default
// ones, and the hub hands out only packages of the room's suite.
func TestRoomInPostQuantumSuite(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	users := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "erin"} {
		users[u] = hs.addUser(u, "doctor")
	}
	hs.start()
	alice, bob, carol := newDevice(t, hs, users["alice"]), newDevice(t, hs, users["bob"]), newDevice(t, hs, users["carol"])
	ctx := ctxT(t)
	hybrid, err := mls.ParseCipherSuite("0xf001")
	if err != nil {
		t.Fatal(err)
	}

	// A suite whose signature scheme differs from the device key's is
	// refused before anything reaches the server.
	mldsa, err := mls.ParseCipherSuite("0xf002")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateRoomWith(ctx, "x", client.RoomOptions{Suite: mldsa}); !errors.Is(err, client.ErrUnsupportedSuite) {
		t.Fatalf("room in 0xF002 with an Ed25519 device key: %v, want ErrUnsupportedSuite", err)
	}

	room, err := alice.CreateRoomWith(ctx, "Genetic counselling", client.RoomOptions{Suite: hybrid})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"bob", "carol"} {
		if err := alice.Invite(ctx, room, users[u]); err != nil {
			t.Fatalf("invite %s: %v", u, err)
		}
	}
	bob.sync()
	carol.sync()
	for _, d := range []*device{alice, bob, carol} {
		info, err := d.Room(room)
		if err != nil {
			t.Fatalf("%s: %v", d.user, err)
		}
		if info.Suite != hybrid || len(info.Members) != 3 || info.Epoch != 2 {
			t.Fatalf("%s sees suite %#04x, %d members at epoch %d; want 0xf001, 3 at epoch 2", d.user, uint16(info.Suite), len(info.Members), info.Epoch)
		}
	}

	secrets := []string{"PLAINTEXT-pq-alice-brca1-variant", "PLAINTEXT-pq-bob-pedigree", "PLAINTEXT-pq-carol-risk-estimate"}
	exchangeSecrets(t, room, []*device{alice, bob, carol}, secrets)

	// Carol is removed and reads nothing sent afterwards.
	if err := alice.Remove(ctx, room, users["carol"]); err != nil {
		t.Fatal(err)
	}
	after := "PLAINTEXT-pq-after-carol-left"
	bob.sync()
	bob.send(room, after)
	msgs := carol.sync()
	if !slices.ContainsFunc(msgs, func(m client.Message) bool { return m.Type == client.TypeRemoved }) {
		t.Errorf("carol was not told of her removal: %+v", msgs)
	}
	if got := contents(msgs, room); len(got) != 0 {
		t.Errorf("removed carol decrypted %q", got)
	}
	if got := contents(alice.sync(), room); !slices.Equal(got, []string{after}) {
		t.Errorf("alice after the removal got %q", got)
	}

	// A device that published KeyPackages only in the default suite (as
	// clients before per-room suites do) cannot be added to this room: the
	// hub hands out no package of another suite.
	erin := hs.login(users["erin"])
	if _, err := erin.UploadKeyPackages(ctx, [][]byte{[]byte("erin-default-suite-kp")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := alice.Invite(ctx, room, users["erin"]); !api.IsCode(err, proto.ErrNoKeyPackage) {
		t.Errorf("invite of a device without 0xf001 packages: %v, want M_NO_KEY_PACKAGE", err)
	}
	if n, err := erin.CountKeyPackages(ctx); err != nil || n.Unclaimed != 1 {
		t.Errorf("erin's default-suite package after the refused invite: %+v %v, want it unclaimed", n, err)
	}

	for _, s := range append(secrets, after) {
		hs.assertNoPlaintext([]byte(s))
	}
}

// TestFederatedRoomInPostQuantumSuite adds a user of another homeserver to
// a 0xF001 room: the hub forwards the claim with its suite, and the
// invitee's server hands out a package of that suite.
func TestFederatedRoomInPostQuantumSuite(t *testing.T) {
	f := newFederation(t, freiburg, heidelberg)
	weber, yilmaz := f.servers[freiburg].addUser("weber", "doctor"), f.servers[heidelberg].addUser("yilmaz", "doctor")
	f.start()
	hub, remote := newDevice(t, f.servers[freiburg], weber), newDevice(t, f.servers[heidelberg], yilmaz)
	ctx := ctxT(t)
	room, err := hub.CreateRoomWith(ctx, "Cross-site tumour board", client.RoomOptions{Suite: 0xF001})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Invite(ctx, room, yilmaz); err != nil {
		t.Fatalf("invite %s: %v", yilmaz, err)
	}
	remote.syncUntil(func(m client.Message) bool { return m.Type == client.TypeJoined && m.Room == room })
	if info, err := remote.Room(room); err != nil || info.Suite != 0xF001 || len(info.Members) != 2 {
		t.Fatalf("remote member sees %+v %v, want 2 members in suite 0xf001", info, err)
	}
	const secret = "PLAINTEXT-pq-federated-staging"
	remote.send(room, secret)
	hub.syncUntil(func(m client.Message) bool { return m.Room == room && string(m.Content) == secret })
	for _, n := range []string{freiburg, heidelberg} {
		f.servers[n].assertNoPlaintext([]byte(secret))
	}
}
