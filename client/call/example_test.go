package call_test

import (
	"context"
	"os"
	"time"

	"github.com/medicus-health/medicus/client/call"
)

// A client session (client.Session) carries the signalling; the command
// `medicus client call ROOM USER --json` is this, plus the session's sync
// handing each ephemeral message to DeliverContent.
func ExampleSwitchboard() {
	var session call.EphemeralSender // a *client.Session, logged in
	updates := make(chan call.Update, 64)
	media, err := call.MediaFlag("") // or the --media FILE.ivf path
	if err != nil {
		panic(err)
	}
	sb, err := call.New(call.Config{
		UserID:    "@dr.weber:uk-freiburg.example",
		DeviceID:  "KX2QDM7P",
		Signaller: call.SessionSignaller{Session: session},
		Peer: call.PeerConfig{
			// From GET /v1/voip/turn.
			ICEServers: call.ICEServers("1764500000:@dr.weber:uk-freiburg.example", "c2VjcmV0", []string{"turn:turn.uk-freiburg.example:3478?transport=udp"}),
			Media:      media,
		},
		Updates: updates,
	})
	if err != nil {
		panic(err)
	}
	defer sb.Close()

	// Meanwhile, for every ephemeral message the session's sync delivers:
	//	sb.DeliverContent(ctx, m.Room, m.Sender, m.SenderDevice, m.Time, m.Content)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	reason, err := call.PlaceAndFollow(ctx, sb, updates, "!teleconsultRoom0001:uk-freiburg.example", "@dr.roth:charite.example", os.Stdout, true)
	if err != nil {
		panic(err)
	}
	_ = reason // e.g. call.ReasonUserHangup
}
