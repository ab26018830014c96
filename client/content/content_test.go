package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/medicus-health/medicus/crypto/attach"
)

const (
	testID     = "AAAAAAAAAAAAAAAAAAAAAA"
	otherID    = "BBBBBBBBBBBBBBBBBBBBBB"
	testTime   = Timestamp(1764403200000) // 2025-11-29T08:00:00Z
	testKeyB64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

func intp(i int) *int { return &i }

func testBlob() Blob {
	ct := []byte("ciphertext")
	sum := sha256.Sum256(ct)
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i)
	}
	return Blob{MediaID: hex.EncodeToString(sum[:]), Scheme: "aes256gcm-chunked-v1", Key: key, Nonce: []byte{1, 2, 3, 4}, SHA256: sum[:], Size: 1234}
}

// validMessages has one valid message of every type.
func validMessages() map[string]*Message {
	msg := func(irt string, b Body) *Message {
		return &Message{Version: 1, ID: testID, Time: testTime, InReplyTo: irt, Body: b}
	}
	thumb := testBlob()
	thumb.Size = 9000
	return map[string]*Message{
		"text":     msg("", &Text{Markdown: "Lactate **4.2** – please review."}),
		"reply":    msg(otherID, &Reply{Markdown: "On my way."}),
		"reaction": msg(otherID, &Reaction{Key: "👍"}),
		"edit":     msg("", &Edit{Replaces: otherID, Markdown: "Lactate **4.3**"}),
		"retract":  msg("", &Retraction{Replaces: otherID}),
		"attachment": msg("", &Attachment{Blob: testBlob(), MediaType: "image/png", Name: "wound.png", Width: 4000, Height: 3000,
			Thumbnail: &Thumbnail{Blob: thumb, MediaType: "image/jpeg", Width: 320, Height: 240}}),
		"attachment-dicom": msg("", &Attachment{Blob: testBlob(), MediaType: "application/dicom", Name: "ct.dcm",
			DICOM: &DICOMSummary{Modality: "CT", StudyDate: "20261128", StudyDescription: "CT THORAX", BodyPart: "CHEST"}}),
		"fhir-observation":       msg("", &FHIR{Resource: json.RawMessage(observationLactate)}),
		"fhir-report":            msg("", &FHIR{Resource: json.RawMessage(diagnosticReportCBC)}),
		"fhir-consent":           msg("", &FHIR{Resource: json.RawMessage(consentActive)}),
		"fhir-questionnaire":     msg("", &FHIR{Resource: json.RawMessage(questionnaireConsent)}),
		"fhir-qr":                msg("", &FHIR{Resource: json.RawMessage(questionnaireResponseYes)}),
		"call":                   msg("", &Call{Event: "invite", Body: json.RawMessage(`{"call_id":"c1","sdp":"v=0\r\n"}`)}),
		"call-no-body":           msg("", &Call{Event: "hangup"}),
		"alert":                  msg("", testAlert()),
		"alert-ack":              msg(otherID, &AlertAck{AlertEvent: otherID, AlertID: "icu3-12-0001", AckedBy: "@nurse.kim:uk-freiburg.example", Time: testTime + 60000, Note: "Lactate ordered."}),
		"consent-request":        msg("", &ConsentRequest{Consent: json.RawMessage(consentDraft), Markdown: "May we share your record with the tumour board?"}),
		"consent-request-q":      msg("", &ConsentRequest{Questionnaire: json.RawMessage(questionnaireConsent)}),
		"consent-response":       msg(otherID, testConsentResponse()),
		"consent-response-noirt": msg("", testConsentResponse()),
	}
}

func testAlert() *Alert {
	return &Alert{AlertID: "icu3-12-0001", Bed: "ICU-3 bed 12", Patient: "P-7f3a", Risk: 0.83, Trend: "rising",
		Scores: RuleScores{QSOFA: intp(2), SIRS: intp(3), NEWS2: intp(7)},
		Top: []Contribution{
			{Variable: "Lactate", Value: 4.2, Unit: "mmol/L", Time: testTime - 3600000, Weight: 0.31},
			{Variable: "HR", Value: 124, Unit: "/min", Time: testTime - 600000, Weight: 0.12},
		},
		DataTime: testTime - 600000, Level: 2, Summary: "Sepsis risk 0.83, rising"}
}

func testConsentResponse() *ConsentResponse {
	return &ConsentResponse{Request: otherID, Consent: json.RawMessage(consentActive), Answers: json.RawMessage(questionnaireResponseYes),
		Signer: "@patient.meyer:uk-freiburg.example", SignatureAlgorithm: "ed25519", Signature: bytes.Repeat([]byte{7}, 64)}
}

func TestEveryTypeRoundTrips(t *testing.T) {
	for name, m := range validMessages() {
		t.Run(name, func(t *testing.T) {
			b, err := Encode(m)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if got.Body.Type() != m.Body.Type() || got.ID != m.ID || got.Time != m.Time || got.InReplyTo != m.InReplyTo || got.Version != Version {
				t.Fatalf("envelope changed: %+v", got)
			}
			b2, err := Encode(got)
			if err != nil {
				t.Fatalf("re-Encode: %v", err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs:\n%s\n%s", b, b2)
			}
			if bytes.ContainsAny(b, "\n\t") {
				t.Errorf("encoding is not compact: %s", b)
			}
		})
	}
}

func TestDecodedBodiesAreTyped(t *testing.T) {
	ms := validMessages()
	enc := func(name string) *Message {
		b, err := Encode(ms[name])
		if err != nil {
			t.Fatal(err)
		}
		m, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	obs := enc("fhir-observation").Body.(*FHIR).Parsed()
	if obs == nil || obs.Observation == nil || obs.ResourceType != "Observation" {
		t.Fatalf("observation not parsed: %+v", obs)
	}
	if v := obs.Observation.ValueQuantity.Value.String(); v != "4.20" {
		t.Errorf("decimal precision lost: %s", v)
	}
	a := enc("attachment").Body.(*Attachment)
	if a.Params().Key[31] != 31 || a.Params().NoncePrefix != [4]byte{1, 2, 3, 4} || a.Hash() != [32]byte(a.SHA256) {
		t.Errorf("attachment params: %+v", a.Params())
	}
	al := enc("alert").Body.(*Alert)
	if *al.Scores.NEWS2 != 7 || al.Top[0].Variable != "Lactate" || al.DataTime.Time().Before(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("alert: %+v", al)
	}
	cr := enc("consent-response").Body.(*ConsentResponse)
	if !cr.Given() || cr.ParsedAnswers() == nil {
		t.Errorf("consent response: given=%v answers=%v", cr.Given(), cr.ParsedAnswers())
	}
	q := enc("consent-request-q").Body.(*ConsentRequest).Parsed()
	if q.Questionnaire == nil || len(q.Questionnaire.Item) != 2 {
		t.Errorf("questionnaire: %+v", q)
	}
}

// mutate encodes a valid message of the named type, decodes it as a generic
// tree, lets f change it and re-serialises it.
func mutate(t *testing.T, name string, f func(m map[string]any)) []byte {
	t.Helper()
	b, err := Encode(validMessages()[name])
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		t.Fatal(err)
	}
	f(tree)
	out, err := json.Marshal(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func body(m map[string]any) map[string]any { return m["body"].(map[string]any) }

// resource replaces a FHIR resource in a body field with the JSON given.
func resource(field, js string) func(m map[string]any) {
	return func(m map[string]any) { body(m)[field] = json.RawMessage(js) }
}

func TestDecodeRefuses(t *testing.T) {
	huge := `{"v":1,"id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"` + strings.Repeat("a", MaxMessageSize) + `"}}`
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	obsWith := func(extra string) string {
		return strings.Replace(observationLactate, `"status": "final",`, `"status": "final",`+extra, 1)
	}
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		// Envelope and JSON.
		{"empty input", []byte(""), ErrMalformed},
		{"not JSON", []byte("hello"), ErrMalformed},
		{"array", []byte(`[1]`), ErrMalformed},
		{"too large", []byte(huge), ErrTooLarge},
		{"nested too deep", []byte(`{"v":1,"x":` + deep + `}`), ErrMalformed},
		{"invalid UTF-8", append([]byte(`{"v":1,"id":"`+testID+`","type":"text","ts":1764403200000,"body":{"md":"`), 0xff, '"', '}', '}'), ErrMalformed},
		{"duplicate key", []byte(`{"v":1,"v":1,"id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"x"}}`), ErrMalformed},
		{"duplicate key by escape", []byte(`{"v":1,"id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"x","\u006dd":"y"}}`), ErrMalformed},
		{"duplicate key among many", []byte(`{"v":1,"a1":1,"a2":1,"a3":1,"a4":1,"a5":1,"a6":1,"a7":1,"a8":1,"a9":1,"b1":1,"b2":1,"b3":1,"b4":1,"b5":1,"b6":1,"b7":1,"b8":1,"b9":1,"a5":2}`), ErrMalformed},
		{"lone high surrogate", []byte(`{"v":1,"id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"\ud83d"}}`), ErrMalformed},
		{"lone low surrogate", []byte(`{"v":1,"id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"\ude00x"}}`), ErrMalformed},
		{"reversed surrogates", []byte(`{"v":1,"id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"\ude00\ud83d"}}`), ErrMalformed},
		{"duplicate body key", []byte(`{"v":1,"id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"x","md":"y"}}`), ErrMalformed},
		{"trailing data", []byte(`{"v":1,"id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"x"}} {}`), ErrMalformed},
		{"no version", []byte(`{"id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"x"}}`), ErrUnsupportedVersion},
		{"version 2", []byte(`{"v":2,"id":"` + testID + `","type":"text","future":true}`), ErrUnsupportedVersion},
		{"version string", []byte(`{"v":"1","id":"` + testID + `","type":"text","ts":1764403200000,"body":{"md":"x"}}`), ErrMalformed},
		{"unknown type", mutate(t, "text", func(m map[string]any) { m["type"] = "poll" }), ErrUnknownType},
		{"unknown envelope field", mutate(t, "text", func(m map[string]any) { m["extra"] = 1 }), ErrMalformed},
		{"unknown body field", mutate(t, "text", func(m map[string]any) { body(m)["html"] = "<b>" }), ErrMalformed},
		{"missing body", mutate(t, "text", func(m map[string]any) { delete(m, "body") }), ErrInvalid},
		{"short id", mutate(t, "text", func(m map[string]any) { m["id"] = "abc" }), ErrInvalid},
		{"id with slash", mutate(t, "text", func(m map[string]any) { m["id"] = "AAAAAAAAAAAAAAAA/AAAAA" }), ErrInvalid},
		{"timestamp in 1970", mutate(t, "text", func(m map[string]any) { m["ts"] = 5 }), ErrInvalid},
		{"timestamp not integer", mutate(t, "text", func(m map[string]any) { m["ts"] = json.Number("1764403200000.5") }), ErrMalformed},
		{"bad in-reply-to", mutate(t, "text", func(m map[string]any) { m["irt"] = "x" }), ErrInvalid},
		{"reply to itself", mutate(t, "reply", func(m map[string]any) { m["irt"] = testID }), ErrInvalid},
		// Text, reply, reaction, edit, retraction.
		{"text empty", mutate(t, "text", func(m map[string]any) { body(m)["md"] = "  \n" }), ErrInvalid},
		{"text control character", mutate(t, "text", func(m map[string]any) { body(m)["md"] = "a\x1bb" }), ErrInvalid},
		{"text too long", mutate(t, "text", func(m map[string]any) { body(m)["md"] = strings.Repeat("x", MaxTextSize+1) }), ErrTooLarge},
		{"text wrong type", mutate(t, "text", func(m map[string]any) { body(m)["md"] = 5 }), ErrMalformed},
		{"reply without irt", mutate(t, "reply", func(m map[string]any) { delete(m, "irt") }), ErrInvalid},
		{"reaction without irt", mutate(t, "reaction", func(m map[string]any) { delete(m, "irt") }), ErrInvalid},
		{"reaction empty", mutate(t, "reaction", func(m map[string]any) { body(m)["key"] = "" }), ErrInvalid},
		{"reaction too long", mutate(t, "reaction", func(m map[string]any) { body(m)["key"] = strings.Repeat("😀", 20) }), ErrTooLarge},
		{"edit without target", mutate(t, "edit", func(m map[string]any) { delete(body(m), "replaces") }), ErrInvalid},
		{"edit of itself", mutate(t, "edit", func(m map[string]any) { body(m)["replaces"] = testID }), ErrInvalid},
		{"edit empty", mutate(t, "edit", func(m map[string]any) { body(m)["md"] = "" }), ErrInvalid},
		{"retraction bad target", mutate(t, "retract", func(m map[string]any) { body(m)["replaces"] = "short" }), ErrInvalid},
		// Attachment.
		{"attachment short key", mutate(t, "attachment", func(m map[string]any) { body(m)["key"] = "AAEC" }), ErrInvalid},
		{"attachment key not base64", mutate(t, "attachment", func(m map[string]any) { body(m)["key"] = "!!" }), ErrMalformed},
		{"attachment bad nonce", mutate(t, "attachment", func(m map[string]any) { body(m)["nonce"] = testKeyB64 }), ErrInvalid},
		{"attachment bad hash", mutate(t, "attachment", func(m map[string]any) { body(m)["sha256"] = "AAEC" }), ErrInvalid},
		{"attachment media id mismatch", mutate(t, "attachment", func(m map[string]any) { body(m)["media"] = strings.Repeat("0", 64) }), ErrInvalid},
		{"attachment unknown scheme", mutate(t, "attachment", func(m map[string]any) { body(m)["alg"] = "aes128cbc" }), ErrInvalid},
		{"attachment negative size", mutate(t, "attachment", func(m map[string]any) { body(m)["size"] = -1 }), ErrInvalid},
		{"attachment bad media type", mutate(t, "attachment", func(m map[string]any) { body(m)["mime"] = "image" }), ErrInvalid},
		{"attachment path in name", mutate(t, "attachment", func(m map[string]any) { body(m)["name"] = "../../etc/passwd" }), ErrInvalid},
		{"attachment bad server", mutate(t, "attachment", func(m map[string]any) { body(m)["server"] = "a b" }), ErrInvalid},
		{"thumbnail not image", mutate(t, "attachment", func(m map[string]any) { body(m)["thumb"].(map[string]any)["mime"] = "text/html" }), ErrInvalid},
		{"thumbnail too big", mutate(t, "attachment", func(m map[string]any) { body(m)["thumb"].(map[string]any)["w"] = 10000 }), ErrInvalid},
		{"thumbnail without key", mutate(t, "attachment", func(m map[string]any) { delete(body(m)["thumb"].(map[string]any), "key") }), ErrInvalid},
		{"dicom bad date", mutate(t, "attachment-dicom", func(m map[string]any) { body(m)["dicom"].(map[string]any)["study_date"] = "2026-11-28" }), ErrTooLarge},
		{"dicom bad month", mutate(t, "attachment-dicom", func(m map[string]any) { body(m)["dicom"].(map[string]any)["study_date"] = "20261328" }), ErrInvalid},
		{"dicom unknown field", mutate(t, "attachment-dicom", func(m map[string]any) { body(m)["dicom"].(map[string]any)["birth"] = "1970" }), ErrMalformed},
		// FHIR.
		{"fhir not an object", mutate(t, "fhir-observation", resource("resource", `[1]`)), ErrInvalid},
		{"fhir unsupported resource", mutate(t, "fhir-observation", resource("resource", `{"resourceType":"Patient","id":"p1"}`)), ErrInvalid},
		{"fhir no resourceType", mutate(t, "fhir-observation", resource("resource", `{"status":"final","code":{"text":"x"}}`)), ErrInvalid},
		{"observation without status", mutate(t, "fhir-observation", resource("resource", `{"resourceType":"Observation","code":{"text":"x"}}`)), ErrInvalid},
		{"observation without code", mutate(t, "fhir-observation", resource("resource", `{"resourceType":"Observation","status":"final"}`)), ErrInvalid},
		{"observation bad status", mutate(t, "fhir-observation", resource("resource", `{"resourceType":"Observation","status":"done","code":{"text":"x"}}`)), ErrInvalid},
		{"observation status number", mutate(t, "fhir-observation", resource("resource", `{"resourceType":"Observation","status":1,"code":{"text":"x"}}`)), ErrInvalid},
		{"observation value as string", mutate(t, "fhir-observation", resource("resource", obsWith(`"valueInteger": "7",`))), ErrInvalid},
		{"observation quantity value as string", mutate(t, "fhir-observation", resource("resource", strings.Replace(observationLactate, `"value": 4.20`, `"value": "4.20"`, 1))), ErrInvalid},
		{"observation two values", mutate(t, "fhir-observation", resource("resource", obsWith(`"valueString": "high",`))), ErrInvalid},
		{"observation value and absent reason", mutate(t, "fhir-observation", resource("resource", obsWith(`"dataAbsentReason": {"text": "lost"},`))), ErrInvalid},
		{"observation unknown element", mutate(t, "fhir-observation", resource("resource", obsWith(`"colour": "red",`))), ErrInvalid},
		{"observation null", mutate(t, "fhir-observation", resource("resource", obsWith(`"note": null,`))), ErrInvalid},
		{"observation empty array", mutate(t, "fhir-observation", resource("resource", obsWith(`"note": [],`))), ErrInvalid},
		{"observation empty object", mutate(t, "fhir-observation", resource("resource", obsWith(`"method": {},`))), ErrInvalid},
		{"observation empty string", mutate(t, "fhir-observation", resource("resource", obsWith(`"language": " ",`))), ErrInvalid},
		{"observation contained", mutate(t, "fhir-observation", resource("resource", obsWith(`"contained": [{"resourceType": "Patient"}],`))), ErrInvalid},
		{"observation primitive extension", mutate(t, "fhir-observation", resource("resource", obsWith(`"_status": {"id": "x"},`))), ErrInvalid},
		{"observation bad dateTime", mutate(t, "fhir-observation", resource("resource", strings.Replace(observationLactate, "2026-11-28T22:14:00+01:00", "28.11.2026", 1))), ErrInvalid},
		{"observation instant without zone", mutate(t, "fhir-observation", resource("resource", strings.Replace(observationLactate, "2026-11-28T22:31:05.120+01:00", "2026-11-28T22:31:05", 1))), ErrInvalid},
		{"observation code with spaces", mutate(t, "fhir-observation", resource("resource", strings.Replace(observationLactate, `"code": "2524-7"`, `"code": " 2524-7"`, 1))), ErrInvalid},
		{"observation bad reference", mutate(t, "fhir-observation", resource("resource", strings.Replace(observationLactate, "Patient/pseudo-4711", "pseudo 4711", 1))), ErrInvalid},
		{"observation lowercase reference type", mutate(t, "fhir-observation", resource("resource", strings.Replace(observationLactate, "Patient/pseudo-4711", "patient/4711", 1))), ErrInvalid},
		{"observation bad id", mutate(t, "fhir-observation", resource("resource", strings.Replace(observationLactate, `"id": "lactate-1"`, `"id": "lactate_1!"`, 1))), ErrInvalid},
		{"fhir duplicate key", mutate(t, "fhir-observation", resource("resource", obsWith(`"status": "final",`))), ErrMalformed},
		{"report without code", mutate(t, "fhir-report", resource("resource", `{"resourceType":"DiagnosticReport","status":"final"}`)), ErrInvalid},
		{"report bad status", mutate(t, "fhir-report", resource("resource", `{"resourceType":"DiagnosticReport","status":"signed","code":{"text":"x"}}`)), ErrInvalid},
		{"report bad result reference", mutate(t, "fhir-report", resource("resource", strings.Replace(diagnosticReportCBC, "Observation/hb-1", "#hb", 1))), ErrInvalid},
		{"consent without category", mutate(t, "fhir-consent", resource("resource", strings.Replace(consentActive, `"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],`, "", 1))), ErrInvalid},
		{"consent without policy", mutate(t, "fhir-consent", resource("resource", strings.Replace(consentActive, `,"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]}`, "", 1))), ErrInvalid},
		{"qr without status", mutate(t, "fhir-qr", resource("resource", `{"resourceType":"QuestionnaireResponse","item":[{"linkId":"1"}]}`)), ErrInvalid},
		{"qr item without linkId", mutate(t, "fhir-qr", resource("resource", `{"resourceType":"QuestionnaireResponse","status":"completed","item":[{"text":"a"}]}`)), ErrInvalid},
		{"qr answer with two values", mutate(t, "fhir-qr", resource("resource", `{"resourceType":"QuestionnaireResponse","status":"completed","item":[{"linkId":"1","answer":[{"valueBoolean":true,"valueString":"yes"}]}]}`)), ErrInvalid},
		{"questionnaire item without type", mutate(t, "fhir-questionnaire", resource("resource", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","text":"a"}]}`)), ErrInvalid},
		{"questionnaire bad item type", mutate(t, "fhir-questionnaire", resource("resource", `{"resourceType":"Questionnaire","status":"active","item":[{"linkId":"1","type":"slider"}]}`)), ErrInvalid},
		{"observation component without code", mutate(t, "fhir-observation", resource("resource", obsWith(`"component": [{"valueString": "x"}],`))), ErrInvalid},
		{"observation range without bounds", mutate(t, "fhir-observation", resource("resource", strings.Replace(observationLactate,
			`{"low": {"value": 0.5, "unit": "mmol/L"}, "high": {"value": 2.2, "unit": "mmol/L"}}`, `{"type": {"text": "normal"}}`, 1))), ErrInvalid},
		{"report media without link", mutate(t, "fhir-report", resource("resource", strings.Replace(diagnosticReportCBC, `"conclusion"`, `"media": [{"comment": "x"}], "conclusion"`, 1))), ErrInvalid},
		{"consent verification without verified", mutate(t, "fhir-consent", resource("resource", strings.Replace(consentActive, `"status":"active",`, `"status":"active","verification":[{"verificationDate":"2026-11-29"}],`, 1))), ErrInvalid},
		{"consent actor without reference", mutate(t, "consent-request", resource("consent", strings.Replace(consentDraft, `"type": "permit",`, `"type": "permit", "actor": [{"role": {"text": "doctor"}}],`, 1))), ErrInvalid},
		{"enableWhen without operator", mutate(t, "fhir-questionnaire", resource("resource", strings.Replace(questionnaireConsent, `"operator": "=", `, "", 1))), ErrInvalid},
		{"enableWhen with two answers", mutate(t, "fhir-questionnaire", resource("resource", strings.Replace(questionnaireConsent, `"answerBoolean": false`, `"answerBoolean": false, "answerString": "no"`, 1))), ErrInvalid},
		{"enableWhen bad operator", mutate(t, "fhir-questionnaire", resource("resource", strings.Replace(questionnaireConsent, `"operator": "="`, `"operator": "=="`, 1))), ErrInvalid},
		{"answerOption without value", mutate(t, "fhir-questionnaire", resource("resource", strings.Replace(questionnaireConsent, `{"valueString": "privacy"}`, `{"initialSelected": true}`, 1))), ErrInvalid},
		// Call.
		{"call bad event", mutate(t, "call", func(m map[string]any) { body(m)["event"] = "Invite Now" }), ErrInvalid},
		{"call empty event", mutate(t, "call", func(m map[string]any) { body(m)["event"] = "" }), ErrInvalid},
		{"call body too large", mutate(t, "call", func(m map[string]any) {
			body(m)["body"] = map[string]any{"sdp": strings.Repeat("a", MaxCallBodySize)}
		}), ErrTooLarge},
		// Alert and acknowledgment.
		{"alert risk above 1", mutate(t, "alert", func(m map[string]any) { body(m)["risk"] = 1.5 }), ErrInvalid},
		{"alert no bed or patient", mutate(t, "alert", func(m map[string]any) { delete(body(m), "bed"); delete(body(m), "patient") }), ErrInvalid},
		{"alert bad trend", mutate(t, "alert", func(m map[string]any) { body(m)["trend"] = "up" }), ErrInvalid},
		{"alert qsofa 4", mutate(t, "alert", func(m map[string]any) { body(m)["scores"].(map[string]any)["qsofa"] = 4 }), ErrInvalid},
		{"alert news2 negative", mutate(t, "alert", func(m map[string]any) { body(m)["scores"].(map[string]any)["news2"] = -1 }), ErrInvalid},
		{"alert level 0", mutate(t, "alert", func(m map[string]any) { body(m)["level"] = 0 }), ErrInvalid},
		{"alert no data time", mutate(t, "alert", func(m map[string]any) { delete(body(m), "data_ts") }), ErrInvalid},
		{"alert bad id", mutate(t, "alert", func(m map[string]any) { body(m)["alert_id"] = "A B" }), ErrInvalid},
		{"alert too many contributions", mutate(t, "alert", func(m map[string]any) {
			top := make([]any, MaxContributions+1)
			for i := range top {
				top[i] = map[string]any{"var": "HR", "value": 1}
			}
			body(m)["top"] = top
		}), ErrInvalid},
		{"alert contribution without variable", mutate(t, "alert", func(m map[string]any) { body(m)["top"] = []any{map[string]any{"value": 1}} }), ErrInvalid},
		{"ack bad user", mutate(t, "alert-ack", func(m map[string]any) { body(m)["by"] = "nurse.kim" }), ErrInvalid},
		{"ack irt mismatch", mutate(t, "alert-ack", func(m map[string]any) { m["irt"] = "CCCCCCCCCCCCCCCCCCCCCC" }), ErrInvalid},
		{"ack no time", mutate(t, "alert-ack", func(m map[string]any) { delete(body(m), "at") }), ErrInvalid},
		{"ack note too long", mutate(t, "alert-ack", func(m map[string]any) { body(m)["note"] = strings.Repeat("n", MaxNoteSize+1) }), ErrTooLarge},
		// Consent.
		{"consent request with both", mutate(t, "consent-request", resource("questionnaire", questionnaireConsent)), ErrInvalid},
		{"consent request with neither", mutate(t, "consent-request", func(m map[string]any) { delete(body(m), "consent") }), ErrInvalid},
		{"consent request already active", mutate(t, "consent-request", resource("consent", consentActive)), ErrInvalid},
		{"consent request with observation", mutate(t, "consent-request", resource("consent", observationLactate)), ErrInvalid},
		{"consent response still draft", mutate(t, "consent-response", resource("consent", consentDraft)), ErrInvalid},
		{"consent response answers not QR", mutate(t, "consent-response", resource("answers", consentActive)), ErrInvalid},
		{"consent response unsigned", mutate(t, "consent-response", func(m map[string]any) { delete(body(m), "sig") }), ErrInvalid},
		{"consent response bad signer", mutate(t, "consent-response", func(m map[string]any) { body(m)["signer"] = "patient" }), ErrInvalid},
		{"consent response irt mismatch", mutate(t, "consent-response", func(m map[string]any) { m["irt"] = "CCCCCCCCCCCCCCCCCCCCCC" }), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode(tc.input)
			if err == nil {
				t.Fatalf("Decode accepted %.300s as %+v", tc.input, m)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode error %q does not wrap %q", err, tc.want)
			}
		})
	}
}

func TestUnsupportedVersionSaysWhich(t *testing.T) {
	_, err := Decode([]byte(`{"v":7,"anything":"goes"}`))
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Got != 7 {
		t.Fatalf("err = %v, want *VersionError{7}", err)
	}
	if !strings.Contains(err.Error(), "version 7") || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("message %q does not name both versions", err)
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	tests := []struct {
		name string
		m    *Message
		want error
	}{
		{"nil", nil, ErrInvalid},
		{"no body", &Message{ID: testID, Time: testTime}, ErrInvalid},
		{"future version", &Message{Version: 2, ID: testID, Time: testTime, Body: &Text{Markdown: "x"}}, ErrUnsupportedVersion},
		{"no id", &Message{Time: testTime, Body: &Text{Markdown: "x"}}, ErrInvalid},
		{"reaction without target", &Message{ID: testID, Time: testTime, Body: &Reaction{Key: "+1"}}, ErrInvalid},
		{"bad fhir", &Message{ID: testID, Time: testTime, Body: &FHIR{Resource: json.RawMessage(`{"resourceType":"Observation"}`)}}, ErrInvalid},
		{"unsigned consent", &Message{ID: testID, Time: testTime, Body: func() Body { c := testConsentResponse(); c.Signature = nil; return c }()}, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Encode(tc.m); !errors.Is(err, tc.want) {
				t.Fatalf("Encode error %v, want %v", err, tc.want)
			}
		})
	}
}

// TestAttachmentOpensWhatAttachSealed follows a file from crypto/attach
// through an attachment message to decryption with the decoded parameters.
func TestAttachmentOpensWhatAttachSealed(t *testing.T) {
	plain := bytes.Repeat([]byte("DICOM? no, a wound photo. "), 10000)
	var blob bytes.Buffer
	sealed, err := attach.Encrypt(context.Background(), &blob, bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	m := New(&Attachment{Blob: Blob{MediaID: hex.EncodeToString(sealed.SHA256[:]), Scheme: attach.Scheme, Key: sealed.Key[:],
		Nonce: sealed.NoncePrefix[:], SHA256: sealed.SHA256[:], Size: sealed.PlaintextSize}, MediaType: "image/jpeg", Name: "wound.jpg"})
	enc, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	a := got.Body.(*Attachment)
	var out bytes.Buffer
	n, err := attach.Decrypt(context.Background(), &out, &blob, a.Params(), a.Hash())
	if err != nil || n != a.Size || !bytes.Equal(out.Bytes(), plain) {
		t.Fatalf("Decrypt = %d, %v", n, err)
	}
}

func TestZeroTimeIsAbsent(t *testing.T) {
	if At(time.Time{}) != 0 {
		t.Fatal("At(zero) is not 0")
	}
	a := testAlert()
	a.Top[0].Time = At(time.Time{})
	if _, err := Encode(&Message{ID: testID, Time: testTime, Body: a}); err != nil {
		t.Fatalf("contribution without time: %v", err)
	}
	a.DataTime = At(time.Time{})
	if _, err := Encode(&Message{ID: testID, Time: testTime, Body: a}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("alert without data time: %v", err)
	}
	if got := At(time.Date(2026, 11, 29, 8, 0, 0, 999_999_999, time.UTC)).Time(); !got.Equal(time.Date(2026, 11, 29, 8, 0, 0, 999_000_000, time.UTC)) {
		t.Fatalf("round trip %v", got)
	}
}

func TestNewSetsEnvelope(t *testing.T) {
	m := New(&Text{Markdown: "hi"})
	if m.Version != Version || !validID(m.ID) || !m.Time.valid() {
		t.Fatalf("New: %+v", m)
	}
	if New(&Text{Markdown: "hi"}).ID == m.ID {
		t.Fatal("two ids are equal")
	}
	if _, err := Encode(m); err != nil {
		t.Fatal(err)
	}
}

func TestConsentSigningInput(t *testing.T) {
	c := testConsentResponse()
	in1, err := c.SigningInput()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(in1, []byte("medicus consent response v1\n{")) {
		t.Fatalf("signing input starts %q", in1[:40])
	}
	// The same consent with other key order, whitespace and escaping signs
	// the same bytes.
	var tree map[string]any
	json.Unmarshal([]byte(consentActive), &tree)
	pretty, _ := json.MarshalIndent(tree, "", "   ")
	pretty = bytes.Replace(pretty, []byte("Consent"), []byte(`\u0043onsent`), 1)
	c2 := testConsentResponse()
	c2.Consent = pretty
	c2.Signature = nil
	in2, err := c2.SigningInput()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in1, in2) {
		t.Fatalf("signing input depends on formatting:\n%s\n%s", in1, in2)
	}
	// Changing any signed field changes the input.
	for name, change := range map[string]func(*ConsentResponse){
		"request": func(c *ConsentResponse) { c.Request = "CCCCCCCCCCCCCCCCCCCCCC" },
		"signer":  func(c *ConsentResponse) { c.Signer = "@mallory:uk-freiburg.example" },
		"alg":     func(c *ConsentResponse) { c.SignatureAlgorithm = "ml-dsa-65" },
		"status": func(c *ConsentResponse) {
			c.Consent = json.RawMessage(strings.Replace(consentActive, `"active"`, `"rejected"`, 1))
		},
		"answers": func(c *ConsentResponse) { c.Answers = nil },
	} {
		c3 := testConsentResponse()
		change(c3)
		in3, err := c3.SigningInput()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if bytes.Equal(in1, in3) {
			t.Errorf("changing %s does not change the signing input", name)
		}
	}
	bad := testConsentResponse()
	bad.Consent = json.RawMessage(consentDraft)
	if _, err := bad.SigningInput(); !errors.Is(err, ErrInvalid) {
		t.Errorf("SigningInput of a draft consent: %v", err)
	}
}

func TestCanonicalJSON(t *testing.T) {
	// RFC 8785 §3.2.2 and appendix examples.
	tests := []struct{ in, want string }{
		{`{"b":2,"a":1}`, `{"a":1,"b":2}`},
		{`[1.0, 1e2, -0, 0.000001, 1e-7, 1e21, 1e20, 123456789012345680000, 4.50, -1.5e-300]`,
			`[1,100,0,0.000001,1e-7,1e+21,100000000000000000000,123456789012345680000,4.5,-1.5e-300]`},
		{`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001]}`,
			`{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}`},
		{`{"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"}`, `{"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{`{"\u20ac":1,"\r":2,"1":3,"\u0080":4,"\ud83d\ude00":5,"\ufb33":6}`, "{\"\\r\":2,\"1\":3,\"\u0080\":4,\"€\":1,\"😀\":5,\"\ufb33\":6}"},
		{`{"a":[true,false,null],"b":"<&>"}`, `{"a":[true,false,null],"b":"<&>"}`},
	}
	for _, tc := range tests {
		got, err := CanonicalJSON([]byte(tc.in))
		if err != nil {
			t.Fatalf("CanonicalJSON(%s): %v", tc.in, err)
		}
		if string(got) != tc.want {
			t.Errorf("CanonicalJSON(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `1e400`, `{`, "\"\xff\"", `"\ud800"`, `["\udc00\ud800"]`} {
		if _, err := CanonicalJSON([]byte(bad)); err == nil {
			t.Errorf("CanonicalJSON(%q) accepted", bad)
		}
	}
}

// TestConsentSigningInputGolden fixes the signed bytes: any change to them
// breaks every signature made before, so it must be deliberate (and a new
// label version).
func TestConsentSigningInputGolden(t *testing.T) {
	c := &ConsentResponse{Request: otherID, Consent: json.RawMessage(consentActive), Answers: json.RawMessage(questionnaireResponseYes),
		Signer: "@patient.meyer:uk-freiburg.example", SignatureAlgorithm: "ed25519"}
	got, err := c.SigningInput()
	if err != nil {
		t.Fatal(err)
	}
	const want = "medicus consent response v1\n" +
		`{"answers":{"authored":"2026-11-29T09:12:00+01:00","item":[{"answer":[{"valueBoolean":true}],"linkId":"1"}],"resourceType":"QuestionnaireResponse","status":"completed"},` +
		`"consent":{"category":[{"coding":[{"code":"59284-0","system":"http://loinc.org"}]}],"dateTime":"2026-11-29T09:12:00+01:00","patient":{"reference":"Patient/pseudo-4711"},` +
		`"policyRule":{"coding":[{"code":"OPTIN","system":"http://terminology.hl7.org/CodeSystem/v3-ActCode"}]},"resourceType":"Consent",` +
		`"scope":{"coding":[{"code":"patient-privacy","system":"http://terminology.hl7.org/CodeSystem/consentscope"}]},"status":"active"},` +
		`"request":"BBBBBBBBBBBBBBBBBBBBBB","sig_alg":"ed25519","signer":"@patient.meyer:uk-freiburg.example"}`
	if string(got) != want {
		t.Fatalf("signing input changed:\n got %s\nwant %s", got, want)
	}
}

// TestCanonicalNumbers checks the ECMAScript number form on the values of
// RFC 8785 Appendix B.
func TestCanonicalNumbers(t *testing.T) {
	for in, want := range map[string]string{
		"0":                       "0",
		"-0":                      "0",
		"5e-324":                  "5e-324",
		"-5e-324":                 "-5e-324",
		"1.7976931348623157e308":  "1.7976931348623157e+308",
		"-1.7976931348623157e308": "-1.7976931348623157e+308",
		"9007199254740992":        "9007199254740992",
		"-9007199254740992":       "-9007199254740992",
		"295147905179352830000":   "295147905179352830000",
		"9.999999999999997e22":    "9.999999999999997e+22",
		"1e23":                    "1e+23",
		"1.0e23":                  "1e+23",
		"999999999999999700000":   "999999999999999700000",
		"999999999999999900000":   "999999999999999900000",
		"1e21":                    "1e+21",
		"0.000001":                "0.000001",
		"0.0000001":               "1e-7",
		"1.5e-7":                  "1.5e-7",
		"123.456e2":               "12345.6",
		"4.50":                    "4.5",
	} {
		got, err := CanonicalJSON([]byte(in))
		if err != nil || string(got) != want {
			t.Errorf("CanonicalJSON(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
}
