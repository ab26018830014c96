package api

import (
	"bytes"
	"time"
)

// syncConn is the sync WebSocket as Sync uses it: gorilla/websocket in a
// native process (syncconn_native.go), the browser's WebSocket under
// GOOS=js (syncconn_js.go).
type syncConn interface {
	// readMessage appends the next message to buf.
	readMessage(buf *bytes.Buffer) error
	writeJSON(v any) error
	setReadDeadline(t time.Time) error
	// close sends a normal close frame and closes the connection.
	close() error
}
