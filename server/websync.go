package server

import (
	"cmp"
	"net/http"
	"strings"
)

// browserBearerPrefix prefixes the WebSocket subprotocol in which a browser
// sends its access token on the sync WebSocket (client/api's
// BearerProtocolPrefix): a browser's WebSocket can set no Authorization
// header, only subprotocols (RFC 6455 section 4.1, Sec-WebSocket-Protocol).
// A foreign page cannot know the token, so this adds no ambient authority.
const browserBearerPrefix = "medicus.bearer."

// browserSyncAuth moves a browser's access token from the
// Sec-WebSocket-Protocol header to the Authorization header, and removes
// it from the offered subprotocols, so that the server never echoes it; the
// browser also offers proto.SyncSubprotocolBinary, which the server selects.
func browserSyncAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			h.ServeHTTP(w, r)
			return
		}
		var token string
		var rest []string
		for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
			for p := range strings.SplitSeq(v, ",") {
				p = strings.TrimSpace(p)
				if t, ok := strings.CutPrefix(p, browserBearerPrefix); ok {
					token = cmp.Or(token, t) // the first token counts; none is passed on
				} else if p != "" {
					rest = append(rest, p)
				}
			}
		}
		if token != "" {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+token)
			r.Header.Del("Sec-WebSocket-Protocol")
			if len(rest) > 0 {
				r.Header.Set("Sec-WebSocket-Protocol", strings.Join(rest, ", "))
			}
		}
		h.ServeHTTP(w, r)
	})
}
