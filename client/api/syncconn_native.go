//go:build !js

package api

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
)

// maxSyncFrame bounds one sync frame.
const maxSyncFrame = 64 << 20

// dialSync opens the sync WebSocket at url with the access token in the
// Authorization header, offering protocols; it returns the subprotocol the
// server chose.
func (c *Client) dialSync(ctx context.Context, url string, protocols []string) (syncConn, string, error) {
	d := websocket.Dialer{TLSClientConfig: c.tls, HandshakeTimeout: 15 * time.Second, Subprotocols: protocols}
	h := http.Header{"Authorization": {"Bearer " + c.token}}
	conn, resp, err := d.DialContext(ctx, url, h)
	if err != nil {
		if resp != nil {
			defer resp.Body.Close()
			if apiErr := decodeResponse(resp, nil); apiErr != nil {
				return nil, "", apiErr
			}
		}
		return nil, "", fmt.Errorf("open sync: %w", err)
	}
	conn.SetReadLimit(maxSyncFrame)
	return gorillaConn{conn}, conn.Subprotocol(), nil
}

type gorillaConn struct{ c *websocket.Conn }

func (g gorillaConn) readMessage(buf *bytes.Buffer) error {
	_, r, err := g.c.NextReader()
	if err != nil {
		return err
	}
	_, err = buf.ReadFrom(r)
	return err
}

func (g gorillaConn) writeJSON(v any) error { return g.c.WriteJSON(v) }

func (g gorillaConn) setReadDeadline(t time.Time) error { return g.c.SetReadDeadline(t) }

func (g gorillaConn) close() error {
	g.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return g.c.Close()
}
