package sfu

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeClientMessageIsStrict(t *testing.T) {
	if m, err := DecodeClientMessage([]byte(`{"type":"answer","sdp":"v=0"}`)); err != nil || m.SDP != "v=0" {
		t.Fatalf("answer: %+v %v", m, err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{"type":"offer","sdp":"v=0"}`, `{"type":"answer"}`,
		`{"type":"answer","sdp":"v=0","extra":1}`, `{"type":"answer","sdp":"v=0"} {}`,
		`{"type":"answer","sdp":"v=0","participants":[]}`,
		`{"type":"answer","sdp":"` + strings.Repeat("a", MaxSignalBytes) + `"}`,
	} {
		if _, err := DecodeClientMessage([]byte(bad)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%.60q: %v", bad, err)
		}
	}
}

// FuzzDecodeClientMessage: any bytes decode to an answer with an SDP or to
// ErrProtocol, never a panic.
func FuzzDecodeClientMessage(f *testing.F) {
	f.Add([]byte(`{"type":"answer","sdp":"v=0\r\n"}`))
	f.Add([]byte(`{"type":"participants","participants":[{"user_id":"@a:x","device_id":"D"}]}`))
	f.Add([]byte(`{"type":"answer","sdp":"x"} trailing`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeClientMessage(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error not ErrProtocol: %v", err)
			}
			return
		}
		if m.Type != "answer" || m.SDP == "" {
			t.Fatalf("accepted %+v", m)
		}
	})
}
