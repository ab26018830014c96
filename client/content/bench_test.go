package content

import (
	"encoding/json"
	"strings"
	"testing"
)

func benchmarkDecode(b *testing.B, m *Message) {
	enc, err := Encode(m)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeText measures a short text message.
func BenchmarkDecodeText(b *testing.B) {
	benchmarkDecode(b, validMessages()["text"])
}

// BenchmarkDecodeObservation measures a laboratory Observation.
func BenchmarkDecodeObservation(b *testing.B) {
	benchmarkDecode(b, validMessages()["fhir-observation"])
}

// BenchmarkDecodeLargeReport measures a DiagnosticReport near MaxFHIRSize
// (many results and a long conclusion).
func BenchmarkDecodeLargeReport(b *testing.B) {
	var refs []string
	for i := range 2000 {
		refs = append(refs, `{"reference":"Observation/o-`+strings.Repeat("x", i%20)+`"}`)
	}
	r := `{"resourceType":"DiagnosticReport","status":"final","code":{"text":"panel"},"result":[` + strings.Join(refs, ",") +
		`],"conclusion":"` + strings.Repeat("normal ", 12000) + `"}`
	if len(r) > MaxFHIRSize {
		b.Fatalf("report of %d bytes", len(r))
	}
	benchmarkDecode(b, &Message{ID: testID, Time: testTime, Body: &FHIR{Resource: json.RawMessage(r)}})
}
