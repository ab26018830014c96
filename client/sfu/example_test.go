package sfu_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/medicus-health/medicus/client/sfu"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/sframe"
)

// A joined member of a room takes part in the room's call: it keys SFrame
// from its MLS group, joins through the homeserver's SFU, sends synthetic
// video for ten seconds and reports what it decrypted from each other
// device.
func Example() {
	var (
		group *mls.Group     // the member's MLS group of the room
		roots *x509.CertPool // the CAs trusted for the homeserver
		token string         // the device's access token
	)
	keys, err := sframe.NewMLSContext(sframe.AES128CTRHMACSHA256_80, sframe.MLSConfig{})
	if err != nil {
		panic(err)
	}
	if err := keys.AddEpoch(group); err != nil { // and again after every commit
		panic(err)
	}
	ctx := context.Background()
	p, err := sfu.Join(ctx, sfu.Options{
		Homeserver: "https://uk-freiburg.example:8443", Roots: roots, Token: token,
		Room: "!tumorboard0000000000:uk-freiburg.example", Keys: keys,
	})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	if err := p.SendVideo(ctx, 500, 20*time.Millisecond); err != nil {
		panic(err)
	}
	for device, s := range p.Stats() {
		fmt.Println(device, s.Frames, "frames,", s.Keyframes, "keyframes,", s.DecryptFailures, "failures")
	}
}
