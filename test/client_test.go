package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/state"
)

// device is a client session of one user, with its profile directory.
type device struct {
	t       testing.TB
	hs      *homeserver
	user    string
	profile string
	cfg     client.Config
	*client.Session
}

// newDevice logs user in on a fresh profile, locked with a new age key file
// (a passphrase works the same, at scrypt's deliberate cost per open).
func newDevice(t *testing.T, hs *homeserver, user string) *device {
	t.Helper()
	return newDeviceWith(t, hs, user, nil)
}

func newDeviceWith(t *testing.T, hs *homeserver, user string, opts *client.LoginOptions) *device {
	t.Helper()
	return newDeviceTB(t, hs, user, opts)
}

func newDeviceTB(t testing.TB, hs *homeserver, user string, opts *client.LoginOptions) *device {
	t.Helper()
	if opts == nil {
		opts = &client.LoginOptions{DeviceName: "e2e"}
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "state.key")
	if err := state.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	cfg := client.Config{ProfileDir: filepath.Join(dir, "profile"), Lock: state.Lock{KeyFile: keyFile}}
	ca, err := os.ReadFile(filepath.Join(hs.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := client.Login(ctx, cfg, "https://"+hs.addr, ca, user, testPassword, opts)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	d := &device{t: t, hs: hs, user: user, profile: cfg.ProfileDir, cfg: cfg, Session: s}
	t.Cleanup(func() { d.Close() })
	return d
}

// sync runs one sync round and returns the decrypted contents it brought,
// per room.
func (d *device) sync() []client.Message {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	msgs, err := d.Sync(ctx)
	if err != nil {
		d.t.Fatalf("%s sync: %v", d.user, err)
	}
	return msgs
}

func contents(msgs []client.Message, room string) []string {
	var out []string
	for _, m := range msgs {
		if (room == "" || m.Room == room) && m.Type == client.TypeContent {
			out = append(out, string(m.Content))
		}
	}
	return out
}

func refused(msgs []client.Message) []client.Message {
	var out []client.Message
	for _, m := range msgs {
		if m.Type == client.TypeRefused {
			out = append(out, m)
		}
	}
	return out
}

func (d *device) send(room, text string) {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := d.Send(ctx, room, []byte(text)); err != nil {
		d.t.Fatalf("%s send: %v", d.user, err)
	}
}

func TestThreeUsersRemoveAndLateJoiner(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	users := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		users[u] = hs.addUser(u, "doctor")
	}
	hs.start()
	alice, bob, carol, dave := newDevice(t, hs, users["alice"]), newDevice(t, hs, users["bob"]), newDevice(t, hs, users["carol"]), newDevice(t, hs, users["dave"])
	ctx := ctxT(t)

	room, err := alice.CreateRoom(ctx, "Tumour board")
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
		if len(info.Members) != 3 || info.Epoch != 2 {
			t.Fatalf("%s sees %+v, want 3 members at epoch 2", d.user, info)
		}
	}
	secrets := []string{"PLAINTEXT-alice-biopsy-result", "PLAINTEXT-bob-ct-findings", "PLAINTEXT-carol-recommendation"}
	exchangeSecrets(t, room, []*device{alice, bob, carol}, secrets)

	// Carol is removed: she learns it and reads nothing sent afterwards.
	if err := alice.Remove(ctx, room, users["carol"]); err != nil {
		t.Fatal(err)
	}
	after := "PLAINTEXT-after-carol-left"
	bob.sync()
	bob.send(room, after)
	msgs := carol.sync()
	if !slices.ContainsFunc(msgs, func(m client.Message) bool { return m.Type == client.TypeRemoved }) {
		t.Errorf("carol was not told of her removal: %+v", msgs)
	}
	if got := contents(msgs, room); len(got) != 0 {
		t.Errorf("removed carol decrypted %q", got)
	}
	if _, err := carol.Send(ctx, room, []byte("x")); err == nil {
		t.Error("removed carol could still send")
	}
	if got := contents(alice.sync(), room); !slices.Equal(got, []string{after}) {
		t.Errorf("alice after the removal got %q", got)
	}

	// Dave joins later: he reads what follows, nothing from before.
	if err := alice.Invite(ctx, room, users["dave"]); err != nil {
		t.Fatal(err)
	}
	dave.sync()
	alice.send(room, "PLAINTEXT-welcome-dave")
	got := contents(dave.sync(), room)
	if !slices.Equal(got, []string{"PLAINTEXT-welcome-dave"}) {
		t.Errorf("late joiner got %q, want only the message after his join", got)
	}
	hist, err := dave.History(ctx, room, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		for _, s := range append(secrets, after) {
			if bytes.Contains(m.Content, []byte(s)) {
				t.Errorf("late joiner's history holds %q", s)
			}
		}
	}
	for _, s := range append(secrets, after, "PLAINTEXT-welcome-dave") {
		hs.assertNoPlaintext([]byte(s))
	}
}

func TestConcurrentCommitsConverge(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	names := []string{"alice", "bob", "carol", "dave", "erin"}
	users := map[string]string{}
	for _, u := range names {
		users[u] = hs.addUser(u, "doctor")
	}
	hs.start()
	devs := map[string]*device{}
	for _, u := range names {
		devs[u] = newDevice(t, hs, users[u])
	}
	ctx := ctxT(t)
	room, err := devs["alice"].CreateRoom(ctx, "ICU handover")
	if err != nil {
		t.Fatal(err)
	}
	if err := devs["alice"].Invite(ctx, room, users["bob"]); err != nil {
		t.Fatal(err)
	}
	devs["bob"].sync()
	// Alice invites while Bob and Carol's future peers update their keys at
	// the same time; the hub takes one commit per epoch and each loser
	// catches up and retries.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	wg.Go(func() { errs[0] = devs["alice"].Invite(ctx, room, users["carol"]) })
	wg.Go(func() {
		for range 5 {
			if err := devs["bob"].SelfUpdate(ctx, room); err != nil {
				errs[1] = err
				return
			}
		}
	})
	wg.Go(func() {
		for range 3 {
			if err := devs["alice"].SelfUpdate(ctx, room); err != nil {
				errs[2] = err
				return
			}
		}
	})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := devs["alice"].Invite(ctx, room, users["dave"]); err != nil {
		t.Fatal(err)
	}
	for _, u := range names[:4] {
		devs[u].sync()
	}
	var epoch uint64
	for i, u := range names[:4] {
		info, err := devs[u].Room(room)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if len(info.Members) != 4 {
			t.Errorf("%s sees members %v", u, info.Members)
		}
		if i == 0 {
			epoch = info.Epoch
		} else if info.Epoch != epoch {
			t.Errorf("%s is at epoch %d, alice at %d", u, info.Epoch, epoch)
		}
	}
	if want := uint64(1 + 1 + 5 + 3 + 1); epoch != want {
		t.Errorf("epoch %d, want %d (one per accepted commit)", epoch, want)
	}
	for i, u := range names[:4] {
		devs[u].send(room, fmt.Sprintf("PLAINTEXT-from-%d", i))
	}
	for _, u := range names[:4] {
		if got := contents(devs[u].sync(), room); len(got) != 3 {
			t.Errorf("%s got %q, want the 3 others' messages", u, got)
		}
	}
}

func TestOfflineDeviceCatchesUpManyEpochs(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "nurse")
	hs.start()
	a, b := newDevice(t, hs, alice), newDevice(t, hs, bob)
	ctx := ctxT(t)
	room, err := a.CreateRoom(ctx, "Ward 3")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Invite(ctx, room, bob); err != nil {
		t.Fatal(err)
	}
	b.sync()
	// Bob goes offline (closes his session) while 40 epochs pass.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 40 {
		if err := a.SelfUpdate(ctx, room); err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("PLAINTEXT-epoch-%d", i)
		a.send(room, msg)
		want = append(want, msg)
	}
	hs.stop(9) // and the server restarts in between
	hs.start()
	s, err := client.Open(ctx, b.cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Session = s
	msgs := b.sync()
	if got := contents(msgs, room); !slices.Equal(got, want) {
		t.Fatalf("after 40 epochs offline bob got %d messages %q", len(got), got)
	}
	if r := refused(msgs); len(r) != 0 {
		t.Fatalf("refused while catching up: %+v", r)
	}
	info, _ := b.Room(room)
	ainfo, _ := a.Room(room)
	if info.Epoch != ainfo.Epoch {
		t.Fatalf("bob at epoch %d, alice at %d", info.Epoch, ainfo.Epoch)
	}
	_ = context.Background
}

func TestNewDeviceJoinsRoomsAndEphemeralMessages(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	a1, b := newDevice(t, hs, alice), newDevice(t, hs, bob)
	ctx := ctxT(t)
	room, err := a1.CreateRoom(ctx, "Consult")
	if err != nil {
		t.Fatal(err)
	}
	if err := a1.Invite(ctx, room, bob); err != nil {
		t.Fatal(err)
	}
	b.sync()
	// Alice's second device imports her identity key; her first device
	// adds it to the room when it hears of it.
	a2 := newDeviceWith(t, hs, alice, &client.LoginOptions{DeviceName: "tablet", Identity: a1.IdentityKey()})
	a1.sync()
	msgs := a2.sync()
	if !slices.ContainsFunc(msgs, func(m client.Message) bool { return m.Type == client.TypeJoined && m.Room == room }) {
		t.Fatalf("second device did not join: %+v", msgs)
	}
	b.sync()
	info, _ := b.Room(room)
	if len(info.Members[alice]) != 2 {
		t.Fatalf("bob sees alice's devices %v", info.Members[alice])
	}
	b.send(room, "PLAINTEXT-to-both-devices")
	for _, d := range []*device{a1, a2} {
		if got := contents(d.sync(), room); !slices.Equal(got, []string{"PLAINTEXT-to-both-devices"}) {
			t.Errorf("alice device %s got %q", d.DeviceID(), got)
		}
	}
	// An ephemeral message reaches both of alice's devices and no history.
	if err := b.SendEphemeral(ctx, room, alice, []byte("PLAINTEXT-ephemeral-sdp")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*device{a1, a2} {
		msgs := d.sync()
		if len(msgs) != 1 || !msgs[0].Ephemeral || string(msgs[0].Content) != "PLAINTEXT-ephemeral-sdp" || msgs[0].Sender != bob {
			t.Errorf("device %s got %+v", d.DeviceID(), msgs)
		}
		hist, _ := d.History(ctx, room, 1, 1000)
		if slices.Contains(contents(hist, room), "PLAINTEXT-ephemeral-sdp") {
			t.Errorf("ephemeral message stored in history")
		}
	}
	hs.assertNoPlaintext([]byte("PLAINTEXT-"))
}

func TestStaleKeysAreUpdated(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	a, b := newDevice(t, hs, alice), newDevice(t, hs, bob)
	ctx := ctxT(t)
	room, _ := a.CreateRoom(ctx, "Ward")
	if err := a.Invite(ctx, room, bob); err != nil {
		t.Fatal(err)
	}
	b.sync()
	// Reopen Bob's profile with a clock 25 hours ahead.
	b.Close()
	cfg := b.cfg
	cfg.Now = func() time.Time { return time.Now().Add(25 * time.Hour) }
	s, err := client.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.Session = s
	before, _ := a.Room(room)
	updated, err := b.UpdateStaleKeys(ctx)
	if err != nil || !slices.Equal(updated, []string{room}) {
		t.Fatalf("stale keys: %v %v", updated, err)
	}
	if again, _ := b.UpdateStaleKeys(ctx); len(again) != 0 {
		t.Errorf("fresh keys updated again: %v", again)
	}
	a.sync()
	after, _ := a.Room(room)
	if after.Epoch != before.Epoch+1 {
		t.Errorf("alice at epoch %d after bob's update, was %d", after.Epoch, before.Epoch)
	}
	b.send(room, "PLAINTEXT-after-update")
	if got := contents(a.sync(), room); !slices.Equal(got, []string{"PLAINTEXT-after-update"}) {
		t.Errorf("after the update alice got %q", got)
	}
}

func TestCallBaseKeyChangesWithMembership(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob, carol := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor"), hs.addUser("carol", "doctor")
	hs.start()
	a, b, c := newDevice(t, hs, alice), newDevice(t, hs, bob), newDevice(t, hs, carol)
	ctx := ctxT(t)
	room, _ := a.CreateRoom(ctx, "Tumour board call")
	for _, u := range []string{bob, carol} {
		if err := a.Invite(ctx, room, u); err != nil {
			t.Fatal(err)
		}
	}
	b.sync()
	c.sync()
	ea, _, ka, err := a.CallBaseKey(room, 16)
	if err != nil {
		t.Fatal(err)
	}
	eb, _, kb, _ := b.CallBaseKey(room, 16)
	ec, _, kc, _ := c.CallBaseKey(room, 16)
	if ea != eb || ea != ec || !bytes.Equal(ka, kb) || !bytes.Equal(ka, kc) {
		t.Fatal("members derive different SFrame base keys in one epoch")
	}
	if err := a.Remove(ctx, room, carol); err != nil {
		t.Fatal(err)
	}
	b.sync()
	c.sync()
	_, _, ka2, _ := a.CallBaseKey(room, 16)
	_, _, kb2, _ := b.CallBaseKey(room, 16)
	if bytes.Equal(ka2, ka) || !bytes.Equal(ka2, kb2) {
		t.Fatal("the key did not change with the removal, or the remaining members disagree")
	}
	if _, _, _, err := c.CallBaseKey(room, 16); err == nil {
		t.Fatal("a removed member still derives call keys")
	}
}

// exchangeSecrets has each device send its secret to the room and checks
// that every device receives exactly the others' secrets, in order.
func exchangeSecrets(t *testing.T, room string, devs []*device, secrets []string) {
	t.Helper()
	for i, d := range devs {
		d.send(room, secrets[i])
	}
	for _, d := range devs {
		got := contents(d.sync(), room)
		var want []string
		for i, who := range devs {
			if who != d {
				want = append(want, secrets[i])
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s received %q, want %q", d.user, got, want)
		}
	}
}
