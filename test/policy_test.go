package test

import (
	"slices"
	"strings"
	"testing"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/proto"
)

// TestHubEnforcesRoomPolicy: in a room with a room policy, the hub refuses
// a bot's commit removing a nurse (the homeserver would sequence it
// otherwise: the commit is checked before the membership change), while
// the moderator's invitations and removals pass.
func TestHubEnforcesRoomPolicy(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, nina, robo, paul := hs.addUser("alice", "doctor"), hs.addUser("nina", "nurse"), hs.addUser("robo", "bot"), hs.addUser("paul", "patient")
	hs.start()
	mod, nurse, bot, patient := newDevice(t, hs, alice), newDevice(t, hs, nina), newDevice(t, hs, robo), newDevice(t, hs, paul)
	ctx := ctxT(t)

	room, err := mod.CreateRoomWith(ctx, "Ward 3 handover", client.RoomOptions{Policy: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{nina, robo, paul} {
		if err := mod.Invite(ctx, room, u); err != nil {
			t.Fatalf("moderator invites %s: %v", u, err)
		}
	}
	for _, d := range []*device{nurse, bot, patient} {
		d.sync()
	}
	info, err := bot.Room(room)
	if err != nil || len(info.Members) != 4 {
		t.Fatalf("bot sees %+v %v, want 4 members", info, err)
	}
	epoch := info.Epoch

	// The bot's removal commit never reaches the log (Remove commits
	// first and asks the homeserver to remove the membership second, which
	// the homeserver would refuse too).
	err = bot.Remove(ctx, room, nina)
	if !api.IsCode(err, proto.ErrForbidden) || !strings.Contains(err.Error(), "submit commit") {
		t.Fatalf("bot removes the nurse: %v, want the commit refused with M_FORBIDDEN", err)
	}
	const secret = "PLAINTEXT-policy-handover-bed-12"
	nurse.send(room, secret)
	for _, d := range []*device{mod, bot, patient} {
		if got := contents(d.sync(), room); !slices.Equal(got, []string{secret}) {
			t.Errorf("%s after the refused removal got %q", d.user, got)
		}
		if info, _ := d.Room(room); info.Epoch != epoch || len(info.Members) != 4 {
			t.Errorf("%s is at epoch %d with %d members, want %d with 4", d.user, info.Epoch, len(info.Members), epoch)
		}
	}

	// The moderator removes the patient: allowed.
	if err := mod.Remove(ctx, room, paul); err != nil {
		t.Fatalf("moderator removes the patient: %v", err)
	}
	const after = "PLAINTEXT-policy-after-patient-left"
	nurse.sync()
	nurse.send(room, after)
	if got := contents(patient.sync(), room); len(got) != 0 {
		t.Errorf("removed patient decrypted %q", got)
	}
	if got := contents(mod.sync(), room); !slices.Equal(got, []string{after}) {
		t.Errorf("moderator got %q, want %q", got, after)
	}
	for _, s := range []string{secret, after} {
		hs.assertNoPlaintext([]byte(s))
	}
}
