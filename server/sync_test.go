package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/medicus-health/medicus/proto"
)

// dialSyncBinary opens the sync WebSocket offering the binary subprotocol
// and fails unless the server selects it.
func (e *testEnv) dialSyncBinary(token string, since int64) *websocket.Conn {
	e.t.Helper()
	d := websocket.Dialer{TLSClientConfig: e.client.Transport.(*http.Transport).TLSClientConfig, HandshakeTimeout: 10 * time.Second,
		Subprotocols: []string{"medicus.sync.future", proto.SyncSubprotocolBinary}}
	url := "wss" + strings.TrimPrefix(e.ts.URL, "https") + fmt.Sprintf("/v1/sync?since=%d", since)
	conn, resp, err := d.Dial(url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		e.t.Fatalf("dial sync: %v (%v)", err, resp)
	}
	e.t.Cleanup(func() { conn.Close() })
	if conn.Subprotocol() != proto.SyncSubprotocolBinary {
		e.t.Fatalf("server selected subprotocol %q", conn.Subprotocol())
	}
	return conn
}

// readEvents reads frames until caught_up (if untilCaughtUp) or until it
// has n events, decoding binary and JSON frames alike. It fails if a JSON
// connection gets a binary frame.
func readEvents(t *testing.T, conn *websocket.Conn, binary, untilCaughtUp bool, n int) []proto.Event {
	t.Helper()
	var evs []proto.Event
	for untilCaughtUp || len(evs) < n {
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		typ, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("read sync frame: %v", err)
		}
		if typ == websocket.BinaryMessage {
			if !binary {
				t.Fatal("a JSON sync connection got a binary frame")
			}
			if evs, err = proto.DecodeEventsFrame(data, evs); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var f proto.SyncFrame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("decode %q: %v", data, err)
		}
		if binary && f.Type == proto.FrameEvents {
			t.Fatal("a binary sync connection got a JSON events frame")
		}
		if f.Type == proto.FrameCaughtUp && untilCaughtUp {
			return evs
		}
		evs = append(evs, f.Events...)
	}
	return evs
}

// TestBinarySyncCarriesTheSameEventsAsJSON compares the two forms of events
// frames, live from the ring and replayed from the store.
func TestBinarySyncCarriesTheSameEventsAsJSON(t *testing.T) {
	// A small ring makes the late connections replay from the store.
	e := newEnv(t, func(c *Config) { c.SyncRingEvents = 8 })
	doc, nurse := e.login("doc"), e.login("nurse")
	other := e.login("nurse")
	room := e.createRoom(doc.AccessToken)
	e.addMember(room, doc.AccessToken, nurse.UserID, nurse.AccessToken)

	jsonLive := e.dialSync(nurse.AccessToken, 0)
	binLive := e.dialSyncBinary(other.AccessToken, 0)
	readEvents(t, jsonLive, false, true, 0)
	readEvents(t, binLive, true, true, 0)
	const n = 40
	for i := range n {
		body := []byte(fmt.Sprintf("ciphertext %d", i))
		if i%10 == 0 {
			body = nil // empty bodies are allowed
		}
		e.send(room, doc.AccessToken, fmt.Sprintf("t%d", i), body)
	}
	live := readEvents(t, jsonLive, false, false, n)
	binary := readEvents(t, binLive, true, false, n)
	// Live JSON carries the time to the nanosecond, the binary form and
	// the store to the millisecond.
	for i := range live {
		live[i].Time = live[i].Time.Truncate(time.Millisecond)
	}
	if !reflect.DeepEqual(binary, live) {
		t.Fatalf("live binary events differ from JSON:\nbinary %+v\njson   %+v", binary, live)
	}

	// Both forms replayed from the store, member events included.
	jsonReplay := readEvents(t, e.dialSync(doc.AccessToken, 0), false, true, 0)
	binReplay := readEvents(t, e.dialSyncBinary(doc.AccessToken, 0), true, true, 0)
	if len(jsonReplay) != n+3 || !reflect.DeepEqual(binReplay, jsonReplay) {
		t.Fatalf("replayed binary events differ from JSON (%d and %d events, want %d):\nbinary %+v\njson   %+v", len(binReplay), len(jsonReplay), n+3, binReplay, jsonReplay)
	}
	if !reflect.DeepEqual(binReplay[3:], binary) {
		t.Fatalf("replayed events differ from live ones")
	}
	if m := binReplay[1].Member; m == nil || m.UserID != nurse.UserID || m.Membership != proto.MembershipInvite {
		t.Fatalf("second event is %+v, want the nurse's invitation", binReplay[1])
	}
}
