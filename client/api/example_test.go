package api_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/crypto/pki"
	"github.com/medicus-health/medicus/proto"
)

// A client logs in to a homeserver whose CA certificate it trusts, creates a
// room, sends an (already encrypted) message and follows the sync stream.
// The body is opaque to the server: in medicus it is an MLS PrivateMessage.
func Example() {
	ctx := context.Background()
	roots, err := pki.LoadCertPool("/srv/medicus/ca.pem") // written by `medicus server init`
	if err != nil {
		log.Fatal(err)
	}
	c, err := api.New("https://127.0.0.1:8443", roots)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Login(ctx, "@dr.weber:uk-freiburg.example", "password from the operator", "laptop"); err != nil {
		log.Fatal(err)
	}
	room, err := c.CreateRoom(ctx, "tumour board")
	if err != nil {
		log.Fatal(err)
	}
	ciphertext := []byte{ /* MLS PrivateMessage */ }
	// Retrying with the same transaction id after a network error is safe:
	// the server stores the message once and answers with the same seq.
	sent, err := c.Send(ctx, room, "txn-0001", proto.KindMLSApp, ciphertext)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored at seq", sent.Seq)

	s, err := c.Sync(ctx, 0) // 0: from the start; later, the last cursor seen
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for {
		f, err := s.Next()
		if err != nil {
			log.Fatal(err)
		}
		if f.Type == proto.FrameCaughtUp {
			break
		}
	}
}

// Server errors carry a stable code to branch on.
func ExampleError() {
	var c *api.Client // logged in as a patient
	err := c.Invite(context.Background(), "!abcdefghijklmnop:uk-freiburg.example", "@dr.weber:uk-freiburg.example")
	var apiErr *api.Error
	if errors.As(err, &apiErr) && apiErr.Code == proto.ErrForbidden {
		fmt.Println("not allowed:", apiErr.Message)
	}
}
