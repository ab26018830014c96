package sfu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/medicus-health/medicus/proto"
)

// MaxSignalBytes bounds one signalling message (an SDP with candidates).
const MaxSignalBytes = 256 << 10

// WebSocketSignal is a Signal over a WebSocket carrying proto.SFUMessage
// as JSON text frames.
type WebSocketSignal struct {
	conn      *websocket.Conn
	closeOnce sync.Once
}

// NewWebSocketSignal wraps conn, limiting incoming messages to MaxSignalBytes.
func NewWebSocketSignal(conn *websocket.Conn) *WebSocketSignal {
	conn.SetReadLimit(MaxSignalBytes)
	return &WebSocketSignal{conn: conn}
}

// Send writes m as one text frame.
func (s *WebSocketSignal) Send(m proto.SFUMessage) error {
	s.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return s.conn.WriteJSON(m)
}

// Receive reads the next message, refusing frames that are not one JSON
// SFUMessage.
func (s *WebSocketSignal) Receive() (proto.SFUMessage, error) {
	var m proto.SFUMessage
	typ, b, err := s.conn.ReadMessage()
	if err != nil {
		return m, err
	}
	if typ != websocket.TextMessage {
		return m, fmt.Errorf("%w: binary frame", ErrProtocol)
	}
	return DecodeClientMessage(b)
}

// DecodeClientMessage decodes one message a participant sent: strict JSON
// (no unknown fields, no trailing data) of type "answer" with an SDP of at
// most MaxSignalBytes. Anything else is ErrProtocol.
func DecodeClientMessage(b []byte) (proto.SFUMessage, error) {
	var m proto.SFUMessage
	if len(b) > MaxSignalBytes {
		return m, fmt.Errorf("%w: message of %d bytes", ErrProtocol, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return proto.SFUMessage{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	if dec.More() {
		return proto.SFUMessage{}, fmt.Errorf("%w: data after the JSON value", ErrProtocol)
	}
	if m.Type != proto.SFUAnswer || m.SDP == "" || m.Participants != nil {
		return proto.SFUMessage{}, fmt.Errorf("%w: clients send only answers with an SDP", ErrProtocol)
	}
	return m, nil
}

// Close codes of the signalling WebSocket besides 1000 (call ended).
const (
	CloseReplaced = 4409 // the device joined the call again
	CloseProtocol = 4400 // the participant broke the signalling protocol
)

// Close sends a close frame for reason (1000, CloseReplaced or
// CloseProtocol) and closes the connection.
func (s *WebSocketSignal) Close(reason error) error {
	switch {
	case errors.Is(reason, ErrReplaced):
		return s.CloseWith(CloseReplaced, "replaced by a newer connection of this device")
	case errors.Is(reason, ErrProtocol):
		return s.CloseWith(CloseProtocol, "signalling protocol violation")
	}
	return s.CloseWith(websocket.CloseNormalClosure, "call ended")
}

// CloseWith sends a close frame with code and reason and closes the
// connection. Only the first Close or CloseWith has an effect.
func (s *WebSocketSignal) CloseWith(code int, reason string) error {
	var err error
	s.closeOnce.Do(func() {
		s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		err = s.conn.Close()
	})
	return err
}
