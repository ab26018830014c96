package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/medicus-health/medicus/crypto/pki"
	"github.com/medicus-health/medicus/proto"
)

const testPassword = "a-long-password"

// testEnv is a real homeserver (real SQLite in a temporary directory) behind
// an httptest TLS server. restart closes both and opens them again on the
// same files.
type testEnv struct {
	t      testing.TB
	cfg    Config
	ca     *pki.CA
	s      *Server
	ts     *httptest.Server
	client *http.Client
}

func newEnv(t testing.TB, configure func(*Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("test", pki.CAValidity)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("test.example", []net.IP{net.IPv4(127, 0, 0, 1)}, pki.LeafValidity)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ServerName = "test.example"
	cfg.TLSCertFile, cfg.TLSKeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cfg.DatabaseFile, cfg.MediaDir = filepath.Join(dir, "db"), filepath.Join(dir, "media")
	if err := pki.WriteCertPEM(cfg.TLSCertFile, leaf.Cert); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKeyPEM(cfg.TLSKeyFile, leaf.Key); err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(&cfg)
	}
	admin, err := OpenAdmin(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, role string }{{"doc", "doctor"}, {"nurse", "nurse"}, {"pat", "patient"}, {"bot", "bot"}} {
		if _, err := admin.AddUser(context.Background(), u.name, u.role, testPassword); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.Close(); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, cfg: cfg, ca: ca}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *testEnv) start() {
	s, err := New(e.cfg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
	e.ts = httptest.NewTLSServer(s.Handler())
	e.client = e.ts.Client()
	e.client.Transport.(*http.Transport).MaxIdleConnsPerHost = 100
}

func (e *testEnv) stop() {
	if e.s == nil {
		return
	}
	e.ts.Close()
	if err := e.s.Close(); err != nil {
		e.t.Errorf("close server: %v", err)
	}
	e.s = nil
}

func (e *testEnv) restart() { e.stop(); e.start() }

// call sends a JSON request (body may be nil, a []byte sent raw, or a value
// encoded as JSON) and decodes a 200 answer into out. It returns the status
// and, for errors, the error code.
func (e *testEnv) call(method, path, token string, body, out any) (int, string) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		var pe proto.Error
		if err := json.Unmarshal(data, &pe); err != nil || !strings.HasPrefix(pe.Code, "M_") {
			e.t.Fatalf("%s %s: HTTP %d without a coded JSON error: %q", method, path, resp.StatusCode, data)
		}
		return resp.StatusCode, pe.Code
	}
	if out != nil {
		if p, ok := out.(*[]byte); ok {
			*p = data
		} else if err := json.Unmarshal(data, out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, ""
}

// must is call that fails the test unless the answer is 200.
func (e *testEnv) must(method, path, token string, body, out any) {
	e.t.Helper()
	if status, code := e.call(method, path, token, body, out); status != http.StatusOK {
		e.t.Fatalf("%s %s: HTTP %d %s", method, path, status, code)
	}
}

func (e *testEnv) login(user string) proto.LoginResponse {
	e.t.Helper()
	var lr proto.LoginResponse
	e.must("POST", "/v1/login", "", proto.LoginRequest{UserID: user, Password: testPassword}, &lr)
	return lr
}

func (e *testEnv) createRoom(token string) string {
	e.t.Helper()
	var cr proto.CreateRoomResponse
	e.must("POST", "/v1/rooms", token, proto.CreateRoomRequest{Name: "ward"}, &cr)
	return cr.RoomID
}

// addMember invites user into room as moderator and lets the user join.
func (e *testEnv) addMember(room, moderatorToken, user, userToken string) {
	e.t.Helper()
	e.must("POST", "/v1/rooms/"+room+"/invite", moderatorToken, proto.UserRequest{UserID: user}, nil)
	e.must("POST", "/v1/rooms/"+room+"/join", userToken, nil, nil)
}

func (e *testEnv) send(room, token, txn string, body []byte) proto.SendResponse {
	e.t.Helper()
	var sr proto.SendResponse
	e.must("PUT", "/v1/rooms/"+room+"/send/"+txn, token, proto.SendRequest{Kind: proto.KindMLSApp, Body: body}, &sr)
	return sr
}

func (e *testEnv) history(room, token string) []proto.Event {
	e.t.Helper()
	var hr proto.HistoryResponse
	e.must("GET", "/v1/rooms/"+room+"/messages?limit=1000", token, nil, &hr)
	return hr.Events
}

// dialSync opens the sync WebSocket of the token's device from since.
func (e *testEnv) dialSync(token string, since int64) *websocket.Conn {
	e.t.Helper()
	d := websocket.Dialer{TLSClientConfig: e.client.Transport.(*http.Transport).TLSClientConfig, HandshakeTimeout: 10 * time.Second}
	url := "wss" + strings.TrimPrefix(e.ts.URL, "https") + fmt.Sprintf("/v1/sync?since=%d", since)
	conn, resp, err := d.Dial(url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		e.t.Fatalf("dial sync: %v (%v)", err, resp)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

// readFrame reads one sync frame, failing the test after a deadline.
func readFrame(t testing.TB, conn *websocket.Conn) proto.SyncFrame {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var f proto.SyncFrame
	if err := conn.ReadJSON(&f); err != nil {
		t.Fatalf("read sync frame: %v", err)
	}
	return f
}

// collectEvents reads frames until it has n message events of kind
// mls-app (member events are collected too, returned separately).
func collectApp(t testing.TB, conn *websocket.Conn, n int) (app []proto.Event, cursor int64) {
	t.Helper()
	for len(app) < n {
		f := readFrame(t, conn)
		for _, ev := range f.Events {
			cursor = ev.Stream
			if ev.Kind == proto.KindMLSApp {
				app = append(app, ev)
			}
		}
	}
	return app, cursor
}

func TestRoomPolicy(t *testing.T) {
	e := newEnv(t, nil)
	doc, nurse, pat, bot := e.login("doc"), e.login("nurse"), e.login("pat"), e.login("bot")

	if status, code := e.call("POST", "/v1/rooms", pat.AccessToken, proto.CreateRoomRequest{}, nil); status != 403 || code != proto.ErrForbidden {
		t.Errorf("patient creates a room: %d %s, want 403 M_FORBIDDEN", status, code)
	}
	room := e.createRoom(doc.AccessToken)
	if status, code := e.call("POST", "/v1/rooms/"+room+"/join", bot.AccessToken, nil, nil); status != 403 || code != proto.ErrForbidden {
		t.Errorf("uninvited bot joins: %d %s, want 403 M_FORBIDDEN", status, code)
	}
	e.addMember(room, doc.AccessToken, nurse.UserID, nurse.AccessToken)
	e.addMember(room, doc.AccessToken, pat.UserID, pat.AccessToken)

	tests := []struct {
		name, token, action, target string
		status                      int
		code                        string
	}{
		{"patient invites", pat.AccessToken, "invite", bot.UserID, 403, proto.ErrForbidden},
		{"non-moderator member invites", nurse.AccessToken, "invite", bot.UserID, 403, proto.ErrForbidden},
		{"non-moderator member removes", nurse.AccessToken, "remove", pat.UserID, 403, proto.ErrForbidden},
		{"moderator invites a member again", doc.AccessToken, "invite", nurse.UserID, 409, proto.ErrConflict},
		{"moderator invites an unknown user", doc.AccessToken, "invite", "@nobody:test.example", 404, proto.ErrNotFound},
		{"moderator removes a member", doc.AccessToken, "remove", nurse.UserID, 200, ""},
	}
	for _, tc := range tests {
		status, code := e.call("POST", "/v1/rooms/"+room+"/"+tc.action, tc.token, proto.UserRequest{UserID: tc.target}, nil)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}
	if status, code := e.call("PUT", "/v1/rooms/"+room+"/send/x1", nurse.AccessToken, proto.SendRequest{Kind: "mls-app", Body: []byte{1}}, nil); status != 403 || code != proto.ErrForbidden {
		t.Errorf("removed member sends: %d %s, want 403 M_FORBIDDEN", status, code)
	}
	if status, _ := e.call("GET", "/v1/rooms/"+room+"/messages", nurse.AccessToken, nil, nil); status != 403 {
		t.Errorf("removed member reads history: %d, want 403", status)
	}
	// The bot, once invited, may join.
	e.addMember(room, doc.AccessToken, bot.UserID, bot.AccessToken)

	var rooms proto.RoomsResponse
	e.must("GET", "/v1/rooms", doc.AccessToken, nil, &rooms)
	if len(rooms.Rooms) != 1 {
		t.Fatalf("doctor's rooms: %+v", rooms)
	}
	got := map[string]string{}
	for _, m := range rooms.Rooms[0].Members {
		got[m.UserID] = m.RoomRole + "/" + m.Membership
	}
	want := map[string]string{doc.UserID: "moderator/join", pat.UserID: "member/join", bot.UserID: "member/join"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("members %v, want %v", got, want)
	}
}

func TestSendIsIdempotentPerTransactionID(t *testing.T) {
	e := newEnv(t, nil)
	doc := e.login("doc")
	room := e.createRoom(doc.AccessToken)
	first := e.send(room, doc.AccessToken, "txn-1", []byte("ciphertext"))
	again := e.send(room, doc.AccessToken, "txn-1", []byte("ciphertext"))
	other := e.send(room, doc.AccessToken, "txn-2", []byte("ciphertext"))
	if again != first {
		t.Errorf("repeated txn: %+v, want %+v", again, first)
	}
	if other.Seq != first.Seq+1 {
		t.Errorf("next txn got seq %d, want %d", other.Seq, first.Seq+1)
	}
	// Concurrent repeats of one txn also store once.
	var wg sync.WaitGroup
	seqs := make([]int64, 8)
	for i := range seqs {
		wg.Go(func() {
			var sr proto.SendResponse
			if status, code := e.call("PUT", "/v1/rooms/"+room+"/send/txn-3", doc.AccessToken, proto.SendRequest{Kind: "mls-app", Body: []byte("x")}, &sr); status != 200 {
				t.Errorf("concurrent send: %d %s", status, code)
			}
			seqs[i] = sr.Seq
		})
	}
	wg.Wait()
	for _, s := range seqs {
		if s != seqs[0] {
			t.Fatalf("concurrent repeats of one txn got seqs %v", seqs)
		}
	}
	app := 0
	for _, ev := range e.history(room, doc.AccessToken) {
		if ev.Kind == proto.KindMLSApp {
			app++
		}
	}
	if app != 3 {
		t.Errorf("history holds %d messages, want 3", app)
	}
}

func TestBadSendsChangeNothing(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMessageBytes = 2048 })
	doc, nurse := e.login("doc"), e.login("nurse")
	room := e.createRoom(doc.AccessToken)
	before := e.history(room, doc.AccessToken)

	tests := []struct {
		name   string
		token  string
		path   string
		body   any
		status int
		code   string
	}{
		{"oversized body", doc.AccessToken, "/send/a", proto.SendRequest{Kind: "mls-app", Body: make([]byte, 2049)}, 413, proto.ErrTooLarge},
		{"oversized request", doc.AccessToken, "/send/a", append([]byte(`{"kind":"mls-app","body":"`), bytes.Repeat([]byte("A"), 200<<10)...), 413, proto.ErrTooLarge},
		{"malformed JSON", doc.AccessToken, "/send/a", []byte(`{"kind":`), 400, proto.ErrBadJSON},
		{"unknown field", doc.AccessToken, "/send/a", []byte(`{"kind":"mls-app","body":"","x":1}`), 400, proto.ErrBadJSON},
		{"reserved kind", doc.AccessToken, "/send/a", proto.SendRequest{Kind: proto.KindMember}, 400, proto.ErrInvalidParam},
		{"bad txn id", doc.AccessToken, "/send/a%20b", proto.SendRequest{Kind: "mls-app"}, 400, proto.ErrInvalidParam},
		{"non-member", nurse.AccessToken, "/send/a", proto.SendRequest{Kind: "mls-app"}, 403, proto.ErrForbidden},
		{"no token", "", "/send/a", proto.SendRequest{Kind: "mls-app"}, 401, proto.ErrMissingToken},
		{"bad token", "forged", "/send/a", proto.SendRequest{Kind: "mls-app"}, 401, proto.ErrUnknownToken},
	}
	for _, tc := range tests {
		status, code := e.call("PUT", "/v1/rooms/"+room+tc.path, tc.token, tc.body, nil)
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, code, tc.status, tc.code)
		}
	}
	if after := e.history(room, doc.AccessToken); len(after) != len(before) {
		t.Errorf("refused sends changed the log: %d events, want %d", len(after), len(before))
	}
	// The transaction id a refused request named is still free.
	if sr := e.send(room, doc.AccessToken, "a", []byte("ok")); sr.Seq != int64(len(before))+1 {
		t.Errorf("first accepted send got seq %d, want %d", sr.Seq, len(before)+1)
	}
}

func TestKeyPackageClaimNeverHandsOutTwice(t *testing.T) {
	e := newEnv(t, nil)
	doc := e.login("doc")
	n1, n2 := e.login("nurse"), e.login("nurse")
	const many = 40
	var pkgs [][]byte
	for i := range many {
		pkgs = append(pkgs, []byte(fmt.Sprintf("kp-%d", i)))
	}
	var count proto.KeyPackageCount
	e.must("POST", "/v1/keys/upload", n1.AccessToken, proto.UploadKeyPackagesRequest{KeyPackages: pkgs, LastResort: []byte("last")}, &count)
	if count.Unclaimed != many || !count.HasLastResort {
		t.Fatalf("count after upload: %+v", count)
	}
	e.must("POST", "/v1/keys/upload", n2.AccessToken, proto.UploadKeyPackagesRequest{KeyPackages: [][]byte{[]byte("only")}}, nil)

	claim := func() proto.ClaimKeyPackagesResponse {
		var cr proto.ClaimKeyPackagesResponse
		if status, code := e.call("POST", "/v1/keys/claim", doc.AccessToken, proto.ClaimKeyPackagesRequest{UserID: n1.UserID}, &cr); status != 200 {
			t.Errorf("claim: %d %s", status, code)
		}
		return cr
	}
	// Concurrent claims: one package per device each, none handed out twice.
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range many {
		wg.Go(func() {
			cr := claim()
			mu.Lock()
			defer mu.Unlock()
			for _, kp := range cr.KeyPackages {
				if kp.DeviceID == n1.DeviceID && kp.LastResort {
					t.Errorf("last-resort package handed out while others were left")
				}
				seen[kp.DeviceID+"/"+string(kp.KeyPackage)]++
			}
		})
	}
	wg.Wait()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("key package %s handed out %d times", k, n)
		}
	}
	if len(seen) != many+1 {
		t.Errorf("%d distinct packages handed out, want %d", len(seen), many+1)
	}
	// Now only the last resort is left, and it may repeat.
	for range 2 {
		cr := claim()
		if len(cr.KeyPackages) != 1 || cr.KeyPackages[0].DeviceID != n1.DeviceID || !cr.KeyPackages[0].LastResort || string(cr.KeyPackages[0].KeyPackage) != "last" {
			t.Errorf("claim after exhaustion: %+v, want only the last resort of %s", cr, n1.DeviceID)
		}
	}
	e.must("GET", "/v1/keys/count", n1.AccessToken, nil, &count)
	if count.Unclaimed != 0 || !count.HasLastResort {
		t.Errorf("count after claims: %+v", count)
	}
	if status, code := e.call("POST", "/v1/keys/claim", n1.AccessToken, proto.ClaimKeyPackagesRequest{UserID: "bot"}, nil); status != 404 || code != proto.ErrNoKeyPackage {
		t.Errorf("claim for a user without packages: %d %s, want 404 M_NO_KEY_PACKAGE", status, code)
	}
}

func TestFailedLoginsAreRateLimited(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LoginFailureBurst, c.LoginFailuresPerMinute = 3, 0.01 })
	for i := range 3 {
		if status, code := e.call("POST", "/v1/login", "", proto.LoginRequest{UserID: "nurse", Password: "wrong"}, nil); status != 403 || code != proto.ErrForbidden {
			t.Fatalf("failed login %d: %d %s, want 403 M_FORBIDDEN", i, status, code)
		}
	}
	// Over the limit even the right password is refused, for the account
	// and for every account from the same address.
	for _, user := range []string{"nurse", "doc"} {
		if status, code := e.call("POST", "/v1/login", "", proto.LoginRequest{UserID: user, Password: testPassword}, nil); status != 429 || code != proto.ErrLimitExceeded {
			t.Errorf("login of %s after 3 failures from this address: %d %s, want 429 M_LIMIT_EXCEEDED", user, status, code)
		}
	}
}

func TestRefusedLoginsAreAuditedOncePerMinute(t *testing.T) {
	l := newLoginLimiter(1, 1)
	now := time.Now()
	l.fail(now, "user:a")
	var reports int
	for i := range 100 {
		blocked, _, report := l.blocked(now.Add(time.Duration(i)*time.Millisecond), "user:a")
		if !blocked {
			t.Fatal("key with no attempts left is not blocked")
		}
		if report {
			reports++
		}
	}
	if reports != 1 {
		t.Errorf("%d refusals audited within a second, want 1", reports)
	}
	l.fail(now.Add(61*time.Second), "user:a") // uses the token refilled meanwhile
	if _, _, report := l.blocked(now.Add(61*time.Second), "user:a"); !report {
		t.Error("a refusal a minute later is not audited")
	}
}

func TestLoginLimiterMemoryIsBounded(t *testing.T) {
	l := newLoginLimiter(1, 1)
	now := time.Now()
	for i := range maxLimiterKeys + 1000 {
		l.fail(now, fmt.Sprintf("addr:%d", i))
	}
	if n := len(l.buckets); n > maxLimiterKeys {
		t.Fatalf("limiter tracks %d keys, bound is %d", n, maxLimiterKeys)
	}
	// Keys beyond the bound share the overflow bucket, which fails closed.
	if blocked, _, _ := l.blocked(now, "addr:new"); !blocked {
		t.Errorf("a new key beyond the bound is not limited")
	}
	// Once the buckets are idle long enough to be full again, they are
	// dropped and new keys get their own.
	later := now.Add(2 * time.Hour)
	if blocked, _, _ := l.blocked(later, "addr:new"); blocked {
		t.Errorf("a new key is still limited after all buckets became idle")
	}
	if n := len(l.buckets); n > 1 {
		t.Errorf("idle buckets were not dropped: %d left", n)
	}
}

func TestSyncResumesWithoutGapsOrDuplicatesAcrossRestart(t *testing.T) {
	e := newEnv(t, nil)
	doc, nurse := e.login("doc"), e.login("nurse")
	room := e.createRoom(doc.AccessToken)
	e.addMember(room, doc.AccessToken, nurse.UserID, nurse.AccessToken)

	conn := e.dialSync(nurse.AccessToken, 0)
	for readFrame(t, conn).Type != proto.FrameCaughtUp {
	}
	for i := range 20 {
		e.send(room, doc.AccessToken, fmt.Sprintf("a%d", i), []byte{byte(i)})
	}
	live, cursor := collectApp(t, conn, 20)
	conn.Close()

	for i := 20; i < 50; i++ {
		e.send(room, doc.AccessToken, fmt.Sprintf("a%d", i), []byte{byte(i)})
	}
	e.restart()
	for i := 50; i < 60; i++ {
		e.send(room, doc.AccessToken, fmt.Sprintf("a%d", i), []byte{byte(i)})
	}
	conn = e.dialSync(nurse.AccessToken, cursor)
	var resumed []proto.Event
	for {
		f := readFrame(t, conn)
		if f.Type == proto.FrameCaughtUp {
			break
		}
		for _, ev := range f.Events {
			if ev.Kind == proto.KindMLSApp {
				resumed = append(resumed, ev)
			}
		}
	}
	all := append(live, resumed...)
	if len(all) != 60 {
		t.Fatalf("received %d messages over two connections, want 60", len(all))
	}
	for i, ev := range all {
		if len(ev.Body) != 1 || int(ev.Body[0]) != i || (i > 0 && ev.Seq != all[i-1].Seq+1) {
			t.Fatalf("message %d: body %v seq %d (previous seq %d): gap, duplicate or reordering", i, ev.Body, ev.Seq, all[max(i-1, 0)].Seq)
		}
	}
}

func TestSlowSyncReaderDoesNotBlockOthers(t *testing.T) {
	// A tiny ring forces the slow reader to catch up from the store.
	e := newEnv(t, func(c *Config) { c.SyncRingEvents = 8 })
	doc, nurse := e.login("doc"), e.login("nurse")
	slowDev := e.login("nurse")
	room := e.createRoom(doc.AccessToken)
	e.addMember(room, doc.AccessToken, nurse.UserID, nurse.AccessToken)

	slow := e.dialSync(slowDev.AccessToken, 0) // never read until the end
	fast := e.dialSync(nurse.AccessToken, 0)
	const n = 120
	body := bytes.Repeat([]byte{0xAB}, 48<<10) // n × 48 KiB exceeds socket buffers
	done := make(chan []proto.Event, 1)
	go func() {
		got, _ := collectApp(t, fast, n)
		done <- got
	}()
	for i := range n {
		e.send(room, doc.AccessToken, fmt.Sprintf("m%d", i), body)
	}
	select {
	case got := <-done:
		if len(got) != n {
			t.Fatalf("fast reader got %d messages", len(got))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("fast reader is blocked behind the slow one")
	}
	got, _ := collectApp(t, slow, n)
	for i, ev := range got {
		if i > 0 && ev.Seq != got[i-1].Seq+1 {
			t.Fatalf("slow reader: seq %d after %d", ev.Seq, got[i-1].Seq)
		}
	}
}

func TestDeviceMessagesAreRedeliveredUntilAcknowledged(t *testing.T) {
	e := newEnv(t, nil)
	doc, nurse := e.login("doc"), e.login("nurse")
	sendDM := func(txn, body string) {
		e.must("PUT", "/v1/send_to_device/"+txn, doc.AccessToken, proto.SendToDeviceRequest{Messages: []proto.OutgoingDeviceMessage{
			{UserID: nurse.UserID, DeviceID: nurse.DeviceID, Kind: proto.KindMLSWelcome, Body: []byte(body)}}}, nil)
	}
	firstDM := func(conn *websocket.Conn) proto.DeviceMessage {
		for {
			f := readFrame(t, conn)
			if f.Type == proto.FrameDeviceMessage {
				return *f.DeviceMessage
			}
		}
	}
	sendDM("t1", "welcome-1")
	sendDM("t1", "welcome-1") // a repeated txn queues nothing
	conn := e.dialSync(nurse.AccessToken, 0)
	m1 := firstDM(conn)
	if string(m1.Body) != "welcome-1" || m1.Sender != doc.UserID {
		t.Fatalf("device message %+v", m1)
	}
	conn.Close()
	conn = e.dialSync(nurse.AccessToken, 0)
	if again := firstDM(conn); again.ID != m1.ID {
		t.Fatalf("unacknowledged message not redelivered first: got %+v", again)
	}
	if err := conn.WriteJSON(proto.SyncFrame{Type: proto.FrameAck, Ack: &proto.AckRequest{UpTo: m1.ID}}); err != nil {
		t.Fatal(err)
	}
	// Live delivery of the next one proves the ack was processed in order.
	sendDM("t2", "welcome-2")
	if m2 := firstDM(conn); string(m2.Body) != "welcome-2" {
		t.Fatalf("live device message %+v", m2)
	}
	conn.Close()
	e.must("POST", "/v1/device_messages/ack", nurse.AccessToken, proto.AckRequest{UpTo: m1.ID}, nil)
	conn = e.dialSync(nurse.AccessToken, 0)
	if m := firstDM(conn); string(m.Body) != "welcome-2" {
		t.Fatalf("after ack of %d the first message is %+v, want welcome-2", m1.ID, m)
	}
}

func TestMediaOnlyForRoomMembersWithRanges(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMediaBytes = 1000 })
	doc, nurse := e.login("doc"), e.login("nurse")
	room := e.createRoom(doc.AccessToken)
	blob := []byte("0123456789 encrypted attachment")
	var mr proto.MediaResponse
	e.must("POST", "/v1/media?room="+room, doc.AccessToken, blob, &mr)
	if mr.Size != int64(len(blob)) || len(mr.MediaID) != 64 {
		t.Fatalf("upload answer %+v", mr)
	}
	if status, code := e.call("GET", "/v1/media/"+mr.MediaID, nurse.AccessToken, nil, nil); status != 404 || code != proto.ErrNotFound {
		t.Errorf("non-member download: %d %s, want 404 M_NOT_FOUND", status, code)
	}
	if status, _ := e.call("POST", "/v1/media?room="+room, nurse.AccessToken, blob, nil); status != 403 {
		t.Errorf("non-member upload: %d, want 403", status)
	}
	if status, code := e.call("POST", "/v1/media?room="+room, doc.AccessToken, make([]byte, 1001), nil); status != 413 || code != proto.ErrTooLarge {
		t.Errorf("oversized upload: %d %s, want 413 M_TOO_LARGE", status, code)
	}
	e.addMember(room, doc.AccessToken, nurse.UserID, nurse.AccessToken)
	var got []byte
	e.must("GET", "/v1/media/"+mr.MediaID, nurse.AccessToken, nil, &got)
	if !bytes.Equal(got, blob) {
		t.Errorf("download %q, want %q", got, blob)
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/v1/media/"+mr.MediaID, nil)
	req.Header.Set("Authorization", "Bearer "+nurse.AccessToken)
	req.Header.Set("Range", "bytes=2-5")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(part) != "2345" {
		t.Errorf("range download: %d %q, want 206 \"2345\"", resp.StatusCode, part)
	}
	// Only the one accepted blob is on disk: refused uploads left nothing.
	var files int
	filepath.WalkDir(e.cfg.MediaDir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return nil
	})
	if files != 1 {
		t.Errorf("media dir holds %d files, want 1", files)
	}
}

func TestServeShutdownSendsCloseFrame(t *testing.T) {
	e := newEnv(t, nil)
	e.stop() // use Serve on a real listener instead of httptest
	s, err := New(e.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Cert)
	e.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "test.example"}}}
	e.ts = &httptest.Server{URL: "https://" + ln.Addr().String()}
	nurse := e.login("nurse")
	conn := e.dialSync(nurse.AccessToken, 0)
	for readFrame(t, conn).Type != proto.FrameCaughtUp {
	}
	cancel()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Errorf("after shutdown the socket read %v, want close frame 1001", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestRevokedDeviceLosesTokenAndSync(t *testing.T) {
	e := newEnv(t, nil)
	phone, laptop := e.login("nurse"), e.login("nurse")
	conn := e.dialSync(laptop.AccessToken, 0)
	for readFrame(t, conn).Type != proto.FrameCaughtUp {
	}
	// Warm the token cache, then revoke the laptop from the phone.
	e.must("GET", "/v1/devices", laptop.AccessToken, nil, nil)
	e.must("DELETE", "/v1/devices/"+laptop.DeviceID, phone.AccessToken, nil, nil)
	if status, code := e.call("GET", "/v1/devices", laptop.AccessToken, nil, nil); status != 401 || code != proto.ErrUnknownToken {
		t.Errorf("revoked token: %d %s, want 401 M_UNKNOWN_TOKEN", status, code)
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
		t.Errorf("revoked device's sync read %v, want close frame 1008", err)
	}
	var devs proto.DevicesResponse
	e.must("GET", "/v1/devices", phone.AccessToken, nil, &devs)
	if len(devs.Devices) != 1 || devs.Devices[0].DeviceID != phone.DeviceID {
		t.Errorf("devices after revocation: %+v", devs.Devices)
	}
}

func TestSecondSyncConnectionReplacesFirst(t *testing.T) {
	e := newEnv(t, nil)
	nurse := e.login("nurse")
	first := e.dialSync(nurse.AccessToken, 0)
	for readFrame(t, first).Type != proto.FrameCaughtUp {
	}
	second := e.dialSync(nurse.AccessToken, 0)
	for readFrame(t, second).Type != proto.FrameCaughtUp {
	}
	first.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, _, err := first.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != closeReplaced {
		t.Errorf("first connection read %v, want close frame %d", err, closeReplaced)
	}
}

func TestSyncSurvivesPingsAndEndsWhenAccountDisabled(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SyncPingInterval = Duration{50 * time.Millisecond} })
	doc, nurse := e.login("doc"), e.login("nurse")
	room := e.createRoom(doc.AccessToken)
	e.addMember(room, doc.AccessToken, nurse.UserID, nurse.AccessToken)
	conn := e.dialSync(nurse.AccessToken, 0)
	pings := make(chan struct{}, 100)
	conn.SetPingHandler(func(data string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	frames := make(chan proto.SyncFrame, 100)
	readErr := make(chan error, 1)
	go func() {
		for {
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			var f proto.SyncFrame
			if err := conn.ReadJSON(&f); err != nil {
				readErr <- err
				return
			}
			frames <- f
		}
	}()
	deadline := time.After(20 * time.Second)
	for range 3 {
		select {
		case <-pings:
		case err := <-readErr:
			t.Fatalf("sync ended while the token is valid: %v", err)
		case <-deadline:
			t.Fatal("no pings")
		}
	}
	// Still delivering after the token checks at each ping.
	e.send(room, doc.AccessToken, "after-pings", []byte("x"))
	for got := false; !got; {
		select {
		case f := <-frames:
			for _, ev := range f.Events {
				got = got || ev.Kind == proto.KindMLSApp
			}
		case err := <-readErr:
			t.Fatalf("sync ended while the token is valid: %v", err)
		case <-deadline:
			t.Fatal("message not delivered")
		}
	}
	// Disabled by another process on the same database.
	admin, err := OpenAdmin(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.DisableUser(context.Background(), "nurse"); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	select {
	case err := <-readErr:
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Errorf("disabled account's sync read %v, want close frame 1008", err)
		}
	case <-deadline:
		t.Fatal("disabled account's sync stayed open")
	}
}

func TestDeviceMessageQueueIsBounded(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxQueuedDeviceMessages = 3 })
	doc, nurse := e.login("doc"), e.login("nurse")
	send := func(txn string) (int, string) {
		return e.call("PUT", "/v1/send_to_device/"+txn, doc.AccessToken, proto.SendToDeviceRequest{Messages: []proto.OutgoingDeviceMessage{
			{UserID: nurse.UserID, DeviceID: nurse.DeviceID, Kind: "call-invite", Body: []byte("x")}}}, nil)
	}
	for i := range 3 {
		if status, code := send(fmt.Sprint("t", i)); status != 200 {
			t.Fatalf("message %d: %d %s", i, status, code)
		}
	}
	if status, code := send("t3"); status != 429 || code != proto.ErrLimitExceeded {
		t.Fatalf("message over the queue bound: %d %s, want 429 M_LIMIT_EXCEEDED", status, code)
	}
	if status, code := send("t2"); status != 200 {
		t.Fatalf("repeat of a queued message to a full queue: %d %s, want 200", status, code)
	}
	// Acknowledging frees the queue.
	conn := e.dialSync(nurse.AccessToken, 0)
	var last int64
	for n := 0; n < 3; {
		if f := readFrame(t, conn); f.Type == proto.FrameDeviceMessage {
			last, n = f.DeviceMessage.ID, n+1
		}
	}
	e.must("POST", "/v1/device_messages/ack", nurse.AccessToken, proto.AckRequest{UpTo: last}, nil)
	if status, code := send("t3"); status != 200 {
		t.Fatalf("message after the ack: %d %s", status, code)
	}
}

func TestHubAcceptsOneCommitPerEpoch(t *testing.T) {
	e := newEnv(t, nil)
	doc := e.login("doc")
	room := e.createRoom(doc.AccessToken)
	commit := func(txn string, epoch *uint64) (int, string, proto.SendResponse) {
		var sr proto.SendResponse
		status, code := e.call("PUT", "/v1/rooms/"+room+"/send/"+txn, doc.AccessToken, proto.SendRequest{Kind: proto.KindMLSCommit, Body: []byte("c"), Epoch: epoch}, &sr)
		return status, code, sr
	}
	ep := func(n uint64) *uint64 { return &n }
	if status, code, _ := commit("c-0", ep(0)); status != 200 {
		t.Fatalf("first commit for epoch 0: %d %s", status, code)
	}
	// A second commit for epoch 0 lost the race.
	if status, code, _ := commit("c-0b", ep(0)); status != 409 || code != proto.ErrStaleEpoch {
		t.Errorf("second commit for epoch 0: %d %s, want 409 %s", status, code, proto.ErrStaleEpoch)
	}
	// A commit from the future is refused the same way.
	if status, code, _ := commit("c-5", ep(5)); status != 409 || code != proto.ErrStaleEpoch {
		t.Errorf("commit for epoch 5: %d %s, want 409 %s", status, code, proto.ErrStaleEpoch)
	}
	if status, code, _ := commit("c-none", nil); status != 400 || code != proto.ErrInvalidParam {
		t.Errorf("commit without epoch: %d %s, want 400 %s", status, code, proto.ErrInvalidParam)
	}
	// A retry of the accepted commit is answered, not refused, and stores nothing.
	_, _, first := commit("c-0", ep(0))
	status, code, next := commit("c-1", ep(1))
	if status != 200 || next.Seq != first.Seq+1 {
		t.Fatalf("commit for epoch 1: %d %s seq %d, want seq %d", status, code, next.Seq, first.Seq+1)
	}
	// The epoch survives a restart and is listed with the room.
	e.restart()
	var rooms proto.RoomsResponse
	if status, code := e.call("GET", "/v1/rooms", doc.AccessToken, nil, &rooms); status != 200 {
		t.Fatalf("list rooms: %d %s", status, code)
	}
	if len(rooms.Rooms) != 1 || rooms.Rooms[0].Epoch != 2 {
		t.Fatalf("rooms after two commits: %+v, want epoch 2", rooms.Rooms)
	}
	if status, code, _ := commit("c-1b", ep(1)); status != 409 || code != proto.ErrStaleEpoch {
		t.Errorf("stale commit after restart: %d %s", status, code)
	}
}

func TestHubRefusesAppMessageOfAnotherEpoch(t *testing.T) {
	e := newEnv(t, nil)
	doc := e.login("doc")
	room := e.createRoom(doc.AccessToken)
	send := func(txn, kind string, epoch uint64) (int, string) {
		return e.call("PUT", "/v1/rooms/"+room+"/send/"+txn, doc.AccessToken, proto.SendRequest{Kind: kind, Body: []byte("c"), Epoch: &epoch}, nil)
	}
	if status, code := send("a0", proto.KindMLSApp, 0); status != 200 {
		t.Fatalf("app message in the current epoch: %d %s", status, code)
	}
	if status, code := send("c0", proto.KindMLSCommit, 0); status != 200 {
		t.Fatalf("commit: %d %s", status, code)
	}
	if status, code := send("a0b", proto.KindMLSApp, 0); status != 409 || code != proto.ErrStaleEpoch {
		t.Errorf("app message of the left epoch: %d %s, want 409 %s", status, code, proto.ErrStaleEpoch)
	}
	if status, code := send("a1", proto.KindMLSApp, 1); status != 200 {
		t.Errorf("app message in the new epoch: %d %s", status, code)
	}
}

func TestClaimOneDevicesKeyPackage(t *testing.T) {
	e := newEnv(t, nil)
	doc := e.login("doc")
	phone, laptop := e.login("nurse"), e.login("nurse")
	for _, d := range []proto.LoginResponse{phone, laptop} {
		e.must("POST", "/v1/keys/upload", d.AccessToken, proto.UploadKeyPackagesRequest{KeyPackages: [][]byte{[]byte("kp-" + d.DeviceID)}}, nil)
	}
	var cr proto.ClaimKeyPackagesResponse
	e.must("POST", "/v1/keys/claim", doc.AccessToken, proto.ClaimKeyPackagesRequest{UserID: phone.UserID, DeviceID: laptop.DeviceID}, &cr)
	if len(cr.KeyPackages) != 1 || cr.KeyPackages[0].DeviceID != laptop.DeviceID {
		t.Fatalf("claim for one device: %+v", cr)
	}
	// The phone's package was not consumed.
	e.must("POST", "/v1/keys/claim", doc.AccessToken, proto.ClaimKeyPackagesRequest{UserID: phone.UserID}, &cr)
	if len(cr.KeyPackages) != 1 || cr.KeyPackages[0].DeviceID != phone.DeviceID {
		t.Fatalf("claim for all devices after: %+v", cr)
	}
	if status, code := e.call("POST", "/v1/keys/claim", doc.AccessToken, proto.ClaimKeyPackagesRequest{UserID: phone.UserID, DeviceID: "../x"}, nil); status != 400 || code != proto.ErrInvalidParam {
		t.Fatalf("malformed device id: %d %s", status, code)
	}
}
