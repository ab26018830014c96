// Package web is the medicus browser client: the Go client compiled to
// WebAssembly (web/wasm) and a small accessible UI in plain JavaScript,
// embedded so that the homeserver serves them itself (Handler).
//
// The built files in static/ are committed; after changing the client or
// web/wasm, rebuild them with `go generate ./web`.
package web

//go:generate env GOOS=js GOARCH=wasm go build -trimpath "-ldflags=-s -w" -o static/medicus.wasm ./wasm
//go:generate sh -c "cp \"$(go env GOROOT)/lib/wasm/wasm_exec.js\" static/wasm_exec.js"

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy lets the app load only its own scripts, compile
// its own WebAssembly and talk only to its own homeserver.
const contentSecurityPolicy = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' blob: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the web app: index.html at / and its assets under /web/.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	files := http.StripPrefix("/web/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, sub, "index.html")
			return
		case r.URL.Path == "/web/medicus.wasm" && acceptsGzip(r):
			h.Set("Vary", "Accept-Encoding")
			if gz, err := gzippedWasm(); err == nil {
				h.Set("Content-Type", "application/wasm")
				h.Set("Content-Encoding", "gzip")
				http.ServeContent(w, r, "medicus.wasm", time.Time{}, bytes.NewReader(gz))
				return
			}
		}
		files.ServeHTTP(w, r)
	})
}

// gzippedWasm compresses the embedded wasm once, on first use: about a
// quarter of its size on the wire, which matters on a phone.
var gzippedWasm = sync.OnceValues(func() ([]byte, error) {
	raw, err := static.ReadFile("static/medicus.wasm")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
})

func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for e := range strings.SplitSeq(v, ",") {
			if name, _, _ := strings.Cut(strings.TrimSpace(e), ";"); name == "gzip" {
				return true
			}
		}
	}
	return false
}
