package test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/content"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decoded returns the decoded content messages among msgs.
func decoded(t *testing.T, msgs []client.Message) []*content.Message {
	t.Helper()
	var out []*content.Message
	for _, m := range msgs {
		if m.Type != client.TypeContent {
			continue
		}
		c, err := m.Decode()
		if err != nil {
			t.Fatalf("message %d does not decode: %v", m.Seq, err)
		}
		out = append(out, c)
	}
	return out
}

func TestEveryContentTypeAndSignedConsent(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	aliceID, bobID, paulID, botID := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor"), hs.addUser("paul", "patient"), hs.addUser("sepsis", "bot")
	hs.start()
	alice, bob, paul, bot := newDevice(t, hs, aliceID), newDevice(t, hs, bobID), newDevice(t, hs, paulID), newDevice(t, hs, botID)
	ctx := ctxT(t)
	room, err := alice.CreateRoom(ctx, "Follow-up PLAINTEXT-ROOMNAME")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{bobID, paulID, botID} {
		if err := alice.Invite(ctx, room, u); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []*device{bob, paul, bot} {
		d.sync()
		if info, _ := d.Room(room); info.Name != "Follow-up PLAINTEXT-ROOMNAME" {
			t.Errorf("%s sees room name %q", d.user, info.Name)
		}
	}

	text, err := alice.SendText(ctx, room, "**Biopsy** PLAINTEXT-TEXT")
	if err != nil {
		t.Fatal(err)
	}
	mustSend := func(d *device, body content.Body, irt string) client.Sent {
		t.Helper()
		s, err := d.SendContent(ctx, room, body, irt)
		if err != nil {
			t.Fatalf("%s sends %s: %v", d.user, body.Type(), err)
		}
		return s
	}
	mustSend(bob, &content.Reply{Markdown: "Agree PLAINTEXT-REPLY"}, text.ID)
	mustSend(paul, &content.Reaction{Key: "👍"}, text.ID)
	mustSend(alice, &content.Edit{Replaces: text.ID, Markdown: "**Biopsy** benign PLAINTEXT-EDIT"}, "")
	typo := mustSend(bob, &content.Text{Markdown: "typo"}, "")
	mustSend(bob, &content.Retraction{Replaces: typo.ID}, "")
	if _, err := alice.SendFHIR(ctx, room, readTestdata(t, "observation-lactate.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendFHIR(ctx, room, readTestdata(t, "report-cbc.json")); err != nil {
		t.Fatal(err)
	}
	// An invalid resource is refused before it leaves the sender.
	if _, err := alice.SendFHIR(ctx, room, readTestdata(t, "observation-invalid.json")); !errors.Is(err, content.ErrInvalid) {
		t.Errorf("invalid FHIR resource: %v, want content.ErrInvalid", err)
	}
	mustSend(alice, &content.Call{Event: "invite", Body: json.RawMessage(`{"call_id":"c1"}`)}, "")
	qsofa, news := 2, 7
	alertSent := mustSend(bot, &content.Alert{AlertID: "ep-1", Bed: "ICU-3 bed 12", Risk: 0.81, Trend: "rising",
		Scores: content.RuleScores{QSOFA: &qsofa, NEWS2: &news}, Top: []content.Contribution{{Variable: "Lactate", Value: 4.2, Unit: "mmol/L"}},
		DataTime: content.At(time.Now()), Level: 1}, "")
	notePath := filepath.Join(t.TempDir(), "discharge-note.txt")
	os.WriteFile(notePath, []byte("Discharge note PLAINTEXT-ATTACHMENT: wound healing well."), 0o600)
	if _, err := bob.SendFile(ctx, room, notePath, nil); err != nil {
		t.Fatal(err)
	}
	consentReq, err := alice.RequestConsent(ctx, room, readTestdata(t, "consent-draft.json"), "May we share your CT with the tumour board? PLAINTEXT-CONSENT")
	if err != nil {
		t.Fatal(err)
	}

	// Everyone receives every type; Paul answers the consent request and
	// Bob acknowledges the alert.
	wantTypes := []content.Type{content.TypeText, content.TypeReply, content.TypeReaction, content.TypeEdit, content.TypeText,
		content.TypeRetraction, content.TypeFHIR, content.TypeFHIR, content.TypeCall, content.TypeAlert, content.TypeAttachment, content.TypeConsentRequest}
	for _, d := range []*device{alice, bob, paul, bot} {
		d.sync()
		hist, err := d.History(ctx, room, 1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var types []content.Type
		for _, c := range decoded(t, hist) {
			types = append(types, c.Body.Type())
		}
		if !slices.Equal(types, wantTypes) {
			t.Errorf("%s has content types %v, want %v", d.user, types, wantTypes)
		}
	}
	// The patient opens the attachment: hash verified, decrypted.
	hist, _ := paul.History(ctx, room, 1, 1000)
	for _, m := range hist {
		if c, err := m.Decode(); err == nil && c.Body.Type() == content.TypeAttachment {
			out := filepath.Join(t.TempDir(), "note.txt")
			if _, err := paul.Download(ctx, room, m.Seq, out); err != nil {
				t.Fatalf("patient downloads the attachment: %v", err)
			}
			if got, _ := os.ReadFile(out); !strings.Contains(string(got), "wound healing well") {
				t.Errorf("attachment decrypted to %q", got)
			}
		}
	}
	if _, err := paul.AnswerConsent(ctx, room, consentReq.Seq, true); err != nil {
		t.Fatal(err)
	}
	ack, err := bob.AckAlert(ctx, room, alertSent.Seq, "lactate repeated, cultures taken")
	if err != nil {
		t.Fatal(err)
	}
	msgs := alice.sync()
	cs := decoded(t, msgs)
	if len(cs) != 2 || cs[0].Body.Type() != content.TypeConsentResponse || cs[1].Body.Type() != content.TypeAlertAck {
		t.Fatalf("alice got %d messages: %+v", len(cs), msgs)
	}
	if a := cs[1].Body.(*content.AlertAck); a.AlertID != "ep-1" || a.AckedBy != bobID || cs[1].InReplyTo == "" {
		t.Errorf("ack: %+v", a)
	}
	bot.sync()
	botHist, _ := bot.Message(ctx, room, ack.Seq)
	if c, err := botHist.Decode(); err != nil || c.Body.Type() != content.TypeAlertAck {
		t.Errorf("the bot did not see the ack: %v", err)
	}
	// Both sides can export the signed consent; the signature verifies
	// under Paul's pinned identity key.
	var consentSeq int64
	for _, m := range msgs {
		if c, err := m.Decode(); err == nil && c.Body.Type() == content.TypeConsentResponse {
			consentSeq = m.Seq
		}
	}
	for _, d := range []*device{alice, paul} {
		rec, err := d.ExportConsent(ctx, room, consentSeq)
		if err != nil {
			t.Fatalf("%s exports consent: %v", d.user, err)
		}
		if !rec.Given || rec.Signer != paulID || rec.Requester != aliceID || len(rec.Request) == 0 {
			t.Errorf("%s's consent record: %+v", d.user, rec)
		}
	}
	// Paul (a patient) may not invite; the server says so.
	if err := paul.Invite(ctx, room, bobID); err == nil {
		t.Error("a patient could invite")
	}
	for _, marker := range []string{"PLAINTEXT-TEXT", "PLAINTEXT-REPLY", "PLAINTEXT-EDIT", "PLAINTEXT-LACTATE", "PLAINTEXT-CBC",
		"PLAINTEXT-CONSENT", "PLAINTEXT-ROOMNAME", "PLAINTEXT-ATTACHMENT", "discharge-note", "ICU-3 bed 12", "cultures taken", "pseudo-4711"} {
		hs.assertNoPlaintext([]byte(marker))
	}
}
