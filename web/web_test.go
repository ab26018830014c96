package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, path, acceptEncoding string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if acceptEncoding != "" {
		r.Header.Set("Accept-Encoding", acceptEncoding)
	}
	w := httptest.NewRecorder()
	Handler().ServeHTTP(w, r)
	return w.Result()
}

func TestHandlerServesAppWithPolicy(t *testing.T) {
	resp := get(t, "/", "")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<script src="/web/app.js"`) {
		t.Fatalf("GET /: %d %q", resp.StatusCode, body[:min(len(body), 200)])
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "'wasm-unsafe-eval'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if resp := get(t, "/web/no-such-file.js", ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing asset: %d, want 404", resp.StatusCode)
	}
}

func TestHandlerServesWasmGzipped(t *testing.T) {
	raw, err := static.ReadFile("static/medicus.wasm")
	if err != nil || !bytes.HasPrefix(raw, []byte("\x00asm")) {
		t.Fatalf("embedded wasm: %v (run go generate ./web)", err)
	}
	plain := get(t, "/web/medicus.wasm", "")
	got, _ := io.ReadAll(plain.Body)
	if plain.Header.Get("Content-Type") != "application/wasm" || !bytes.Equal(got, raw) {
		t.Fatalf("plain wasm: type %q, %d bytes, want %d", plain.Header.Get("Content-Type"), len(got), len(raw))
	}
	gz := get(t, "/web/medicus.wasm", "br;q=1, gzip;q=0.8")
	if gz.Header.Get("Content-Encoding") != "gzip" || gz.Header.Get("Content-Type") != "application/wasm" {
		t.Fatalf("gzip wasm headers: %v", gz.Header)
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, raw) {
		t.Fatalf("gzip wasm decompresses to %d bytes (%v), want the %d embedded", len(unzipped), err, len(raw))
	}
	compressed, _ := gzippedWasm()
	t.Logf("medicus.wasm: %d bytes raw, %d gzipped", len(raw), len(compressed))
}
