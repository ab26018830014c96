package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// seen records what browserSyncAuth passes on.
func seen(r *http.Request) (auth, protocols string) {
	var got *http.Request
	browserSyncAuth(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got = r })).ServeHTTP(httptest.NewRecorder(), r)
	return got.Header.Get("Authorization"), strings.Join(got.Header.Values("Sec-WebSocket-Protocol"), ",")
}

func TestBrowserSyncAuth(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/v1/sync", nil)
	r.Header.Set("Sec-WebSocket-Protocol", "medicus.bearer.mdc_abc, medicus.sync.binary.v1")
	if auth, protos := seen(r); auth != "Bearer mdc_abc" || protos != "medicus.sync.binary.v1" {
		t.Errorf("browser request: Authorization %q, protocols %q", auth, protos)
	}
	if r.Header.Get("Authorization") != "" {
		t.Error("the caller's request was modified")
	}
	// An Authorization header wins; the subprotocols stay as they are.
	r = httptest.NewRequest(http.MethodGet, "/v1/sync", nil)
	r.Header.Set("Authorization", "Bearer mdc_native")
	r.Header.Set("Sec-WebSocket-Protocol", "medicus.bearer.mdc_other")
	if auth, protos := seen(r); auth != "Bearer mdc_native" || protos != "medicus.bearer.mdc_other" {
		t.Errorf("native request: Authorization %q, protocols %q", auth, protos)
	}
	// Without a token nothing changes.
	r = httptest.NewRequest(http.MethodGet, "/v1/sync", nil)
	r.Header.Set("Sec-WebSocket-Protocol", "medicus.sync.binary.v1")
	if auth, protos := seen(r); auth != "" || protos != "medicus.sync.binary.v1" {
		t.Errorf("no token: Authorization %q, protocols %q", auth, protos)
	}
}

func FuzzBrowserSyncAuth(f *testing.F) {
	f.Add("medicus.bearer.mdc_abc, medicus.sync.binary.v1")
	f.Add("medicus.bearer.,,medicus.bearer.x")
	f.Add(" , medicus.bearer.\x00")
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest(http.MethodGet, "/v1/sync", nil)
		r.Header.Set("Sec-WebSocket-Protocol", header)
		auth, protos := seen(r)
		for p := range strings.SplitSeq(protos, ",") {
			if auth != "" && strings.HasPrefix(strings.TrimSpace(p), browserBearerPrefix) {
				t.Fatalf("token forwarded but a bearer protocol remains: %q", protos)
			}
		}
		if auth != "" && !strings.HasPrefix(auth, "Bearer ") {
			t.Fatalf("Authorization %q", auth)
		}
	})
}
