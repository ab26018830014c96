package test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client"
)

// federation is a set of homeservers federating on loopback, each with a
// certificate from one federation CA.
type federation struct {
	caDir   string
	servers map[string]*homeserver
	fedAddr map[string]string
}

// newFederation initialises one homeserver per name, each allowing all the
// others as peers (see newFederationOpts for proxies and extra names).
func newFederation(t *testing.T, names ...string) *federation {
	t.Helper()
	return newFederationOpts(t, fedOptions{}, names...)
}

func (f *federation) start() {
	for _, hs := range f.servers {
		hs.start()
	}
}

const (
	freiburg   = "uk-freiburg.test"
	heidelberg = "uk-heidelberg.test"
	stuttgart  = "klinikum-stuttgart.test"
)

// crossHospitalRoom makes a room on Freiburg (its hub) with a doctor of
// each hospital.
func crossHospitalRoom(t *testing.T, f *federation) (room string, devs []*device) {
	t.Helper()
	ids := []string{f.servers[freiburg].addUser("weber", "doctor"), f.servers[heidelberg].addUser("yilmaz", "doctor"), f.servers[stuttgart].addUser("braun", "doctor")}
	f.start()
	for i, n := range []string{freiburg, heidelberg, stuttgart} {
		devs = append(devs, newDevice(t, f.servers[n], ids[i]))
	}
	ctx := ctxT(t)
	room, err := devs[0].CreateRoom(ctx, "Tumour board")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs[1:] {
		if err := devs[0].Invite(ctx, room, d.user); err != nil {
			t.Fatalf("invite %s: %v", d.user, err)
		}
		d.syncUntil(func(m client.Message) bool { return m.Type == client.TypeJoined && m.Room == room })
	}
	for _, d := range devs {
		d.sync()
		info, _ := d.Room(room)
		if len(info.Members) != 3 {
			t.Fatalf("%s sees members %v", d.user, info.Members)
		}
	}
	return room, devs
}

func TestFederatedRoomAcrossThreeHospitals(t *testing.T) {
	f := newFederation(t, freiburg, heidelberg, stuttgart)
	room, devs := crossHospitalRoom(t, f)
	ctx := ctxT(t)

	const perMember = 334
	var wg sync.WaitGroup
	errs := make([]error, len(devs))
	for i, d := range devs {
		wg.Go(func() {
			for j := range perMember - i%2 { // 334 + 333 + 334 ≈ 1,000 messages
				if _, err := d.Send(ctx, room, fmt.Appendf(nil, "PLAINTEXT-%d-%d", i, j)); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Every member sees every message in the same (the hub's) order.
	var orders [][]string
	for _, d := range devs {
		d.sync()
		hist, err := d.History(ctx, room, 1, 100000)
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, m := range hist {
			if m.Type == client.TypeContent {
				order = append(order, fmt.Sprintf("%d:%s", m.Seq, m.Content))
			}
		}
		orders = append(orders, order)
	}
	if len(orders[0]) != 3*perMember-1 {
		t.Fatalf("%s has %d messages, want %d", devs[0].user, len(orders[0]), 3*perMember-1)
	}
	for i := range orders[1:] {
		if !slices.Equal(orders[0], orders[i+1]) {
			t.Fatalf("%s and %s see different orders", devs[0].user, devs[i+1].user)
		}
	}
	for _, hs := range f.servers {
		hs.assertNoPlaintext([]byte("PLAINTEXT-"))
	}

	// A room restricted to Freiburg and Heidelberg admits no one from
	// Stuttgart, and Stuttgart cannot submit to it.
	restricted, err := devs[0].CreateRoomWith(ctx, "Freiburg–Heidelberg only", client.RoomOptions{AllowedServers: []string{freiburg, heidelberg}})
	if err != nil {
		t.Fatal(err)
	}
	if err := devs[0].Invite(ctx, restricted, devs[2].user); err == nil || !strings.Contains(err.Error(), "admits only") {
		t.Errorf("invite into a restricted room: %v", err)
	}
	if err := devs[0].Invite(ctx, restricted, devs[1].user); err != nil {
		t.Errorf("invite of an admitted server's user: %v", err)
	}
}

// syncUntil syncs until a message satisfying want arrived: over federation
// delivery is asynchronous. It polls (a readiness probe with a deadline).
func (d *device) syncUntil(want func(client.Message) bool) []client.Message {
	d.t.Helper()
	var all []client.Message
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs := d.sync()
		all = append(all, msgs...)
		if slices.ContainsFunc(msgs, want) {
			return all
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: the expected message did not arrive within 60s; got %+v", d.user, all)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
