package ingest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

// schema keeps, per patient, variable and hour, the value a Store keeps
// in memory: the last measured. WITHOUT ROWID because the key is the
// natural one.
const schema = `
CREATE TABLE IF NOT EXISTS measurements (
	patient TEXT NOT NULL,
	variable TEXT NOT NULL,
	hour INTEGER NOT NULL,     -- unix time / 3600
	value REAL NOT NULL,       -- in the variable's canonical unit
	time_ms INTEGER NOT NULL,  -- when measured, unix milliseconds
	code TEXT NOT NULL,
	PRIMARY KEY (patient, variable, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS beds (
	patient TEXT PRIMARY KEY,
	bed TEXT NOT NULL
) WITHOUT ROWID;
`

// OpenStore returns a Store whose measurements are also written to the
// SQLite file at path, and loads what the file holds. Ingest then returns
// only after the measurements are durable (WAL, synchronous FULL), so a
// sender that got an acknowledgement never needs to send them again, and a
// restarted bot has the patients' history. Demographics and hour values
// are stored as measurements like any other.
func OpenStore(ctx context.Context, path string, cfg StoreConfig) (*Store, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("ingest: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("ingest: create schema in %s: %w", path, err)
	}
	s := NewStore(cfg)
	s.db = db
	if err := s.load(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database of a Store made by OpenStore.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// load fills the memory from the database.
func (s *Store) load(ctx context.Context) error {
	beds := map[string]string{}
	rows, err := s.db.QueryContext(ctx, `SELECT patient, bed FROM beds`)
	if err != nil {
		return fmt.Errorf("ingest: load beds: %w", err)
	}
	for rows.Next() {
		var p, b string
		if err := rows.Scan(&p, &b); err != nil {
			rows.Close()
			return err
		}
		beds[p] = b
	}
	rows.Close()
	rows, err = s.db.QueryContext(ctx, `SELECT patient, variable, value, time_ms, code FROM measurements ORDER BY time_ms`)
	if err != nil {
		return fmt.Errorf("ingest: load measurements: %w", err)
	}
	defer rows.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for rows.Next() {
		var m fhirobs.Measurement
		var ms int64
		if err := rows.Scan(&m.Patient, &m.Variable, &m.Value, &ms, &m.Code); err != nil {
			return fmt.Errorf("ingest: load measurements: %w", err)
		}
		m.Time, m.Unit, m.Bed = time.UnixMilli(ms).UTC(), fhirobs.CanonicalUnit(m.Variable), beds[m.Patient]
		s.add(m)
		n++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ingest: load measurements: %w", err)
	}
	for p := range s.patients {
		s.dirty[p] = true
	}
	if len(s.dirty) > 0 {
		s.signal()
	}
	s.cfg.Logger.Info("ingest: patient state loaded", "patients", len(s.patients), "measurements", n)
	return nil
}

// persist writes measurements in one transaction, keeping per patient,
// variable and hour the latest measured value, as memory does.
func (s *Store) persist(ctx context.Context, ms []fhirobs.Measurement) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ingest: persist: %w", err)
	}
	defer tx.Rollback()
	for _, m := range ms {
		if _, err := tx.ExecContext(ctx, `INSERT INTO measurements (patient, variable, hour, value, time_ms, code) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (patient, variable, hour) DO UPDATE SET value = excluded.value, time_ms = excluded.time_ms, code = excluded.code
			WHERE excluded.time_ms >= measurements.time_ms`,
			m.Patient, m.Variable, storedHour(m), m.Value, m.Time.UnixMilli(), m.Code); err != nil {
			return fmt.Errorf("ingest: persist: %w", err)
		}
		if m.Bed != "" {
			if _, err := tx.ExecContext(ctx, `INSERT INTO beds (patient, bed) VALUES (?, ?) ON CONFLICT (patient) DO UPDATE SET bed = excluded.bed`, m.Patient, m.Bed); err != nil {
				return fmt.Errorf("ingest: persist: %w", err)
			}
		}
	}
	// Hours that fell out of the window are dropped, as in memory.
	done := map[string]bool{}
	for _, m := range ms {
		if done[m.Patient] {
			continue
		}
		done[m.Patient] = true
		if _, err := tx.ExecContext(ctx, `DELETE FROM measurements WHERE patient = ?1 AND hour != 0
			AND hour <= (SELECT MAX(hour) FROM measurements WHERE patient = ?1) - ?2`, m.Patient, s.cfg.MaxHours); err != nil {
			return fmt.Errorf("ingest: persist: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ingest: persist: %w", err)
	}
	return nil
}

// storedHour is the key hour of a measurement in the database; patient-level
// values (Age, Gender) keep only their latest.
func storedHour(m fhirobs.Measurement) int64 {
	if m.Variable == "Age" || m.Variable == "Gender" {
		return 0
	}
	return unixHour(m.Time)
}

// forget deletes a patient's rows.
func (s *Store) forget(ctx context.Context, patient string) error {
	if s.db == nil {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM measurements WHERE patient = ?`, patient); err != nil {
		return fmt.Errorf("ingest: forget patient: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM beds WHERE patient = ?`, patient); err != nil {
		return fmt.Errorf("ingest: forget patient: %w", err)
	}
	return nil
}
