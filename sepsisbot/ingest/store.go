// Package ingest keeps the sepsis bot's patient state: measurements from
// FHIR, HL7 v2 or replay, per patient pseudonym, aggregated into the hourly
// records the model consumes.
//
// The aggregation follows the PhysioNet 2019 convention: one record per
// hour of the stay, holding for each variable the last value measured in
// that hour (by measurement time, not arrival order), or nothing. Hours are
// clock hours (UTC); a stay starts at the hour of its earliest measurement.
// Late results (a lab value arriving hours after it was drawn) land in the
// hour they were measured, so each update yields the record the model would
// have seen with complete data. The state is bounded in patients and in
// hours per patient. A Store from OpenStore also keeps it in a SQLite file,
// written before Ingest returns, so that acknowledged data survive a
// restart of the bot.
//
// A Monitor connects the Store to a RiskScorer and the alert engine: every
// change of a patient's data is assessed once, coalescing bursts.
package ingest

import (
	"context"
	"database/sql"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

// Sample is one value in an hour with the time it was measured.
type Sample struct {
	Value float64
	Time  time.Time
}

// Hour is one hour of a stay.
type Hour struct {
	// Start is the beginning of the clock hour (UTC).
	Start time.Time
	// Values maps PhysioNet variable names to the last value measured in
	// the hour; variables not measured are absent.
	Values map[string]Sample
}

// Patient is a copy of one patient's state.
type Patient struct {
	// Pseudonym identifies the patient; Bed is the last location reported.
	Pseudonym string
	Bed       string
	// Hours are contiguous from the first hour of the stay to the hour of
	// the newest measurement; hours without data have empty Values.
	Hours []Hour
	// Age in years and Gender (1 male, 0 female) are NaN if unknown.
	Age, Gender float64
	// DataTime is the time of the newest measurement.
	DataTime time.Time
}

// StoreConfig bounds a Store.
type StoreConfig struct {
	// MaxPatients bounds the patients kept; when a new patient would
	// exceed it, the patient with the oldest data is dropped. Default 500.
	MaxPatients int
	// MaxHours bounds the hours kept per patient; older hours are dropped.
	// Default 14 days.
	MaxHours int
	// Logger receives evictions; slog.Default() if nil.
	Logger *slog.Logger
}

type patientState struct {
	bed         string
	hours       map[int64]map[string]Sample // unix hour → variable → sample
	first, last int64
	age, gender Sample
	dataTime    time.Time
}

// Store is the patient state. It is safe for concurrent use and
// implements the Sink interfaces of fhirapi and hl7.
type Store struct {
	cfg StoreConfig

	db *sql.DB // nil for a memory-only Store

	mu       sync.Mutex
	patients map[string]*patientState
	dirty    map[string]bool
	changed  chan struct{}
}

// NewStore returns an empty Store that keeps its state in memory only;
// OpenStore makes one that is durable.
func NewStore(cfg StoreConfig) *Store {
	if cfg.MaxPatients == 0 {
		cfg.MaxPatients = 500
	}
	if cfg.MaxHours == 0 {
		cfg.MaxHours = 14 * 24
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Store{cfg: cfg, patients: map[string]*patientState{}, dirty: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func unixHour(t time.Time) int64 { return int64(math.Floor(float64(t.Unix()) / 3600)) }

// Ingest adds measurements. A measurement replaces the value of its
// variable in its hour only if it was measured at the same time or later;
// measurements older than MaxHours before the patient's newest hour are
// dropped. Patients whose data changed are marked for assessment. A
// durable Store (OpenStore) writes the measurements first and fails,
// changing nothing, if it cannot; a memory-only Store never fails.
func (s *Store) Ingest(ctx context.Context, ms []fhirobs.Measurement) error {
	if len(ms) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db != nil {
		if err := s.persist(ctx, ms); err != nil {
			return err
		}
	}
	for _, m := range ms {
		if s.add(m) {
			s.dirty[m.Patient] = true
		}
	}
	if len(s.dirty) > 0 {
		s.signal()
	}
	return nil
}

// signal wakes a waiting Monitor without blocking.
func (s *Store) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// add stores one measurement and reports whether the state changed.
func (s *Store) add(m fhirobs.Measurement) bool {
	p := s.patients[m.Patient]
	h := unixHour(m.Time)
	if p == nil {
		if len(s.patients) >= s.cfg.MaxPatients {
			s.evictOldest()
		}
		p = &patientState{hours: map[int64]map[string]Sample{}, age: Sample{Value: math.NaN()}, gender: Sample{Value: math.NaN()}}
		s.patients[m.Patient] = p
	}
	changed := false
	if m.Bed != "" && m.Bed != p.bed {
		p.bed, changed = m.Bed, true
	}
	switch m.Variable {
	case "Age":
		return setIfNewer(&p.age, m) || changed
	case "Gender":
		return setIfNewer(&p.gender, m) || changed
	}
	if len(p.hours) == 0 {
		p.first, p.last = h, h
	}
	if h <= p.last-int64(s.cfg.MaxHours) {
		return changed
	}
	if m.Time.After(p.dataTime) {
		p.dataTime = m.Time
	}
	hour := p.hours[h]
	if hour == nil {
		hour = map[string]Sample{}
		p.hours[h] = hour
	}
	if old, ok := hour[m.Variable]; ok && (old.Time.After(m.Time) || (old.Time.Equal(m.Time) && old.Value == m.Value)) {
		return changed
	}
	hour[m.Variable] = Sample{Value: m.Value, Time: m.Time}
	if h < p.first {
		p.first = h
	}
	if h > p.last {
		p.last = h
		for k := range p.hours {
			if k <= p.last-int64(s.cfg.MaxHours) {
				delete(p.hours, k)
			}
		}
		if p.first <= p.last-int64(s.cfg.MaxHours) {
			p.first = p.last - int64(s.cfg.MaxHours) + 1
		}
	}
	return true
}

func setIfNewer(dst *Sample, m fhirobs.Measurement) bool {
	if !math.IsNaN(dst.Value) && (dst.Time.After(m.Time) || dst.Value == m.Value) {
		return false
	}
	*dst = Sample{Value: m.Value, Time: m.Time}
	return true
}

// evictOldest drops the patient whose newest data is oldest.
func (s *Store) evictOldest() {
	var victim string
	var oldest time.Time
	for name, p := range s.patients {
		if victim == "" || p.dataTime.Before(oldest) {
			victim, oldest = name, p.dataTime
		}
	}
	delete(s.patients, victim)
	delete(s.dirty, victim)
	if err := s.forget(context.Background(), victim); err != nil {
		s.cfg.Logger.Error("ingest: could not delete an evicted patient's data", "err", err)
	}
	s.cfg.Logger.Warn("ingest: patient limit reached; dropped the patient with the oldest data", "limit", s.cfg.MaxPatients)
}

// Patient returns a copy of a patient's state.
func (s *Store) Patient(pseudonym string) (Patient, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.patients[pseudonym]
	if p == nil {
		return Patient{}, false
	}
	out := Patient{Pseudonym: pseudonym, Bed: p.bed, Age: p.age.Value, Gender: p.gender.Value, DataTime: p.dataTime}
	if len(p.hours) == 0 {
		return out, true
	}
	for h := p.first; h <= p.last; h++ {
		vals := map[string]Sample{}
		for k, v := range p.hours[h] {
			vals[k] = v
		}
		out.Hours = append(out.Hours, Hour{Start: time.Unix(h*3600, 0).UTC(), Values: vals})
	}
	return out, true
}

// Patients returns the pseudonyms of all patients, sorted.
func (s *Store) Patients() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.patients))
	for n := range s.patients {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Discharge forgets a patient, also in the database of a durable Store.
func (s *Store) Discharge(ctx context.Context, pseudonym string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.patients, pseudonym)
	delete(s.dirty, pseudonym)
	return s.forget(ctx, pseudonym)
}

// Changed returns a channel that receives a value after patients' data
// changed; TakeChanged then returns them. Several changes may be
// coalesced into one signal.
func (s *Store) Changed() <-chan struct{} { return s.changed }

// TakeChanged returns the pseudonyms whose data changed since the last
// call, sorted, and clears the set.
func (s *Store) TakeChanged() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.dirty))
	for n := range s.dirty {
		names = append(names, n)
	}
	clear(s.dirty)
	sort.Strings(names)
	return names
}
