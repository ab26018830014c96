package test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	pionturn "github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/medicus-health/medicus/client/api"
	clientsfu "github.com/medicus-health/medicus/client/sfu"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/sframe"
	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/turn"
)

const turnSecret = "e2e-turn-secret"

// turnCredentials fetches GET /v1/voip/turn with c's token.
func turnCredentials(t *testing.T, hs *homeserver, c *api.Client) proto.TURNServerResponse {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: hs.roots}}, Timeout: 30 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+hs.addr+"/v1/voip/turn", nil)
	req.Header.Set("Authorization", "Bearer "+c.Token())
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr proto.TURNServerResponse
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/voip/turn: HTTP %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	return tr
}

// relayPeer is a pion peer that may only use TURN relay candidates.
func relayPeer(t *testing.T, tr proto.TURNServerResponse) *webrtc.PeerConnection {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{
		ICEServers:         []webrtc.ICEServer{{URLs: tr.URIs, Username: tr.Username, Credential: tr.Password}},
		ICETransportPolicy: webrtc.ICETransportPolicyRelay,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// gather sets a local description on pc and returns it with every candidate.
func gather(t *testing.T, pc *webrtc.PeerConnection, offer bool) webrtc.SessionDescription {
	t.Helper()
	var sd webrtc.SessionDescription
	var err error
	if offer {
		sd, err = pc.CreateOffer(nil)
	} else {
		sd, err = pc.CreateAnswer(nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(sd); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("ICE gathering did not complete in 30s")
	}
	return *pc.LocalDescription()
}

// TestTURNRelayOnlyCallAndExpiredCredentials: two peers that may only use
// relay candidates connect through the homeserver's embedded TURN relay
// with credentials from GET /v1/voip/turn and exchange data; the selected
// candidate pair is relay on both ends. A credential whose expiry has
// passed (correctly signed with the shared secret) is refused.
func TestTURNRelayOnlyCallAndExpiredCredentials(t *testing.T) {
	turnAddr := freeAddr(t)
	hs, alice, bob, _ := twoDoctorsInARoom(t, func(cfg string) string {
		cfg = setConfig(t, cfg, `turn_listen = ""`, fmt.Sprintf("turn_listen = %q", turnAddr))
		return setConfig(t, cfg, `turn_shared_secret = ""`, fmt.Sprintf("turn_shared_secret = %q", turnSecret))
	})
	ta, tb := turnCredentials(t, hs, alice), turnCredentials(t, hs, bob)
	if !strings.HasSuffix(ta.Username, ":"+alice.UserID) || ta.URIs[0] != "turn:"+turnAddr+"?transport=udp" {
		t.Fatalf("credentials %+v", ta)
	}

	a, b := relayPeer(t, ta), relayPeer(t, tb)
	got := make(chan string, 1)
	b.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			select {
			case got <- string(m.Data):
			default:
			}
		})
	})
	dc, err := a.CreateDataChannel("consult", nil)
	if err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })
	start := time.Now()
	offer := gather(t, a, true)
	if !strings.Contains(offer.SDP, "typ relay") || strings.Contains(offer.SDP, "typ host") {
		t.Fatalf("relay-only offer has other candidates:\n%s", offer.SDP)
	}
	if err := b.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	if err := a.SetRemoteDescription(gather(t, b, false)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-opened:
	case <-time.After(30 * time.Second):
		t.Fatalf("no connection through the relay in 30s (state %s)", a.ConnectionState())
	}
	if err := dc.SendText("second opinion, please"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "second opinion, please" {
			t.Fatalf("received %q", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("message not received through the relay")
	}
	pair, err := a.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("selected pair: %v", err)
	}
	if pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
		t.Fatalf("selected pair %s", pair)
	}
	t.Logf("connected through the relay %v after the offer was made; selected candidate pair: %s", time.Since(start).Round(time.Millisecond), pair)

	// Expired: signed with the right secret, expiry one minute ago.
	user, pass := turn.RESTCredentials([]byte(turnSecret), alice.UserID, time.Now().Add(-time.Minute))
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: turnAddr, STUNServerAddr: turnAddr, Username: user, Password: pass, Realm: hs.name, Conn: conn})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if err := tc.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if relayed, err := tc.AllocateWithContext(ctx); err == nil {
		relayed.Close()
		t.Fatal("the relay allocated with an expired credential")
	} else {
		t.Logf("expired credential refused: %v", err)
	}
	// A peer with the expired credential gathers no relay candidate.
	expired := relayPeer(t, proto.TURNServerResponse{Username: user, Password: pass, URIs: ta.URIs})
	expired.CreateDataChannel("x", nil)
	if sd := gather(t, expired, true); strings.Contains(sd.SDP, "typ relay") {
		t.Fatal("a relay candidate was allocated with an expired credential")
	}
}

// callMember is one device in a call: its homeserver client, its MLS group
// and the SFrame keys derived from it.
type callMember struct {
	name  string
	c     *api.Client
	group *mls.Group
	keys  *sframe.MLSContext
	p     *clientsfu.Participant
	stop  context.CancelFunc
	sent  sync.WaitGroup
}

// newCallGroup makes one MLS group of the members (the first creates it
// and adds the others by Welcome) and gives each its SFrame keys.
func newCallGroup(t *testing.T, members []*callMember) {
	t.Helper()
	suite := mls.CipherSuite(0x0001)
	cred := func(m *callMember) mls.Credential {
		return mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte(m.c.UserID)}
	}
	sig, _, _ := mls.GenerateSignatureKey(suite)
	g, err := mls.CreateGroup(nil, []byte("teleconsult"), suite, cred(members[0]), sig, nil)
	if err != nil {
		t.Fatal(err)
	}
	members[0].group = g
	var adds []*mls.Proposal
	kps, privs := make([][]byte, len(members)), make([]*mls.KeyPackagePrivate, len(members))
	for i, m := range members[1:] {
		s, _, _ := mls.GenerateSignatureKey(suite)
		if kps[i+1], privs[i+1], err = mls.NewKeyPackage(suite, cred(m), s, nil); err != nil {
			t.Fatal(err)
		}
		p, err := mls.AddProposal(kps[i+1])
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, p)
	}
	out, err := g.Commit(&mls.CommitOptions{Proposals: adds, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	for i, m := range members {
		if i > 0 {
			if m.group, err = mls.JoinFromWelcome(nil, out.Welcome, kps[i], privs[i], nil); err != nil {
				t.Fatal(err)
			}
		}
		if m.keys, err = sframe.NewMLSContext(sframe.AES128CTRHMACSHA256_80, sframe.MLSConfig{}); err != nil {
			t.Fatal(err)
		}
		if err := m.keys.AddEpoch(m.group); err != nil {
			t.Fatal(err)
		}
	}
}

func (m *callMember) join(t *testing.T, hs *homeserver, room string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := clientsfu.Join(ctx, clientsfu.Options{Homeserver: "https://" + hs.addr, Roots: hs.roots, Token: m.c.Token(), Room: room, Keys: m.keys})
	if err != nil {
		t.Fatalf("%s joins the call: %v", m.name, err)
	}
	m.p = p
	t.Cleanup(func() { m.stopSending(); p.Close() })
}

func (m *callMember) startSending() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	m.sent.Add(1)
	go func() { defer m.sent.Done(); m.p.SendVideo(ctx, 1<<30, 20*time.Millisecond) }()
}

func (m *callMember) stopSending() {
	if m.stop != nil {
		m.stop()
		m.sent.Wait()
		m.stop = nil
	}
}

// waitFrames waits until m decrypted at least n frames more than in base
// from each of the devices.
func (m *callMember) waitFrames(t *testing.T, base map[string]clientsfu.SenderStats, n int, from ...*callMember) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := m.p.Wait(ctx, func(s map[string]clientsfu.SenderStats) bool {
		for _, f := range from {
			if s[f.c.Device].Frames < base[f.c.Device].Frames+n {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("%s waiting for %d frames from each of %d: %v", m.name, n, len(from), err)
	}
}

// TestSFUCallThroughHomeserver runs a room call through the SFU of a real
// homeserver process: three participants each receive and decrypt the
// other two's SFrame-encrypted video; a late joiner receives a keyframe
// from every sender at once (the periodic keyframe interval is set to ten
// minutes, so only the SFU's PLI on join can explain it); after a member
// is removed from the MLS group the others move to a new epoch whose
// SFrame keys the removed member lacks, so its decryption fails; removing
// it from the room makes the server end its call (close code 4003).
func TestSFUCallThroughHomeserver(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", func(cfg string) string {
		cfg = setConfig(t, cfg, `sfu_keyframe_interval = "3s"`, `sfu_keyframe_interval = "10m0s"`)
		cfg = setConfig(t, cfg, `sfu_ip = ""`, `sfu_ip = "127.0.0.1"`)
		return setConfig(t, cfg, `sync_ping_interval = "30s"`, `sync_ping_interval = "1s"`)
	})
	names := []string{"weber", "krause", "meyer", "late"}
	ids := make([]string, len(names))
	for i, n := range names {
		ids[i] = hs.addUser(n, "doctor")
	}
	hs.start()
	var members []*callMember
	for i, n := range names {
		members = append(members, &callMember{name: n, c: hs.login(ids[i])})
	}
	a, b, c, late := members[0], members[1], members[2], members[3]
	ctx := ctxT(t)
	room, err := a.c.CreateRoom(ctx, "Tumorboard")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members[1:] {
		if err := a.c.Invite(ctx, room, m.c.UserID); err != nil {
			t.Fatal(err)
		}
		if err := m.c.Join(ctx, room); err != nil {
			t.Fatal(err)
		}
	}
	newCallGroup(t, members)

	// Three participants: each decrypts the other two.
	for _, m := range []*callMember{a, b, c} {
		m.join(t, hs, room)
		m.startSending()
	}
	a.waitFrames(t, nil, 30, b, c)
	b.waitFrames(t, nil, 30, a, c)
	c.waitFrames(t, nil, 30, a, b)
	for _, m := range []*callMember{a, b, c} {
		for dev, s := range m.p.Stats() {
			if s.DecryptFailures != 0 {
				t.Fatalf("%s from %s: %+v", m.name, dev, s)
			}
		}
	}

	// A late joiner gets a keyframe from each sender promptly.
	plisBefore := a.p.KeyframeRequests()
	late.join(t, hs, room)
	late.startSending()
	late.waitFrames(t, nil, 10, a, b, c)
	for _, m := range []*callMember{a, b, c} {
		if s := late.p.Stats()[m.c.Device]; s.Keyframes == 0 {
			t.Fatalf("late joiner got no keyframe from %s: %+v", m.name, s)
		}
	}
	if a.p.KeyframeRequests() <= plisBefore {
		t.Fatalf("the SFU sent no PLI to %s when %s joined", a.name, late.name)
	}
	if got := a.p.Participants(); len(got) != 4 || got[3].DeviceID != late.c.Device {
		t.Fatalf("participants %+v", got)
	}

	// Weber removes Meyer from the MLS group: the others move to epoch 2.
	for _, m := range members {
		m.stopSending()
	}
	kidBefore, _ := a.keys.SendKID()
	out, err := a.group.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{mls.RemoveProposal(c.group.LeafIndex())}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.group.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*callMember{b, late} {
		if _, err := m.group.ProcessMessage(out.Commit); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []*callMember{a, b, late} {
		if err := m.keys.AddEpoch(m.group); err != nil {
			t.Fatal(err)
		}
	}
	if kidAfter, _ := a.keys.SendKID(); kidAfter == kidBefore {
		t.Fatalf("SFrame KID unchanged by the new epoch: %#x", kidAfter)
	}
	baseA, baseC := a.p.Stats(), c.p.Stats()
	for _, m := range []*callMember{a, b, late} {
		m.startSending()
	}
	b.waitFrames(t, b.p.Stats(), 20, a, late)
	ctxC, cancelC := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancelC()
	err = c.p.Wait(ctxC, func(s map[string]clientsfu.SenderStats) bool {
		return s[a.c.Device].DecryptFailures >= baseC[a.c.Device].DecryptFailures+20
	})
	if err != nil {
		t.Fatalf("removed member: %v", err)
	}
	sc := c.p.Stats()[a.c.Device]
	if sc.Frames != baseC[a.c.Device].Frames || !errors.Is(sc.LastError, sframe.ErrUnknownKID) {
		t.Fatalf("removed member decrypted epoch-2 frames: %+v", sc)
	}
	if s := a.p.Stats()[late.c.Device]; s.Frames <= baseA[late.c.Device].Frames || s.DecryptFailures != 0 {
		t.Fatalf("weber from the late joiner in epoch 2: %+v", s)
	}

	// Removing Meyer from the room ends Meyer's call.
	if err := a.c.Remove(ctx, room, c.c.UserID); err != nil {
		t.Fatal(err)
	}
	ctxEnd, cancelEnd := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelEnd()
	c.p.Wait(ctxEnd, func(map[string]clientsfu.SenderStats) bool { return false })
	var ce *websocket.CloseError
	if !errors.As(c.p.Err(), &ce) || ce.Code != 4003 {
		t.Fatalf("removed member's call ended with %v, want close code 4003", c.p.Err())
	}
	if err := a.p.Wait(ctxEnd, func(map[string]clientsfu.SenderStats) bool { return len(a.p.Participants()) == 3 }); err != nil {
		t.Fatalf("participants after removal: %v", err)
	}
}
