package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/crypto/identity"
	"github.com/medicus-health/medicus/crypto/mls"
)

// benchRoom is a room of 100 members on a real homeserver: Alice (the
// sender), Bob (the receiver) and 98 further devices of Carol, whose
// KeyPackages the benchmark makes under Carol's identity key.
func benchRoom(b *testing.B) (hs *homeserver, alice, bob *device, room string) {
	hs = newHomeserver(b, "uk-freiburg.example", nil)
	aliceID, bobID, carolID := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor"), hs.addUser("carol", "nurse")
	hs.start()
	alice, bob = newBenchDevice(b, hs, aliceID), newBenchDevice(b, hs, bobID)
	ctx := context.Background()
	carolKey, _ := identity.GenerateKey()
	for i := range 98 {
		c := hs.client()
		lr, err := c.Login(ctx, carolID, testPassword, fmt.Sprintf("bench-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		priv, pub, _ := mls.GenerateSignatureKey(client.DefaultSuite)
		dc, _ := carolKey.Certify(carolID, lr.DeviceID, pub)
		kp, _, err := mls.NewKeyPackage(client.DefaultSuite, mls.Credential{CredentialType: mls.CredentialBasic, Identity: dc.Marshal()}, priv, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.UploadKeyPackages(ctx, [][]byte{kp}, nil); err != nil {
			b.Fatal(err)
		}
		c.CloseIdle()
	}
	room, err := alice.CreateRoom(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range []string{bobID, carolID} {
		if err := alice.Invite(ctx, room, u); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := bob.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	info, _ := bob.Room(room)
	if n := len(info.Members[carolID]) + 2; n != 100 {
		b.Fatalf("room has %d members, want 100", n)
	}
	return hs, alice, bob, room
}

func newBenchDevice(b *testing.B, hs *homeserver, user string) *device {
	return newDeviceTB(b, hs, user, nil)
}

// BenchmarkClientSend100Members measures how many 1 KiB messages one client
// encrypts and sends per second into a room of 100 members, each
// acknowledged by the hub after it is durably stored.
func BenchmarkClientSend100Members(b *testing.B) {
	_, alice, _, room := benchRoom(b)
	msg := make([]byte, 1024)
	rand.Read(msg)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := alice.Send(ctx, room, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkClientReceive100Members measures how many 1 KiB messages one
// client receives over sync, decrypts and stores per second in a room of
// 100 members.
func BenchmarkClientReceive100Members(b *testing.B) {
	_, alice, bob, room := benchRoom(b)
	msg := make([]byte, 1024)
	rand.Read(msg)
	ctx := context.Background()
	for range b.N {
		if _, err := alice.Send(ctx, room, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	got := 0
	for got < b.N {
		msgs, err := bob.Sync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range msgs {
			if m.Type == client.TypeContent {
				if !bytes.Equal(m.Content, msg) {
					b.Fatal("decrypted content differs")
				}
				got++
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
