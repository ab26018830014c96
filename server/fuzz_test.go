package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medicus-health/medicus/crypto/pki"
	"github.com/medicus-health/medicus/proto"
)

// newTestServer returns a server on a temporary directory with one doctor
// logged in, and that doctor's access token.
func newTestServer(t testing.TB) (*Server, string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("test", pki.CAValidity)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("test.example", nil, pki.LeafValidity)
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
	admin, err := OpenAdmin(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct{ name, role string }{{"doc", "doctor"}, {"pat", "patient"}} {
		if _, err := admin.AddUser(context.Background(), u.name, u.role, "a-long-password"); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/login", strings.NewReader(`{"user_id":"doc","password":"a-long-password"}`)))
	var lr proto.LoginResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &lr); err != nil || lr.AccessToken == "" {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	return s, lr.AccessToken
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
