package fhirobs

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkMapTransaction decodes and maps a transaction Bundle of one
// patient-hour: 30 Observations, as replay sends them.
func BenchmarkMapTransaction(b *testing.B) {
	at := time.Date(2026, 11, 29, 6, 30, 0, 0, time.UTC)
	var obs []*Observation
	for i, name := range Variables()[:30] {
		o, err := Encode("", Measurement{Patient: "stay-p000001", Variable: name, Value: []float64{0.5, 7.4, 37}[i%3] + map[bool]float64{true: 0, false: 10}[name == "FiO2" || name == "pH"], Time: at})
		if err != nil {
			b.Fatal(err)
		}
		obs = append(obs, o)
	}
	tx, err := NewTransaction(obs)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(tx)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		bundle, err := DecodeBundle(raw)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range bundle.Entry {
			o, err := DecodeObservation(e.Resource)
			if err != nil {
				b.Fatal(err)
			}
			Map(o, at)
		}
	}
}
