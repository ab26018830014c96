package fhirobs

import (
	"encoding/json"
	"testing"
)

func FuzzDecodeObservation(f *testing.F) {
	for _, s := range []string{heartRate, bloodPressure, spo2, lactateLab, `{"resourceType":"Observation","status":"final","code":{}}`, `{}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := DecodeObservation(data)
		if err != nil {
			return
		}
		r := Map(o, testNow)
		for _, m := range r.Measurements {
			if !ValidPseudonym(m.Patient) || CanonicalUnit(m.Variable) == "" {
				t.Fatalf("accepted invalid measurement %+v", m)
			}
		}
		// Whatever decoded must encode and decode to the same mapping.
		again, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		o2, err := DecodeObservation(again)
		if err != nil {
			if len(again) > MaxObservationBytes {
				return
			}
			t.Fatalf("re-encoded observation does not decode: %v", err)
		}
		if r2 := Map(o2, testNow); len(r2.Measurements) != len(r.Measurements) || len(r2.Issues) != len(r.Issues) {
			t.Fatalf("mapping changed after re-encoding: %+v vs %+v", r, r2)
		}
	})
}

func FuzzDecodeBundle(f *testing.F) {
	f.Add([]byte(`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + heartRate + `,"request":{"method":"POST","url":"Observation"}}]}`))
	f.Add([]byte(`{"resourceType":"Bundle","type":"searchset","link":[{"relation":"next","url":"x"}],"entry":[{"resource":{"resourceType":"Observation"}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBundle(data)
		if err != nil {
			return
		}
		MapBundle(b, testNow)
	})
}
