package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"

	clientsfu "github.com/medicus-health/medicus/client/sfu"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/sframe"
	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/internal/pionlog"
	"github.com/medicus-health/medicus/server/sfu"
)

func TestTURNEndpointHandsOutRESTCredentials(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TURNListen = "127.0.0.1:0"; c.TURNSharedSecret = "secret" })
	doc := e.login("doc")
	var tr proto.TURNServerResponse
	before := time.Now().Unix()
	e.must("GET", "/v1/voip/turn", doc.AccessToken, nil, &tr)
	after := time.Now().Unix()
	ts, user, _ := strings.Cut(tr.Username, ":")
	expiry, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || expiry < before+86400 || expiry > after+86400 || user != doc.UserID || tr.TTL != 86400 {
		t.Fatalf("credentials %+v", tr)
	}
	if len(tr.URIs) != 2 || !strings.HasPrefix(tr.URIs[0], "turn:127.0.0.1:") || !strings.HasSuffix(tr.URIs[1], "?transport=tcp") {
		t.Fatalf("URIs %v", tr.URIs)
	}
	if status, code := e.call("GET", "/v1/voip/turn", "", nil, nil); status != http.StatusUnauthorized || code != proto.ErrMissingToken {
		t.Fatalf("without a token: %d %s", status, code)
	}
	off := newEnv(t, nil)
	if status, code := off.call("GET", "/v1/voip/turn", off.login("doc").AccessToken, nil, nil); status != http.StatusNotFound || code != proto.ErrNotFound {
		t.Fatalf("without a relay: %d %s", status, code)
	}
}

func withSFU(f func(*sfu.Config)) *func(*sfu.Config) { return &f }

// callKeys returns one SFrame key manager per member of a fresh MLS group
// of n members, all in epoch 1.
func callKeys(t testing.TB, n int) []*sframe.MLSContext {
	t.Helper()
	suite := mls.CipherSuite(0x0001)
	cred := func(i int) mls.Credential {
		return mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte{byte('a' + i)}}
	}
	sig, _, _ := mls.GenerateSignatureKey(suite)
	creator, err := mls.CreateGroup(nil, []byte("call"), suite, cred(0), sig, nil)
	if err != nil {
		t.Fatal(err)
	}
	var adds []*mls.Proposal
	var kps [][]byte
	var privs []*mls.KeyPackagePrivate
	for i := 1; i < n; i++ {
		s, _, _ := mls.GenerateSignatureKey(suite)
		kp, priv, err := mls.NewKeyPackage(suite, cred(i), s, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := mls.AddProposal(kp)
		if err != nil {
			t.Fatal(err)
		}
		adds, kps, privs = append(adds, p), append(kps, kp), append(privs, priv)
	}
	out, err := creator.Commit(&mls.CommitOptions{Proposals: adds, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := creator.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	groups := []*mls.Group{creator}
	for i := range kps {
		g, err := mls.JoinFromWelcome(nil, out.Welcome, kps[i], privs[i], nil)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
	}
	var keys []*sframe.MLSContext
	for _, g := range groups {
		k, err := sframe.NewMLSContext(sframe.AES128CTRHMACSHA256_80, sframe.MLSConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.AddEpoch(g); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// callRoom creates a room with doc, nurse and pat joined and returns it
// with their logins.
func callRoom(e *testEnv) (string, []proto.LoginResponse) {
	doc, nurse, pat := e.login("doc"), e.login("nurse"), e.login("pat")
	room := e.createRoom(doc.AccessToken)
	e.addMember(room, doc.AccessToken, nurse.UserID, nurse.AccessToken)
	e.addMember(room, doc.AccessToken, pat.UserID, pat.AccessToken)
	return room, []proto.LoginResponse{doc, nurse, pat}
}

func (e *testEnv) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.ts.Certificate())
	return p
}

func (e *testEnv) joinCall(ctx context.Context, room string, l proto.LoginResponse, keys *sframe.MLSContext, network func(*webrtc.SettingEngine)) *clientsfu.Participant {
	e.t.Helper()
	p, err := clientsfu.Join(ctx, clientsfu.Options{Homeserver: e.ts.URL, Roots: e.roots(), Token: l.AccessToken, Room: room, Keys: keys, Network: network})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Close() })
	return p
}

// TestSFUForwardsOnlyCiphertextBetweenThreeParticipants: each of three
// participants receives and decrypts the other two's video; every RTP
// payload the SFU forwarded was SFrame ciphertext.
func TestSFUForwardsOnlyCiphertextBetweenThreeParticipants(t *testing.T) {
	var mu sync.Mutex
	var tapped, plaintext int
	e := newEnv(t, func(c *Config) {
		c.sfuTest = withSFU(func(sc *sfu.Config) {
			sc.Tap = func(_, _ string, payload []byte) {
				mu.Lock()
				defer mu.Unlock()
				tapped++
				if bytes.Contains(payload, []byte(clientsfu.FramePrefix)) {
					plaintext++
				}
			}
		})
	})
	room, logins := callRoom(e)
	keys := callKeys(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var parts []*clientsfu.Participant
	for i, l := range logins {
		parts = append(parts, e.joinCall(ctx, room, l, keys[i], nil))
	}
	for _, p := range parts {
		go p.SendVideo(ctx, 1<<30, 20*time.Millisecond)
	}
	for i, p := range parts {
		err := p.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool {
			n := 0
			for j, l := range logins {
				if j != i && s[l.DeviceID].Frames >= 30 {
					n++
				}
			}
			return n == 2
		})
		if err != nil {
			t.Fatalf("participant %d: %v", i, err)
		}
		for dev, s := range p.Stats() {
			if s.DecryptFailures != 0 || s.Keyframes == 0 {
				t.Errorf("participant %d from %s: %+v", i, dev, s)
			}
		}
		if got := p.Participants(); len(got) != 3 {
			t.Errorf("participant %d sees %v", i, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// Each of the three published at least 30 frames (the tap sees every
	// packet once, before it is copied to the two subscribers).
	if tapped < 90 || plaintext != 0 {
		t.Fatalf("SFU forwarded %d payloads, %d with plaintext", tapped, plaintext)
	}
}

func TestSFUCallIsForJoinedMembersOnly(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SFUMaxParticipants = 2 })
	room, logins := callRoom(e)
	bot := e.login("bot")
	keys := callKeys(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := clientsfu.Join(ctx, clientsfu.Options{Homeserver: e.ts.URL, Roots: e.roots(), Token: bot.AccessToken, Room: room, Keys: keys[0]})
	if err == nil || !strings.Contains(err.Error(), proto.ErrForbidden) {
		t.Fatalf("non-member joined the call: %v", err)
	}
	a := e.joinCall(ctx, room, logins[0], keys[0], nil)
	e.joinCall(ctx, room, logins[1], keys[1], nil)
	if err := a.WaitParticipants(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, err = clientsfu.Join(ctx, clientsfu.Options{Homeserver: e.ts.URL, Roots: e.roots(), Token: logins[2].AccessToken, Room: room, Keys: keys[2]})
	if err == nil || !strings.Contains(err.Error(), proto.ErrLimitExceeded) {
		t.Fatalf("third participant of a 2-participant call: %v", err)
	}
}

// TestSFUMediaContinuesUnderLossWithNACKs runs the media of two
// participants and the SFU over pion's virtual network with 5% packet loss
// in each direction: receivers send NACKs, the losses are repaired by
// retransmission and frames keep arriving.
func TestSFUMediaContinuesUnderLossWithNACKs(t *testing.T) {
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "10.0.0.0/24", LoggerFactory: pionlog.Factory(nil)})
	if err != nil {
		t.Fatal(err)
	}
	var dropped, passed atomic.Int64
	var lossOn atomic.Bool
	wan.AddChunkFilter(func(c vnet.Chunk) bool {
		if c.Network() == "udp" && lossOn.Load() && rand.Float64() < 0.05 {
			dropped.Add(1)
			return false
		}
		passed.Add(1)
		return true
	})
	nets := map[string]*vnet.Net{}
	for _, ip := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := wan.AddNet(n); err != nil {
			t.Fatal(err)
		}
		nets[ip] = n
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	defer wan.Stop()
	on := func(ip string) func(*webrtc.SettingEngine) {
		return func(se *webrtc.SettingEngine) {
			se.SetNet(nets[ip])
			se.SetIncludeLoopbackCandidate(false)
			se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		}
	}
	e := newEnv(t, func(c *Config) { c.sfuTest = withSFU(func(sc *sfu.Config) { sc.Network = on("10.0.0.1") }) })
	room, logins := callRoom(e)
	keys := callKeys(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sender := e.joinCall(ctx, room, logins[0], keys[0], on("10.0.0.2"))
	receiver := e.joinCall(ctx, room, logins[1], keys[1], on("10.0.0.3"))
	go sender.SendVideo(ctx, 1<<30, 10*time.Millisecond)
	from := logins[0].DeviceID
	if err := receiver.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool { return s[from].Frames >= 20 }); err != nil {
		t.Fatalf("before loss: %v", err)
	}
	lossOn.Store(true)
	start := receiver.Stats()[from]
	if err := receiver.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool { return s[from].Frames >= start.Frames+500 }); err != nil {
		t.Fatalf("under loss: %v", err)
	}
	nacks, lost := receiver.NACKsSent()
	got := receiver.Stats()[from]
	t.Logf("5%% loss: %d of %d chunks dropped; receiver sent %d NACK packets (%d sequence numbers asked for); %d of %d frames arrived under loss, %d duplicates dropped, %d failures",
		dropped.Load(), dropped.Load()+passed.Load(), nacks, lost, got.Frames-start.Frames, got.LastFrame-start.LastFrame, got.Duplicates, got.DecryptFailures)
	if dropped.Load() == 0 || nacks == 0 || lost == 0 {
		t.Fatalf("no loss or no NACKs: dropped %d, NACKs %d", dropped.Load(), nacks)
	}
	if got.DecryptFailures != 0 {
		t.Fatalf("decryption failures under loss: %+v", got)
	}
	// Retransmissions repair most of the 2×5% loss on the two hops: far
	// more frames arrive than the ~90% loss alone would let through.
	sent := got.LastFrame - start.LastFrame
	if arrived := uint64(got.Frames - start.Frames); arrived*100 < sent*95 {
		t.Fatalf("only %d of %d frames arrived under loss", arrived, sent)
	}
}

// TestSFURenegotiatesOnLeaveAndReplacesReconnectingDevice: when a
// participant hangs up, the SFU removes its track from the others with a
// new offer; the same device joining twice replaces its first session; a
// rejoined participant's media flows again.
func TestSFURenegotiatesOnLeaveAndReplacesReconnectingDevice(t *testing.T) {
	e := newEnv(t, nil)
	room, logins := callRoom(e)
	keys := callKeys(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := e.joinCall(ctx, room, logins[0], keys[0], nil)
	b := e.joinCall(ctx, room, logins[1], keys[1], nil)
	go a.SendVideo(ctx, 1<<30, 20*time.Millisecond)
	go b.SendVideo(ctx, 1<<30, 20*time.Millisecond)
	from := logins[1].DeviceID
	if err := a.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool { return s[from].Frames >= 10 }); err != nil {
		t.Fatal(err)
	}
	// The same device connects again: the first session is closed.
	b2 := e.joinCall(ctx, room, logins[1], keys[1], nil)
	b.Wait(ctx, func(map[string]clientsfu.SenderStats) bool { return false })
	if ce := (*websocket.CloseError)(nil); !errors.As(b.Err(), &ce) || ce.Code != sfu.CloseReplaced {
		t.Fatalf("first session of a reconnected device ended with %v, want close code %d", b.Err(), sfu.CloseReplaced)
	}
	if err := b2.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool { return s[logins[0].DeviceID].Frames >= 10 }); err != nil {
		t.Fatalf("second session: %v", err)
	}
	if got := b2.Participants(); len(got) != 2 {
		t.Fatalf("participants after reconnection: %+v", got)
	}
	go b2.SendVideo(ctx, 1<<30, 20*time.Millisecond)
	seen := a.Stats()[from].Frames
	if err := a.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool { return s[from].Frames >= seen+10 }); err != nil {
		t.Fatalf("media of the reconnected device: %v", err)
	}
	// b2 hangs up: a gets a new offer without b's track and sees one participant.
	before := a.Negotiations()
	b2.Close()
	err := a.Wait(ctx, func(map[string]clientsfu.SenderStats) bool {
		return len(a.Participants()) == 1 && a.Negotiations() > before
	})
	if err != nil {
		t.Fatalf("after hang-up: %d participants, %d negotiations: %v", len(a.Participants()), a.Negotiations(), err)
	}
	for _, tr := range a.PeerConnection().GetTransceivers() {
		if tr.Kind() == webrtc.RTPCodecTypeVideo && tr.Mid() != "0" && tr.Direction() != webrtc.RTPTransceiverDirectionInactive {
			t.Errorf("transceiver %s of the departed participant is %s", tr.Mid(), tr.Direction())
		}
	}
}

// TestCallEndsWhenDeviceRevokedOrMemberRemoved: the server re-checks a
// call's device and membership every few seconds (here every 100 ms) and
// closes the call with 1008 for a revoked device, 4003 for a removed member.
func TestCallEndsWhenDeviceRevokedOrMemberRemoved(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SyncPingInterval = Duration{100 * time.Millisecond} })
	room, logins := callRoom(e)
	phone := e.login("nurse")
	keys := callKeys(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nurse := e.joinCall(ctx, room, logins[1], keys[1], nil)
	pat := e.joinCall(ctx, room, logins[2], keys[2], nil)
	if err := nurse.WaitParticipants(ctx, 2); err != nil {
		t.Fatal(err)
	}
	e.must("DELETE", "/v1/devices/"+logins[1].DeviceID, phone.AccessToken, nil, nil)
	e.must("POST", "/v1/rooms/"+room+"/remove", logins[0].AccessToken, proto.UserRequest{UserID: logins[2].UserID}, nil)
	for _, c := range []struct {
		p    *clientsfu.Participant
		code int
	}{{nurse, websocket.ClosePolicyViolation}, {pat, 4003}} {
		c.p.Wait(ctx, func(map[string]clientsfu.SenderStats) bool { return false })
		var ce *websocket.CloseError
		if !errors.As(c.p.Err(), &ce) || ce.Code != c.code {
			t.Errorf("call ended with %v, want close code %d", c.p.Err(), c.code)
		}
	}
}

// TestCallLeavesNoGoroutines: after a call through the SFU ends and the
// homeserver closes, every goroutine of the SFU, the participants and pion
// has stopped.
func TestCallLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	e := newEnv(t, nil)
	room, logins := callRoom(e)
	keys := callKeys(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := e.joinCall(ctx, room, logins[0], keys[0], nil)
	b := e.joinCall(ctx, room, logins[1], keys[1], nil)
	go a.SendVideo(ctx, 1<<30, 10*time.Millisecond)
	if err := b.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool { return s[logins[0].DeviceID].Frames > 20 }); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()
	e.stop()
	deadline := time.Now().Add(20 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before the call, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond) // polling for the count to settle, with a deadline
	}
}

// TestSFUAsksForKeyframesPeriodically: besides on join, the SFU sends
// every video sender a PLI each sfu_keyframe_interval (synthetic receivers
// never ask for keyframes themselves).
func TestSFUAsksForKeyframesPeriodically(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SFUKeyframeInterval = Duration{100 * time.Millisecond} })
	room, logins := callRoom(e)
	keys := callKeys(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a := e.joinCall(ctx, room, logins[0], keys[0], nil)
	b := e.joinCall(ctx, room, logins[1], keys[1], nil)
	go a.SendVideo(ctx, 1<<30, 10*time.Millisecond)
	from := logins[0].DeviceID
	if err := b.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool { return s[from].Keyframes >= 5 }); err != nil {
		t.Fatalf("keyframes: %v", err)
	}
	if n := a.KeyframeRequests(); n < 5 {
		t.Fatalf("sender got %d keyframe requests", n)
	}
}

// TestSFUFullCallOfEight: eight devices (the default sfu_max_participants)
// each receive and decrypt the other seven; a ninth is refused.
func TestSFUFullCallOfEight(t *testing.T) {
	e := newEnv(t, nil)
	room, logins := callRoom(e)
	// Participants are devices: the three members log in several times.
	for _, user := range []string{"doc", "doc", "nurse", "nurse", "pat"} {
		logins = append(logins, e.login(user))
	}
	keys := callKeys(t, 9)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var parts []*clientsfu.Participant
	for i, l := range logins {
		p := e.joinCall(ctx, room, l, keys[i], nil)
		parts = append(parts, p)
		go p.SendVideo(ctx, 1<<30, 50*time.Millisecond)
	}
	for i, p := range parts {
		err := p.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool {
			for j, l := range logins {
				if j != i && s[l.DeviceID].Frames < 10 {
					return false
				}
			}
			return true
		})
		if err != nil {
			t.Fatalf("participant %d: %v", i, err)
		}
	}
	ninth := e.login("pat")
	_, err := clientsfu.Join(ctx, clientsfu.Options{Homeserver: e.ts.URL, Roots: e.roots(), Token: ninth.AccessToken, Room: room, Keys: keys[8]})
	if err == nil || !strings.Contains(err.Error(), proto.ErrLimitExceeded) {
		t.Fatalf("ninth participant: %v", err)
	}
}

// TestSFUMediaOnOneUDPPort: with sfu_udp_port set, every participant's
// media reaches the SFU on that one port.
func TestSFUMediaOnOneUDPPort(t *testing.T) {
	ln, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.LocalAddr().(*net.UDPAddr).Port
	ln.Close()
	e := newEnv(t, func(c *Config) { c.SFUUDPPort = port; c.SFUIP = "127.0.0.1" })
	room, logins := callRoom(e)
	keys := callKeys(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var parts []*clientsfu.Participant
	for i, l := range logins {
		p := e.joinCall(ctx, room, l, keys[i], nil)
		parts = append(parts, p)
		go p.SendVideo(ctx, 1<<30, 20*time.Millisecond)
	}
	for i, p := range parts {
		err := p.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool {
			for j, l := range logins {
				if j != i && s[l.DeviceID].Frames < 10 {
					return false
				}
			}
			return true
		})
		if err != nil {
			t.Fatalf("participant %d: %v", i, err)
		}
		pair, err := p.PeerConnection().SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil || pair.Remote.Port != uint16(port) || pair.Remote.Address != "127.0.0.1" {
			t.Fatalf("participant %d: selected pair %v (%v), want the SFU at 127.0.0.1:%d", i, pair, err, port)
		}
	}
}

// TestCallRefusesBadSignalling: a request without a WebSocket handshake
// gets a coded JSON error; a participant that sends anything but an answer
// is disconnected and leaves the call.
func TestCallRefusesBadSignalling(t *testing.T) {
	e := newEnv(t, nil)
	room, logins := callRoom(e)
	if status, code := e.call("GET", "/v1/rooms/"+room+"/call", logins[0].AccessToken, nil, nil); status != http.StatusBadRequest || code != proto.ErrInvalidParam {
		t.Fatalf("plain GET: %d %s", status, code)
	}
	keys := callKeys(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := e.joinCall(ctx, room, logins[0], keys[0], nil)
	for _, bad := range []struct {
		typ  int
		data string
	}{
		{websocket.BinaryMessage, "\x00\x01"},
		{websocket.TextMessage, `{"type":"offer","sdp":"v=0"}`},
		{websocket.TextMessage, `{"type":"answer","sdp":"v=0","x":1}`},
		{websocket.TextMessage, `{"type":"answer","sdp":"not an sdp"}`},
	} {
		d := websocket.Dialer{TLSClientConfig: e.client.Transport.(*http.Transport).TLSClientConfig}
		url := "wss" + strings.TrimPrefix(e.ts.URL, "https") + "/v1/rooms/" + room + "/call"
		conn, _, err := d.Dial(url, http.Header{"Authorization": {"Bearer " + logins[1].AccessToken}})
		if err != nil {
			t.Fatal(err)
		}
		var offer proto.SFUMessage
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		for offer.Type != proto.SFUOffer {
			if err := conn.ReadJSON(&offer); err != nil {
				t.Fatalf("waiting for the offer: %v", err)
			}
		}
		if err := a.WaitParticipants(ctx, 2); err != nil {
			t.Fatal(err)
		}
		if err := conn.WriteMessage(bad.typ, []byte(bad.data)); err != nil {
			t.Fatal(err)
		}
		var closeErr error
		for closeErr == nil {
			_, _, closeErr = conn.ReadMessage() // until the server closes
		}
		if ce := (*websocket.CloseError)(nil); !errors.As(closeErr, &ce) || ce.Code != sfu.CloseProtocol {
			t.Errorf("after %q: %v, want close code %d", bad.data, closeErr, sfu.CloseProtocol)
		}
		conn.Close()
		if err := a.Wait(ctx, func(map[string]clientsfu.SenderStats) bool { return len(a.Participants()) == 1 }); err != nil {
			t.Fatalf("after %q: participants %v: %v", bad.data, a.Participants(), err)
		}
	}
}

// BenchmarkSFUForwarding sends b.N SFrame-encrypted frames (600 bytes, one
// RTP packet each, paced at 1 kHz) from one participant through the SFU to
// two others and reports the whole process's CPU time per frame (the three
// clients' SRTP and SFrame work included) and the share delivered.
func BenchmarkSFUForwarding(b *testing.B) {
	e := newEnv(b, nil)
	room, logins := callRoom(e)
	keys := callKeys(b, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var parts []*clientsfu.Participant
	for i, l := range logins {
		p, err := clientsfu.Join(ctx, clientsfu.Options{Homeserver: e.ts.URL, Roots: e.roots(), Token: l.AccessToken, Room: room, Keys: keys[i]})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		parts = append(parts, p)
	}
	sender, receivers, from := parts[0], parts[1:], logins[0].DeviceID
	received := func(r *clientsfu.Participant) int { return r.Stats()[from].Frames }
	warm, stopWarm := context.WithCancel(ctx)
	go sender.SendVideo(warm, 1<<30, 5*time.Millisecond)
	for _, r := range receivers {
		if err := r.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool { return s[from].Frames > 20 }); err != nil {
			b.Fatal(err)
		}
	}
	stopWarm()
	base := []int{received(receivers[0]), received(receivers[1])}
	cpu0 := processCPU()
	b.ResetTimer()
	if err := sender.SendVideo(ctx, b.N, time.Millisecond); err != nil {
		b.Fatal(err)
	}
	b.StopTimer() // ns/op is the pacing; the metrics below are the result
	drain, stopDrain := context.WithTimeout(ctx, 5*time.Second)
	defer stopDrain()
	delivered := 0
	for i, r := range receivers {
		r.Wait(drain, func(s map[string]clientsfu.SenderStats) bool { return s[from].Frames >= base[i]+b.N })
		delivered += received(r) - base[i]
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/frame")
	b.ReportMetric(100*float64(delivered)/float64(2*b.N), "%delivered")
}

// BenchmarkSFUJoinToFirstFrame measures call set-up through the SFU: from
// dialling the signalling WebSocket to the first decrypted keyframe of a
// participant already sending (50 frames/s), including ICE, DTLS, the
// renegotiation that adds the newcomer's track and the SFU's PLI.
func BenchmarkSFUJoinToFirstFrame(b *testing.B) {
	e := newEnv(b, nil)
	room, logins := callRoom(e)
	keys := callKeys(b, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sender, err := clientsfu.Join(ctx, clientsfu.Options{Homeserver: e.ts.URL, Roots: e.roots(), Token: logins[0].AccessToken, Room: room, Keys: keys[0]})
	if err != nil {
		b.Fatal(err)
	}
	defer sender.Close()
	go sender.SendVideo(ctx, 1<<30, 20*time.Millisecond)
	from := logins[0].DeviceID
	for b.Loop() {
		p, err := clientsfu.Join(ctx, clientsfu.Options{Homeserver: e.ts.URL, Roots: e.roots(), Token: logins[1].AccessToken, Room: room, Keys: keys[1]})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool { return s[from].Keyframes > 0 }); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		p.Close()
		if err := sender.Wait(ctx, func(map[string]clientsfu.SenderStats) bool { return len(sender.Participants()) == 1 }); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
