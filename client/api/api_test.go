package api

// These tests cover how the client treats answers the real homeserver never
// gives (proxies, broken or hostile servers); the client against the real
// homeserver is tested end to end in test/.

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/medicus-health/medicus/proto"
)

// newTestClient returns a client of an httptest TLS server running h.
func newTestClient(t *testing.T, h http.Handler) *Client {
	t.Helper()
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	c, err := New(ts.URL, ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("token")
	return c
}

func TestErrorAnswersBecomeTypedErrors(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        string
		wantCode    string
		wantMessage string
	}{
		{"json error", 403, `{"code":"M_FORBIDDEN","message":"patients cannot invite"}`, proto.ErrForbidden, "patients cannot invite"},
		{"proxy text", 502, "Bad Gateway", "HTTP_502", "Bad Gateway"},
		{"json without code", 500, `{"message":"x"}`, "HTTP_500", `{"message":"x"}`},
		{"truncated json", 400, `{"code":"M_BAD`, "HTTP_400", `{"code":"M_BAD`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			_, err := c.CreateRoom(context.Background(), "r")
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *api.Error", err)
			}
			if e.Status != tt.status || e.Code != tt.wantCode || e.Message != tt.wantMessage {
				t.Errorf("got %+v, want status %d code %s message %q", e, tt.status, tt.wantCode, tt.wantMessage)
			}
			if !IsCode(err, tt.wantCode) {
				t.Errorf("IsCode(err, %s) = false", tt.wantCode)
			}
		})
	}
}

func TestHugeErrorBodyIsReadOnlyInPart(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write(bytes.Repeat([]byte("x"), 1<<20))
	}))
	err := c.Join(context.Background(), "!room:example")
	var e *Error
	if !errors.As(err, &e) || len(e.Message) > 64<<10 {
		t.Fatalf("got %v (message %d bytes), want an *Error with at most 64 KiB of message", err, len(e.Message))
	}
}

func TestRangeAnsweredWithAnotherRangeIsRefused(t *testing.T) {
	blob := []byte("0123456789abcdefghij")
	tests := []struct {
		name      string
		handler   http.HandlerFunc
		from, to  int64
		want      string
		wantError error
	}{
		{"honoured range", func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
		}, 5, 9, "56789", nil},
		{"whole blob", func(w http.ResponseWriter, r *http.Request) {
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
		}, -1, -1, string(blob), nil},
		{"range ignored", func(w http.ResponseWriter, r *http.Request) {
			w.Write(blob)
		}, 5, 9, "", ErrRangeIgnored},
		{"other range", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 0-4/20")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(blob[:5])
		}, 5, 9, "", ErrRangeIgnored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, tt.handler)
			got, err := c.DownloadMedia(context.Background(), "m1", tt.from, tt.to)
			if !errors.Is(err, tt.wantError) {
				t.Fatalf("error %v, want %v", err, tt.wantError)
			}
			if string(got) != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSyncFramesSurviveBufferReuse(t *testing.T) {
	big := strings.Repeat("b", 2*maxRetainedFrameBuffer)
	frames := []string{
		`{"type":"caught_up","stream":7}`,
		`{"type":"caught_up","stream":8,"pad":"` + big + `"}`,
		`{"type":"caught_up","stream":9}`,
	}
	up := websocket.Upgrader{}
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, f := range frames {
			if conn.WriteMessage(websocket.TextMessage, []byte(f)) != nil {
				return
			}
		}
		conn.ReadMessage() // until the client closes
	}))
	s, err := c.Sync(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	first, err := s.NextRaw()
	if err != nil || string(first) != frames[0] {
		t.Fatalf("first frame %q, %v", first, err)
	}
	for i, want := range []int64{8, 9} {
		f, err := s.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		if f.Type != proto.FrameCaughtUp || f.Stream != want {
			t.Errorf("frame %d: got %+v, want caught_up at %d", i+1, f, want)
		}
	}
	if s.buf.Cap() > maxRetainedFrameBuffer+64<<10 {
		t.Errorf("after a small frame the buffer still holds %d bytes", s.buf.Cap())
	}
}

// TestBinarySyncDecodesBothFrameForms: on a binary connection Next decodes
// binary events frames and JSON frames alike, and the events it returned
// keep their bodies after later reads reuse the buffer. A server that does
// not select the subprotocol gets a JSON connection.
func TestBinarySyncDecodesBothFrameForms(t *testing.T) {
	evs := []proto.Event{
		{RoomID: "!aaaaaaaaaaaaaaaa:hub", Seq: 1, Stream: 5, Sender: "@a:hub", Kind: proto.KindMLSApp, Body: []byte("first"), Time: time.UnixMilli(1000).UTC()},
		{RoomID: "!aaaaaaaaaaaaaaaa:hub", Seq: 2, Stream: 6, Sender: "@a:hub", Kind: proto.KindMLSApp, Body: []byte("second"), Time: time.UnixMilli(2000).UTC()},
	}
	frame := []byte{proto.FrameTypeEvents}
	for i := range evs {
		frame = proto.AppendEventRecord(frame, &evs[i])
	}
	other := append([]byte{proto.FrameTypeEvents}, proto.AppendEventRecord(nil, &proto.Event{Stream: 7, Body: []byte("XXXXXXXXXXXX")})...)
	for _, serverBinary := range []bool{true, false} {
		up := websocket.Upgrader{}
		if serverBinary {
			up.Subprotocols = []string{proto.SyncSubprotocolBinary}
		}
		c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer conn.Close()
			if conn.Subprotocol() == proto.SyncSubprotocolBinary {
				conn.WriteMessage(websocket.BinaryMessage, frame)
				conn.WriteMessage(websocket.BinaryMessage, other)
			}
			conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"caught_up","stream":7}`))
			conn.ReadMessage() // until the client closes
		}))
		s, err := c.SyncWith(context.Background(), 0, SyncOptions{Binary: true})
		if err != nil {
			t.Fatal(err)
		}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if s.Binary() != serverBinary {
			t.Fatalf("Binary() = %v with a server that selects it: %v", s.Binary(), serverBinary)
		}
		if serverBinary {
			f, err := s.Next()
			if err != nil || f.Type != proto.FrameEvents {
				t.Fatalf("first frame %+v, %v", f, err)
			}
			if raw, err := s.NextRaw(); err != nil || !bytes.Equal(raw, other) {
				t.Fatalf("NextRaw = %x, %v; want the binary frame as sent", raw, err)
			}
			if !reflect.DeepEqual(f.Events, evs) {
				t.Fatalf("decoded %+v after a later read, want %+v", f.Events, evs)
			}
		}
		if f, err := s.Next(); err != nil || f.Type != proto.FrameCaughtUp || f.Stream != 7 {
			t.Fatalf("last frame %+v, %v", f, err)
		}
		s.Close()
	}
}
