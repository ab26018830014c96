package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/model"
)

// BenchmarkAssess48Hours measures one assessment of a patient with 48 hours
// of data: the hours are replayed into fresh features, so the cost grows
// with the length of the stay.
func BenchmarkAssess48Hours(b *testing.B) {
	m, err := model.Default()
	if err != nil {
		b.Fatal(err)
	}
	s := NewStore(StoreConfig{})
	for _, ms := range trajectory("bed-01", t0, 48, true) {
		if err := s.Ingest(context.Background(), ms); err != nil {
			b.Fatal(err)
		}
	}
	p, _ := s.Patient("bed-01")
	sc := ModelScorer{Model: m}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sc.Assess(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreIngest measures adding one hour of 13 measurements for one
// of 100 patients.
func BenchmarkStoreIngest(b *testing.B) {
	s := NewStore(StoreConfig{})
	hours := trajectory("bed-01", t0, 24, true)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ms := hours[i%24]
		for j := range ms {
			ms[j].Patient = "bed-" + string(rune('a'+i%100/10)) + string(rune('a'+i%10))
			ms[j].Time = ms[j].Time.Add(time.Duration(i/24) * 24 * time.Hour)
		}
		if err := s.Ingest(context.Background(), ms); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
