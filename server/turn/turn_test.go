package turn

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pionturn "github.com/pion/turn/v5"
)

func startRelay(t *testing.T, now func() time.Time) *Server {
	t.Helper()
	s, err := Start(Config{Listen: "127.0.0.1:0", Realm: "hs.example", SharedSecret: "s3cret", TTL: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// allocate asks the relay for a UDP allocation with the given credentials
// and, when it succeeds, relays a datagram through it to a local peer.
func allocate(t *testing.T, s *Server, username, password string) error {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := pionturn.NewClient(&pionturn.ClientConfig{
		TURNServerAddr: s.UDPAddr().String(), STUNServerAddr: s.UDPAddr().String(),
		Username: username, Password: password, Realm: "hs.example", Conn: conn, RTO: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	relayed, err := c.AllocateWithContext(ctx)
	if err != nil {
		return err
	}
	defer relayed.Close()
	if !strings.HasPrefix(relayed.LocalAddr().String(), "127.0.0.1:") {
		t.Fatalf("relayed address %s", relayed.LocalAddr())
	}
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relayed.WriteTo([]byte("through the relay"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "through the relay" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	if from.String() != relayed.LocalAddr().String() {
		t.Fatalf("datagram came from %s, not the relayed address %s", from, relayed.LocalAddr())
	}
	return nil
}

func TestRelayAcceptsFreshRESTCredentials(t *testing.T) {
	s := startRelay(t, nil)
	cred := s.Credentials("@alice:hs.example")
	if !strings.HasSuffix(cred.Username, ":@alice:hs.example") || cred.TTL != time.Hour {
		t.Fatalf("credentials %+v", cred)
	}
	port := s.UDPAddr().Port
	if s.TCPAddr().Port != port || len(cred.URIs) != 2 || cred.URIs[0] != "turn:127.0.0.1:"+strconv.Itoa(port)+"?transport=udp" {
		t.Fatalf("URIs %v", cred.URIs)
	}
	if err := allocate(t, s, cred.Username, cred.Password); err != nil {
		t.Fatalf("allocation with fresh credentials: %v", err)
	}
}

func TestRelayRefusesExpiredWrongAndMalformedCredentials(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	var offset atomic.Int64 // the relay reads the clock from its own goroutines
	s := startRelay(t, func() time.Time { return start.Add(time.Duration(offset.Load())) })
	now := start
	secret := []byte("s3cret")
	expiredUser, expiredPass := RESTCredentials(secret, "@alice:hs.example", now.Add(-time.Second))
	freshUser, _ := RESTCredentials(secret, "@alice:hs.example", now.Add(time.Minute))
	_, otherSecretPass := RESTCredentials([]byte("other"), "@alice:hs.example", now.Add(time.Minute))
	for name, c := range map[string][2]string{
		"expired":      {expiredUser, expiredPass},
		"wrong secret": {freshUser, otherSecretPass},
		"no expiry":    {"@alice:hs.example", expiredPass},
	} {
		if err := allocate(t, s, c[0], c[1]); err == nil {
			t.Errorf("%s credentials were accepted", name)
		}
	}
	// The clock moves past a handed-out credential's expiry: refused.
	cred := s.Credentials("@bob:hs.example")
	if err := allocate(t, s, cred.Username, cred.Password); err != nil {
		t.Fatalf("fresh: %v", err)
	}
	offset.Store(int64(time.Hour + time.Second))
	if err := allocate(t, s, cred.Username, cred.Password); err == nil {
		t.Fatal("credentials were accepted after their TTL")
	}
}

func TestRESTPasswordIsHMACSHA1OfUsername(t *testing.T) {
	// Computed independently: printf '1700000000:@a:x' | openssl dgst -sha1 -hmac k -binary | base64
	u, p := RESTCredentials([]byte("k"), "@a:x", time.Unix(1700000000, 0))
	if u != "1700000000:@a:x" || p != "VzdIinAfmpzc17ycCs+IB1pYU9Y=" {
		t.Fatalf("got %q %q", u, p)
	}
}

// TestRelayOverTCP: the TCP listener on the same port takes the same
// credentials (clients behind UDP-blocking firewalls use ?transport=tcp).
func TestRelayOverTCP(t *testing.T) {
	s := startRelay(t, nil)
	cred := s.Credentials("@alice:hs.example")
	for _, c := range []struct {
		name, password string
		ok             bool
	}{{"fresh", cred.Password, true}, {"wrong password", "AAAA", false}} {
		tcp, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		client, err := pionturn.NewClient(&pionturn.ClientConfig{
			TURNServerAddr: s.TCPAddr().String(), STUNServerAddr: s.TCPAddr().String(),
			Username: cred.Username, Password: c.password, Realm: "hs.example", Conn: pionturn.NewSTUNConn(tcp),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := client.Listen(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		relayed, err := client.AllocateWithContext(ctx)
		cancel()
		if (err == nil) != c.ok {
			t.Errorf("%s over TCP: %v", c.name, err)
		}
		if err == nil {
			relayed.Close()
		}
		client.Close()
		tcp.Close()
	}
}

// TestRelayLimitsAllocationsPerUser: a user holding MaxAllocationsPerUser
// allocations is refused another until one is released; other users are
// not affected.
func TestRelayLimitsAllocationsPerUser(t *testing.T) {
	s, err := Start(Config{Listen: "127.0.0.1:0", Realm: "hs.example", SharedSecret: "s3cret", TTL: time.Hour, MaxAllocationsPerUser: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	open := func(user string) (net.PacketConn, func(), error) {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cred := s.Credentials(user)
		c, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: s.UDPAddr().String(), STUNServerAddr: s.UDPAddr().String(),
			Username: cred.Username, Password: cred.Password, Realm: "hs.example", Conn: conn, RTO: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		relayed, err := c.AllocateWithContext(ctx)
		done := func() {
			if relayed != nil {
				relayed.Close()
			}
			c.Close()
			conn.Close()
		}
		return relayed, done, err
	}
	_, done1, err := open("@alice:hs.example")
	if err != nil {
		t.Fatal(err)
	}
	_, done2, err := open("@alice:hs.example")
	if err != nil {
		t.Fatal(err)
	}
	defer done2()
	_, done3, err := open("@alice:hs.example")
	done3()
	if err == nil || !strings.Contains(err.Error(), "486") {
		t.Fatalf("third allocation of a user limited to 2: %v", err)
	}
	_, doneBob, err := open("@bob:hs.example")
	if err != nil {
		t.Fatalf("another user: %v", err)
	}
	doneBob()
	// Releasing one (Refresh with lifetime 0) lets the user allocate again.
	done1()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, done, err := open("@alice:hs.example")
		done()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after releasing an allocation: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the release is processed by the relay's goroutine
	}
}

// FuzzCheckUsername: any TURN username is refused or yields a non-empty
// user whose expiry has not passed; nothing panics.
func FuzzCheckUsername(f *testing.F) {
	f.Add("1800000000:@alice:hs.example")
	f.Add("1:@a:x")
	f.Add(":@a:x")
	f.Add("-5:@a:x")
	f.Add("99999999999999999999:@a:x")
	s := &Server{cfg: Config{Now: func() time.Time { return time.Unix(1_700_000_000, 0) }}}
	f.Fuzz(func(t *testing.T, username string) {
		user, err := s.checkUsername(username)
		if err != nil {
			return
		}
		ts, rest, _ := strings.Cut(username, ":")
		expiry, perr := strconv.ParseInt(ts, 10, 64)
		if user == "" || user != rest || perr != nil || expiry < 1_700_000_000 {
			t.Fatalf("accepted %q as user %q", username, user)
		}
	})
}
