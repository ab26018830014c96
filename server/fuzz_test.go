package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/medicus-health/medicus/proto"
)

// newTestServer returns the shared test environment's server (see newEnv)
// with its doctor logged in, and that doctor's access token.
func newTestServer(t testing.TB) (*Server, string) {
	t.Helper()
	e := newEnv(t, nil)
	rec := httptest.NewRecorder()
	body, _ := json.Marshal(proto.LoginRequest{UserID: "doc", Password: testPassword})
	e.s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/login", bytes.NewReader(body)))
	var lr proto.LoginResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &lr); err != nil || lr.AccessToken == "" {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	return e.s, lr.AccessToken
}

// FuzzRequestDecoding feeds arbitrary bodies to every JSON endpoint of the
// real handler. Every answer must be a success or a documented client error
// with a JSON error body — never a 500, never a panic.
func FuzzRequestDecoding(f *testing.F) {
	endpoints := []struct{ method, path string }{
		{"POST", "/v1/login"},
		{"POST", "/v1/rooms"},
		{"POST", "/v1/rooms/!AAAAAAAAAAAAAAAAAAAAAA:test.example/invite"},
		{"POST", "/v1/rooms/!AAAAAAAAAAAAAAAAAAAAAA:test.example/remove"},
		{"PUT", "/v1/rooms/!AAAAAAAAAAAAAAAAAAAAAA:test.example/send/t1"},
		{"POST", "/v1/keys/upload"},
		{"POST", "/v1/keys/claim"},
		{"PUT", "/v1/send_to_device/t1"},
		{"POST", "/v1/device_messages/ack"},
	}
	f.Add(uint8(0), []byte(`{"user_id":"doc","password":"x"}`))
	f.Add(uint8(1), []byte(`{"name":"Tumorboard"}`))
	f.Add(uint8(2), []byte(`{"user_id":"@pat:test.example"}`))
	f.Add(uint8(4), []byte(`{"kind":"mls-app","body":"AAEC"}`))
	f.Add(uint8(5), []byte(`{"key_packages":["AAEC"],"last_resort":"AQ=="}`))
	f.Add(uint8(6), []byte(`{"user_id":"doc"}`))
	f.Add(uint8(7), []byte(`{"messages":[{"user_id":"doc","device_id":"X","kind":"k","body":"AA=="}]}`))
	f.Add(uint8(8), []byte(`{"up_to":-1}`))
	f.Add(uint8(3), []byte(`{"user_id":1e999}`))
	s, token := newTestServer(f)
	h := s.Handler()
	allowed := map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 409: true, 413: true, 429: true}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		ep := endpoints[int(which)%len(endpoints)]
		req := httptest.NewRequest(ep.method, ep.path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("%s %s with %q: HTTP %d %s", ep.method, ep.path, body, rec.Code, rec.Body)
		}
		if rec.Code != http.StatusOK {
			var e proto.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.HasPrefix(e.Code, "M_") {
				t.Fatalf("error answer is not a coded JSON error: %s", rec.Body)
			}
		}
	})
}

// FuzzParameters feeds arbitrary query values, path ids and Range headers
// to the endpoints that parse them (history pagination, the sync cursor,
// room, device, transaction and media ids). Every answer must be a success
// or a coded JSON client error.
func FuzzParameters(f *testing.F) {
	f.Add(uint8(0), "1", "100")
	f.Add(uint8(0), "-1", "1e3")
	f.Add(uint8(1), "18446744073709551616", "")
	f.Add(uint8(2), "!AAAAAAAAAAAAAAAAAAAAAA:test.example", "")
	f.Add(uint8(3), "bytes=0-3", "")
	f.Add(uint8(3), "bytes=99999-", "")
	f.Add(uint8(3), "bytes=5-2,0-", "")
	f.Add(uint8(4), "ABCDEFGHJK", "")
	f.Add(uint8(5), "a b", "")
	s, token := newTestServer(f)
	h := s.Handler()
	// One room with one message and one blob, so that the parsers are
	// reached past the membership checks.
	room := mustCall(f, h, token, "POST", "/v1/rooms", `{"name":"r"}`)["room_id"].(string)
	mustCall(f, h, token, "PUT", "/v1/rooms/"+room+"/send/t1", `{"kind":"mls-app","body":"AAEC"}`)
	media := mustCall(f, h, token, "POST", "/v1/media?room="+url.QueryEscape(room), "0123456789")["media_id"].(string)
	// ServeMux answers unclean paths ("/v1/devices/.") with a redirect.
	allowed := map[int]bool{200: true, 206: true, 301: true, 307: true, 308: true, 400: true, 401: true, 403: true, 404: true, 405: true, 416: true}
	f.Fuzz(func(t *testing.T, which uint8, a, b string) {
		var req *http.Request
		switch which % 6 {
		case 0:
			req = httptest.NewRequest("GET", "/v1/rooms/"+room+"/messages?from="+url.QueryEscape(a)+"&limit="+url.QueryEscape(b), nil)
		case 1:
			req = httptest.NewRequest("GET", "/v1/sync?since="+url.QueryEscape(a), nil)
		case 2:
			req = httptest.NewRequest("GET", "/v1/rooms/"+url.PathEscape(a)+"/messages", nil)
		case 3:
			req = httptest.NewRequest("GET", "/v1/media/"+media, nil)
			req.Header.Set("Range", a)
		case 4:
			req = httptest.NewRequest("DELETE", "/v1/devices/"+url.PathEscape(a), nil)
		case 5:
			req = httptest.NewRequest("PUT", "/v1/rooms/"+room+"/send/"+url.PathEscape(a), strings.NewReader(`{"kind":"mls-app","body":""}`))
		}
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("%s %s (Range %q): HTTP %d %s", req.Method, req.URL, req.Header.Get("Range"), rec.Code, rec.Body)
		}
		if rec.Code >= 400 {
			var e proto.Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.HasPrefix(e.Code, "M_") {
				t.Fatalf("%s %s: error answer is not a coded JSON error: %q", req.Method, req.URL, rec.Body)
			}
		}
	})
}

func mustCall(tb testing.TB, h http.Handler, token, method, path, body string) map[string]any {
	tb.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		tb.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	return out
}

// FuzzParseUserID checks that parsing never panics and that what it
// accepts is canonical.
func FuzzParseUserID(f *testing.F) {
	for _, s := range []string{"alice", "@alice:uk-freiburg.example", "@:x", "@a:b:c", "@A:x", "@a:-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		local, server, err := ParseUserID(s, "default.example")
		if err != nil {
			return
		}
		again, server2, err := ParseUserID("@"+local+":"+server, "other.example")
		if err != nil || again != local || server2 != server {
			t.Fatalf("%q parsed to %q %q, which does not re-parse", s, local, server)
		}
	})
}

// FuzzSyncFrame checks decoding of client sync frames as the read loop does.
func FuzzSyncFrame(f *testing.F) {
	f.Add([]byte(`{"type":"ack","ack":{"up_to":5}}`))
	f.Add([]byte(`{"type":"events","events":[{}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr proto.SyncFrame
		if json.Unmarshal(data, &fr) != nil {
			return
		}
		b, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		var fr2 proto.SyncFrame
		if err := json.Unmarshal(b, &fr2); err != nil || normalize(fr) != normalize(fr2) {
			t.Fatalf("sync frame does not round-trip: %s", data)
		}
	})
}

func normalize(f proto.SyncFrame) string { b, _ := json.Marshal(f); return string(b) }
