package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/alerting"
	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
	"github.com/medicus-health/medicus/sepsisbot/model"
)

// roomLog is an alerting.AlertSink keeping the posted alerts in memory.
type roomLog struct {
	mu     sync.Mutex
	alerts []alerting.Alert
}

func (r *roomLog) PostAlert(_ context.Context, room string, a alerting.Alert) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.alerts = append(r.alerts, a)
	return fmt.Sprintf("$e%d", len(r.alerts)), nil
}

func (r *roomLog) PostSummary(context.Context, string, alerting.Summary) (string, error) {
	return "$s", nil
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// trajectory interpolates a patient's vitals and labs from a stable state
// at hour 0 to a septic one at hour n-1.
func trajectory(patient string, start time.Time, hours int, septic bool) [][]fhirobs.Measurement {
	type lerp struct {
		v        string
		from, to float64
		every    int // measured every this many hours
	}
	vars := []lerp{
		{"HR", 82, 128, 1}, {"Resp", 15, 31, 1}, {"Temp", 36.9, 39.4, 2}, {"SBP", 128, 84, 1}, {"MAP", 88, 58, 1},
		{"DBP", 68, 45, 1}, {"O2Sat", 98, 89, 1}, {"FiO2", 0.21, 0.5, 4}, {"Lactate", 1.0, 4.8, 6}, {"WBC", 8.5, 19.5, 12},
		{"Creatinine", 0.9, 2.3, 12}, {"Platelets", 240, 95, 12}, {"Bilirubin_total", 0.6, 2.4, 12},
	}
	var out [][]fhirobs.Measurement
	for h := range hours {
		f := float64(h) / float64(hours-1)
		if !septic {
			f = 0
		}
		var ms []fhirobs.Measurement
		if h == 0 {
			ms = append(ms, meas(patient, "Age", 67, start), meas(patient, "Gender", 1, start))
		}
		for _, l := range vars {
			if h%l.every == 0 {
				ms = append(ms, meas(patient, l.v, l.from+(l.to-l.from)*f, start.Add(time.Duration(h)*time.Hour+20*time.Minute)))
			}
		}
		out = append(out, ms)
	}
	return out
}

func TestMonitorAlertsOnADeterioratingPatientOnly(t *testing.T) {
	m, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	audit, err := alerting.OpenAuditLog(filepath.Join(t.TempDir(), "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	clk := &clock{now: t0}
	sink := &roomLog{}
	eng, err := alerting.NewEngine(context.Background(), alerting.Config{Threshold: m.Threshold, DefaultRoom: "!icu:example", Clock: clk, Logger: quiet}, sink, audit)
	if err != nil {
		t.Fatal(err)
	}
	store := NewStore(StoreConfig{Logger: quiet})
	mon := &Monitor{Store: store, Scorer: ModelScorer{Model: m}, Alerts: eng, Logger: quiet}
	sick := trajectory("bed-01", t0, 36, true)
	well := trajectory("bed-02", t0, 36, false)
	var risks []float64
	for h := range sick {
		clk.now = t0.Add(time.Duration(h)*time.Hour + 30*time.Minute)
		ingest(t, store, append(sick[h], well[h]...)...)
		n, err := mon.AssessChanged(context.Background())
		if err != nil || n != 2 {
			t.Fatalf("hour %d: assessed %d, %v", h, n, err)
		}
		p, _ := store.Patient("bed-01")
		a, _ := ModelScorer{Model: m}.Assess(p)
		risks = append(risks, a.Risk)
	}
	t.Logf("threshold %.3f; risks of the deteriorating patient: %.2f", m.Threshold, risks)
	if len(sink.alerts) == 0 {
		t.Fatal("no alert for the deteriorating patient")
	}
	for _, a := range sink.alerts {
		if a.Patient != "bed-01" {
			t.Fatalf("alert for the stable patient: %+v", a)
		}
	}
	a := sink.alerts[0]
	if a.Kind != alerting.KindNew || len(a.Scores) != 4 || len(a.Contributions) == 0 || a.DataTime.IsZero() {
		t.Fatalf("alert %+v", a)
	}
	for _, c := range a.Contributions {
		if c.Measured && (c.Time.Minute() != 20 || c.Time.After(a.DataTime)) {
			t.Errorf("contribution %+v: not the time of a measurement", c)
		}
	}
}

// fixedScorer is a RiskScorer that gives every patient the same risk.
type fixedScorer float64

func (f fixedScorer) Assess(p Patient) (alerting.Assessment, error) {
	return alerting.Assessment{Risk: float64(f)}, nil
}

// observations is an Observer that passes assessments to a channel.
type observations chan alerting.Assessment

func (o observations) Observe(ctx context.Context, a alerting.Assessment) error {
	select {
	case o <- a:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestMonitorRunAssessesChangesUntilCancelled(t *testing.T) {
	store := NewStore(StoreConfig{})
	got := make(observations, 4)
	mon := &Monitor{Store: store, Scorer: fixedScorer(0.3), Alerts: got, RoomFor: func(p Patient) string { return "!room-of-" + p.Pseudonym }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx) }()
	ingest(t, store, fhirobs.Measurement{Patient: "bed-05", Variable: "HR", Value: 99, Time: t0, Bed: "ICU1/05"})
	select {
	case a := <-got:
		if a.Patient != "bed-05" || a.Bed != "ICU1/05" || a.Room != "!room-of-bed-05" || a.Risk != 0.3 || !a.DataTime.Equal(t0) {
			t.Fatalf("assessment %+v", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no assessment after a change")
	}
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}
