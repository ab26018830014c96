package ingest

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

func meas(patient, variable string, value float64, at time.Time) fhirobs.Measurement {
	return fhirobs.Measurement{Patient: patient, Variable: variable, Value: value, Unit: fhirobs.CanonicalUnit(variable), Time: at}
}

func ingest(t *testing.T, s *Store, ms ...fhirobs.Measurement) {
	t.Helper()
	if err := s.Ingest(context.Background(), ms); err != nil {
		t.Fatal(err)
	}
}

func TestStoreKeepsTheLastValueOfEachHour(t *testing.T) {
	s := NewStore(StoreConfig{})
	ingest(t, s,
		meas("p1", "HR", 90, t0.Add(10*time.Minute)),
		meas("p1", "HR", 110, t0.Add(50*time.Minute)),
		meas("p1", "HR", 100, t0.Add(30*time.Minute)), // arrives last, measured earlier
		meas("p1", "Resp", 24, t0.Add(3*time.Hour+5*time.Minute)),
	)
	// A lactate drawn in the second hour arrives after the fourth.
	ingest(t, s, meas("p1", "Lactate", 3.9, t0.Add(time.Hour+20*time.Minute)))
	p, ok := s.Patient("p1")
	if !ok || len(p.Hours) != 4 {
		t.Fatalf("patient %+v", p)
	}
	if hr := p.Hours[0].Values["HR"]; hr.Value != 110 || !hr.Time.Equal(t0.Add(50*time.Minute)) {
		t.Fatalf("hour 0 HR %+v, want the last measured (110)", hr)
	}
	if lac := p.Hours[1].Values["Lactate"]; lac.Value != 3.9 {
		t.Fatalf("hour 1 %+v", p.Hours[1])
	}
	if len(p.Hours[2].Values) != 0 || !p.Hours[2].Start.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("hour 2 should be empty: %+v", p.Hours[2])
	}
	if !p.DataTime.Equal(t0.Add(3*time.Hour + 5*time.Minute)) {
		t.Fatalf("data time %v", p.DataTime)
	}
	if !math.IsNaN(p.Age) || !math.IsNaN(p.Gender) {
		t.Fatalf("demographics %v %v, want unknown", p.Age, p.Gender)
	}
}

func TestStoreSignalsOnlyRealChanges(t *testing.T) {
	s := NewStore(StoreConfig{})
	m := meas("p1", "HR", 90, t0.Add(10*time.Minute))
	ingest(t, s, m, meas("p2", "Age", 71, t0), meas("p2", "Gender", 0, t0))
	select {
	case <-s.Changed():
	default:
		t.Fatal("no change signalled")
	}
	if got := s.TakeChanged(); len(got) != 2 || got[0] != "p1" || got[1] != "p2" {
		t.Fatalf("changed %v", got)
	}
	// The same measurement again (a redelivery) and an older value of the
	// same hour change nothing.
	ingest(t, s, m, meas("p1", "HR", 80, t0.Add(5*time.Minute)))
	if got := s.TakeChanged(); len(got) != 0 {
		t.Fatalf("changed %v after a redelivery", got)
	}
	p, _ := s.Patient("p2")
	if p.Age != 71 || p.Gender != 0 || len(p.Hours) != 0 {
		t.Fatalf("p2 %+v", p)
	}
	ingest(t, s, fhirobs.Measurement{Patient: "p1", Variable: "HR", Value: 90, Time: t0.Add(10 * time.Minute), Bed: "ICU3/04"})
	if got := s.TakeChanged(); len(got) != 1 {
		t.Fatal("a new bed is a change")
	}
	if p, _ := s.Patient("p1"); p.Bed != "ICU3/04" {
		t.Fatalf("bed %q", p.Bed)
	}
}

func TestStoreIsBounded(t *testing.T) {
	s := NewStore(StoreConfig{MaxPatients: 2, MaxHours: 3, Logger: slog.New(slog.DiscardHandler)})
	ingest(t, s, meas("old", "HR", 80, t0), meas("p1", "HR", 80, t0.Add(time.Hour)))
	ingest(t, s, meas("p2", "HR", 80, t0.Add(2*time.Hour)))
	if got := s.Patients(); len(got) != 2 || got[0] != "p1" || got[1] != "p2" {
		t.Fatalf("patients %v, want the one with the oldest data dropped", got)
	}
	for h := range 6 {
		ingest(t, s, meas("p1", "HR", float64(80+h), t0.Add(time.Duration(h)*time.Hour)))
	}
	ingest(t, s, meas("p1", "Resp", 20, t0)) // older than the window
	p, _ := s.Patient("p1")
	if len(p.Hours) != 3 || !p.Hours[0].Start.Equal(t0.Add(3*time.Hour)) || p.Hours[2].Values["HR"].Value != 85 {
		t.Fatalf("hours %+v", p.Hours)
	}
	if err := s.Discharge(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Patient("p1"); ok {
		t.Fatal("discharged patient still present")
	}
}
