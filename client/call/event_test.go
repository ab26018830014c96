package call

import (
	"errors"
	"strings"
	"testing"

	"github.com/medicus-health/medicus/client/content"
)

const testSDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"

func testEvents() []Event {
	h := Header{CallID: "c4LL.id_~-1", PartyID: "PARTY123", Version: ProtocolVersion}
	return []Event{
		&Invite{Header: h, Lifetime: 90000, Offer: SessionDescription{Type: "offer", SDP: testSDP}, Invitee: bob},
		&Candidates{Header: h, Candidates: []Candidate{
			{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", SDPMid: "0", SDPMLineIndex: 0},
			{}, // end of candidates
		}},
		&Answer{Header: h, Answer: SessionDescription{Type: "answer", SDP: testSDP}},
		&SelectAnswer{Header: h, SelectedPartyID: "OTHERPARTY"},
		&Reject{Header: h},
		&Negotiate{Header: h, Lifetime: 10000, Description: SessionDescription{Type: "offer", SDP: testSDP}},
		&Hangup{Header: h, Reason: ReasonICETimeout},
	}
}

func TestEventsRoundTrip(t *testing.T) {
	for _, ev := range testEvents() {
		typ, body, err := Marshal(ev)
		if err != nil {
			t.Fatalf("%s: %v", ev.Type(), err)
		}
		got, err := Unmarshal(typ, body)
		if err != nil {
			t.Fatalf("%s: %v\n%s", typ, err, body)
		}
		_, again, _ := Marshal(got)
		if string(again) != string(body) {
			t.Fatalf("%s does not round-trip:\n%s\n%s", typ, body, again)
		}
	}
}

func TestUnmarshalAcceptsSpecVariants(t *testing.T) {
	// Version may be a number (treated as "1" unless 0); a hangup without a
	// reason means user_hangup.
	ev, err := Unmarshal(TypeHangup, []byte(`{"call_id":"c1","party_id":"p1","version":1}`))
	if err != nil {
		t.Fatal(err)
	}
	h := ev.(*Hangup)
	if h.Reason != ReasonUserHangup || h.Version != "1" {
		t.Fatalf("got %+v", h)
	}
	if _, err := Unmarshal(TypeReject, []byte(`{"call_id":"c1","party_id":"p1","version":"2"}`)); err != nil {
		t.Fatalf("a later version must be accepted as version 1: %v", err)
	}
}

func TestUnmarshalRefusesBadInput(t *testing.T) {
	long := strings.Repeat("a", 256)
	cases := []struct {
		name string
		typ  EventType
		body string
		want error
	}{
		{"unknown type", "m.call.asserted_identity", `{}`, ErrUnknownEvent},
		{"version 0", TypeReject, `{"call_id":"c","party_id":"p","version":0}`, ErrUnsupportedVersion},
		{"missing version", TypeReject, `{"call_id":"c","party_id":"p"}`, ErrInvalidEvent},
		{"fractional version", TypeReject, `{"call_id":"c","party_id":"p","version":1.5}`, ErrInvalidEvent},
		{"unknown field", TypeReject, `{"call_id":"c","party_id":"p","version":"1","x":1}`, ErrInvalidEvent},
		{"duplicate field", TypeReject, `{"call_id":"c","call_id":"d","party_id":"p","version":"1"}`, ErrInvalidEvent},
		{"duplicate nested field", TypeAnswer, `{"call_id":"c","party_id":"p","version":"1","answer":{"type":"answer","type":"answer","sdp":"v=0"}}`, ErrInvalidEvent},
		{"trailing data", TypeReject, `{"call_id":"c","party_id":"p","version":"1"} {}`, ErrInvalidEvent},
		{"not an object", TypeReject, `[1]`, ErrInvalidEvent},
		{"bad call id", TypeReject, `{"call_id":"c/1","party_id":"p","version":"1"}`, ErrInvalidEvent},
		{"long party id", TypeReject, `{"call_id":"c","party_id":"` + long + `","version":"1"}`, ErrInvalidEvent},
		{"empty call id", TypeReject, `{"call_id":"","party_id":"p","version":"1"}`, ErrInvalidEvent},
		{"no lifetime", TypeInvite, `{"call_id":"c","party_id":"p","version":"1","offer":{"type":"offer","sdp":"v=0"}}`, ErrInvalidEvent},
		{"huge lifetime", TypeInvite, `{"call_id":"c","party_id":"p","version":"1","lifetime":99999999999,"offer":{"type":"offer","sdp":"v=0"}}`, ErrInvalidEvent},
		{"answer as offer", TypeInvite, `{"call_id":"c","party_id":"p","version":"1","lifetime":1000,"offer":{"type":"answer","sdp":"v=0"}}`, ErrInvalidEvent},
		{"not sdp", TypeAnswer, `{"call_id":"c","party_id":"p","version":"1","answer":{"type":"answer","sdp":"hello"}}`, ErrInvalidEvent},
		{"sdp with NUL", TypeAnswer, `{"call_id":"c","party_id":"p","version":"1","answer":{"type":"answer","sdp":"v=0\u0000"}}`, ErrInvalidEvent},
		{"no candidates", TypeCandidates, `{"call_id":"c","party_id":"p","version":"1","candidates":[]}`, ErrInvalidEvent},
		{"candidate line break", TypeCandidates, `{"call_id":"c","party_id":"p","version":"1","candidates":[{"candidate":"candidate:1\r\na=x","sdpMid":"0","sdpMLineIndex":0}]}`, ErrInvalidEvent},
		{"negative mline", TypeCandidates, `{"call_id":"c","party_id":"p","version":"1","candidates":[{"candidate":"","sdpMid":"0","sdpMLineIndex":-1}]}`, ErrInvalidEvent},
		{"unknown reason", TypeHangup, `{"call_id":"c","party_id":"p","version":"1","reason":"rejected"}`, ErrInvalidEvent},
		{"no selected party", TypeSelectAnswer, `{"call_id":"c","party_id":"p","version":"1"}`, ErrInvalidEvent},
		{"too large", TypeReject, `{"call_id":"c","party_id":"p","version":"1"` + strings.Repeat(" ", MaxEventSize) + `}`, ErrInvalidEvent},
		{"deep nesting", TypeReject, strings.Repeat("[", 100), ErrInvalidEvent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal(tc.typ, []byte(tc.body))
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMarshalRefusesInvalidEvents(t *testing.T) {
	if _, _, err := Marshal(&Hangup{Header: Header{CallID: "c", PartyID: "p", Version: "1"}, Reason: ReasonReplaced}); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("a local-only reason was sent: %v", err)
	}
	big := &Candidates{Header: Header{CallID: "c", PartyID: "p", Version: "1"}, Candidates: make([]Candidate, MaxCandidates+1)}
	if _, _, err := Marshal(big); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("an oversized batch was encoded: %v", err)
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, ev := range testEvents() {
		typ, body, err := Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(typ), body)
	}
	f.Add(string(TypeHangup), []byte(`{"call_id":"c","party_id":"p","version":0}`))
	f.Add(string(TypeReject), []byte(`{"call_id":"c","call_id":"c","party_id":"p","version":"1"}`))
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		ev, err := Unmarshal(EventType(typ), body)
		if err != nil {
			if ev != nil {
				t.Fatal("an event was returned with an error")
			}
			return
		}
		// Whatever decodes must encode and decode to the same event.
		t2, b2, err := Marshal(ev)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		if _, err := Unmarshal(t2, b2); err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
	})
}

func FuzzDecodeContent(f *testing.F) {
	for _, ev := range testEvents() {
		raw, err := EncodeContent(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	text, err := content.Encode(content.New(&content.Text{Markdown: "hi"}))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(text)
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, ok, err := DecodeContent(raw)
		if (ev != nil) != (ok && err == nil) {
			t.Fatalf("event %v with ok=%v err=%v", ev, ok, err)
		}
		if ev != nil {
			if _, err := EncodeContent(ev); err != nil {
				t.Fatalf("decoded event does not encode: %v", err)
			}
		}
	})
}

func TestDecodeContent(t *testing.T) {
	for _, ev := range testEvents() {
		raw, err := EncodeContent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := DecodeContent(raw)
		if !ok || err != nil || got.Type() != ev.Type() || got.Head().CallID != ev.Head().CallID {
			t.Fatalf("%s: got %v ok=%v err=%v", ev.Type(), got, ok, err)
		}
	}
	text, err := content.Encode(content.New(&content.Text{Markdown: "hi"}))
	if err != nil {
		t.Fatal(err)
	}
	if ev, ok, err := DecodeContent(text); ev != nil || ok || err != nil {
		t.Fatalf("a text message decoded as a call event: %v %v %v", ev, ok, err)
	}
	bad := []byte(`{"v":1,"id":"AAAAAAAAAAAAAAAAAAAAAA","type":"call","ts":1764390000000,"body":{"event":"m.call.hangup","body":{"call_id":"c","party_id":"p","version":"1","reason":"bored"}}}`)
	if _, ok, err := DecodeContent(bad); !ok || !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("an invalid call event: ok=%v err=%v", ok, err)
	}
}
