package ingest

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

func TestDurableStoreSurvivesARestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "patients.db")
	cfg := StoreConfig{MaxHours: 4, Logger: slog.New(slog.DiscardHandler)}
	s, err := OpenStore(ctx, path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ingest(t, s,
		meas("p1", "Age", 58, t0), meas("p1", "Gender", 1, t0),
		meas("p1", "HR", 90, t0.Add(10*time.Minute)),
		meas("p1", "HR", 95, t0.Add(40*time.Minute)),
		meas("p1", "HR", 92, t0.Add(20*time.Minute)), // older within the hour: not kept
		meas("p1", "Lactate", 2.8, t0.Add(2*time.Hour)),
		fhirobs.Measurement{Patient: "p2", Variable: "Resp", Value: 26, Time: t0, Bed: "ICU3/09"},
	)
	before, _ := s.Patient("p1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenStore(ctx, path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after, ok := s.Patient("p1")
	if !ok || len(after.Hours) != len(before.Hours) || after.Age != 58 || after.Gender != 1 || !after.DataTime.Equal(before.DataTime) {
		t.Fatalf("after restart %+v, before %+v", after, before)
	}
	if hr := after.Hours[0].Values["HR"]; hr.Value != 95 || !hr.Time.Equal(t0.Add(40*time.Minute)) {
		t.Fatalf("HR after restart %+v", hr)
	}
	if p2, _ := s.Patient("p2"); p2.Bed != "ICU3/09" {
		t.Fatalf("bed after restart %q", p2.Bed)
	}
	select {
	case <-s.Changed():
	default:
		t.Fatal("loaded patients are not marked for assessment")
	}
	if got := s.TakeChanged(); len(got) != 2 {
		t.Fatalf("changed %v", got)
	}

	// Hours leaving the window are deleted from the file too.
	ingest(t, s, meas("p1", "HR", 99, t0.Add(5*time.Hour)))
	if p, _ := s.Patient("p1"); len(p.Hours) != 4 || !p.Hours[0].Start.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("hours in memory %+v", p.Hours)
	}
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM measurements WHERE patient = 'p1' AND hour != 0`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 { // Lactate at hour 2 and HR at hour 5
		t.Fatalf("%d hourly rows left, want 2", n)
	}
	if err := s.Discharge(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM measurements WHERE patient = 'p1'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows after discharge, %v", n, err)
	}
}

func TestDurableStoreRefusesWhatItCannotWrite(t *testing.T) {
	ctx := context.Background()
	s, err := OpenStore(ctx, filepath.Join(t.TempDir(), "patients.db"), StoreConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the disk is gone
	if err := s.Ingest(ctx, []fhirobs.Measurement{meas("p1", "HR", 90, t0)}); err == nil {
		t.Fatal("Ingest succeeded without its database")
	}
	if _, ok := s.Patient("p1"); ok {
		t.Fatal("a measurement that was not written is in memory")
	}
}
