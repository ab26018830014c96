package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/medicus-health/medicus/sepsisbot/alerting"
)

// RiskScorer assesses a patient: the model's risk, the rule scores and the
// measurements behind the risk, for the patient's latest hour.
type RiskScorer interface {
	Assess(p Patient) (alerting.Assessment, error)
}

// Observer receives assessments; *alerting.Engine is one.
type Observer interface {
	Observe(ctx context.Context, a alerting.Assessment) error
}

// ErrNoData means a patient has no hourly data to assess yet.
var ErrNoData = errors.New("ingest: no hourly data")

// Monitor assesses every patient whose data changed and hands the
// assessment to the alert engine.
type Monitor struct {
	Store  *Store
	Scorer RiskScorer
	Alerts Observer
	// RoomFor chooses the ICU room of a patient; if nil, or if it returns
	// "", the engine's default room is used.
	RoomFor func(p Patient) string
	// Logger receives errors, never values; slog.Default() if nil.
	Logger *slog.Logger
}

// AssessChanged assesses each patient whose data changed since the last
// call, once, and returns how many were assessed. Errors of single
// patients are joined; the others are still assessed.
func (m *Monitor) AssessChanged(ctx context.Context) (int, error) {
	var errs []error
	n := 0
	for _, name := range m.Store.TakeChanged() {
		p, ok := m.Store.Patient(name)
		if !ok || len(p.Hours) == 0 {
			continue
		}
		a, err := m.Scorer.Assess(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("assess %s: %w", name, err))
			continue
		}
		a.Patient, a.Bed = p.Pseudonym, p.Bed
		if a.DataTime.IsZero() {
			a.DataTime = p.DataTime
		}
		if a.Room == "" && m.RoomFor != nil {
			a.Room = m.RoomFor(p)
		}
		if err := m.Alerts.Observe(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("alert policy for %s: %w", name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// Run assesses changed patients whenever the Store signals a change, until
// ctx is cancelled. It returns ctx.Err().
func (m *Monitor) Run(ctx context.Context) error {
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.Store.Changed():
			if _, err := m.AssessChanged(ctx); err != nil && ctx.Err() == nil {
				log.Warn("ingest: assessment failed", "err", err)
			}
		}
	}
}
