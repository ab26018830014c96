package alerting

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// AuditLog is the durable record of what the bot did: one table per kind
// of event (episodes, alerts, acks, escalations, summaries) in a SQLite
// file, so that alerting can be reviewed later (who was told what, when,
// and who acknowledged it). It also lets an Engine resume open episodes
// after a restart.
type AuditLog struct {
	db *sql.DB
}

// migrations are applied in order; PRAGMA user_version counts the applied
// ones.
var migrations = []string{
	`CREATE TABLE episodes (
		id TEXT PRIMARY KEY,
		patient TEXT NOT NULL,
		bed TEXT NOT NULL,
		room TEXT NOT NULL,
		opened_at INTEGER NOT NULL,      -- unix milliseconds
		closed_at INTEGER,               -- NULL while open
		peak_risk REAL NOT NULL,
		outcome TEXT                     -- resolved, resolved-unacknowledged
	);
	CREATE INDEX episodes_open ON episodes(closed_at);
	CREATE TABLE alerts (
		id TEXT PRIMARY KEY,
		episode_id TEXT NOT NULL REFERENCES episodes(id),
		kind TEXT NOT NULL,              -- new, worsening, escalation
		room TEXT NOT NULL,
		event_id TEXT NOT NULL,
		patient TEXT NOT NULL,
		bed TEXT NOT NULL,
		risk REAL NOT NULL,
		trend REAL NOT NULL,
		threshold REAL NOT NULL,
		data_time INTEGER NOT NULL,
		raised_at INTEGER NOT NULL,
		escalates TEXT,                  -- for kind escalation: the alert escalated
		detail TEXT NOT NULL             -- the Alert as JSON
	);
	CREATE INDEX alerts_room_time ON alerts(room, raised_at);
	CREATE TABLE acks (
		alert_id TEXT PRIMARY KEY REFERENCES alerts(id),
		room TEXT NOT NULL,
		event_id TEXT NOT NULL,
		by_user TEXT NOT NULL,
		acked_at INTEGER NOT NULL,
		delay_ms INTEGER NOT NULL        -- from the alert being posted
	);
	CREATE TABLE escalations (
		alert_id TEXT PRIMARY KEY REFERENCES alerts(id),
		escalation_id TEXT NOT NULL REFERENCES alerts(id),
		from_room TEXT NOT NULL,
		to_room TEXT NOT NULL,
		escalated_at INTEGER NOT NULL
	);
	CREATE TABLE summaries (
		room TEXT NOT NULL,
		event_id TEXT NOT NULL,
		period_start INTEGER NOT NULL,
		period_end INTEGER NOT NULL,
		posted_at INTEGER NOT NULL,
		detail TEXT NOT NULL
	);`,
}

// OpenAuditLog opens (creating if needed) the audit database at path and
// applies pending migrations.
func OpenAuditLog(path string) (*AuditLog, error) {
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("alerting: open audit log: %w", err)
	}
	db.SetMaxOpenConns(1)
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("alerting: migrate audit log %s: %w", path, err)
	}
	return &AuditLog{db: db}, nil
}

func migrate(db *sql.DB) error {
	var version int
	if err := db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this program's %d", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database.
func (l *AuditLog) Close() error { return l.db.Close() }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func (l *AuditLog) openEpisode(ctx context.Context, e *episode) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO episodes (id, patient, bed, room, opened_at, peak_risk) VALUES (?, ?, ?, ?, ?, ?)`,
		e.id, e.patient, e.bed, e.room, ms(e.openedAt), e.peakRisk)
	if err != nil {
		return fmt.Errorf("alerting: audit episode: %w", err)
	}
	return nil
}

func (l *AuditLog) updatePeak(ctx context.Context, e *episode) error {
	_, err := l.db.ExecContext(ctx, `UPDATE episodes SET peak_risk = ? WHERE id = ?`, e.peakRisk, e.id)
	if err != nil {
		return fmt.Errorf("alerting: audit episode peak: %w", err)
	}
	return nil
}

func (l *AuditLog) closeEpisode(ctx context.Context, e *episode, at time.Time, outcome string) error {
	_, err := l.db.ExecContext(ctx, `UPDATE episodes SET closed_at = ?, outcome = ?, peak_risk = ? WHERE id = ?`, ms(at), outcome, e.peakRisk, e.id)
	if err != nil {
		return fmt.Errorf("alerting: audit episode close: %w", err)
	}
	return nil
}

func (l *AuditLog) recordAlert(ctx context.Context, a *Alert, eventID string) error {
	detail, err := json.Marshal(a)
	if err != nil {
		return err
	}
	var escalates any
	if a.Escalates != "" {
		escalates = a.Escalates
	}
	_, err = l.db.ExecContext(ctx, `INSERT INTO alerts (id, episode_id, kind, room, event_id, patient, bed, risk, trend, threshold, data_time, raised_at, escalates, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Episode, string(a.Kind), a.Room, eventID, a.Patient, a.Bed, a.Risk, a.Trend, a.Threshold, ms(a.DataTime), ms(a.RaisedAt), escalates, string(detail))
	if err != nil {
		return fmt.Errorf("alerting: audit alert: %w", err)
	}
	return nil
}

func (l *AuditLog) recordAck(ctx context.Context, alertID, room, eventID, by string, at time.Time, delay time.Duration) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO acks (alert_id, room, event_id, by_user, acked_at, delay_ms) VALUES (?, ?, ?, ?, ?, ?)`,
		alertID, room, eventID, by, ms(at), delay.Milliseconds())
	if err != nil {
		return fmt.Errorf("alerting: audit ack: %w", err)
	}
	return nil
}

func (l *AuditLog) recordEscalation(ctx context.Context, alertID, escalationID, from, to string, at time.Time) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO escalations (alert_id, escalation_id, from_room, to_room, escalated_at) VALUES (?, ?, ?, ?, ?)`,
		alertID, escalationID, from, to, ms(at))
	if err != nil {
		return fmt.Errorf("alerting: audit escalation: %w", err)
	}
	return nil
}

func (l *AuditLog) recordSummary(ctx context.Context, s *Summary, eventID string, at time.Time) error {
	detail, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = l.db.ExecContext(ctx, `INSERT INTO summaries (room, event_id, period_start, period_end, posted_at, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		s.Room, eventID, ms(s.From), ms(s.To), ms(at), string(detail))
	if err != nil {
		return fmt.Errorf("alerting: audit summary: %w", err)
	}
	return nil
}

// roomCounts counts a room's alerts, acknowledgements and escalations in
// [from, to).
func (l *AuditLog) roomCounts(ctx context.Context, room string, from, to time.Time) (s Summary, err error) {
	s.Room, s.From, s.To = room, from, to
	err = l.db.QueryRowContext(ctx, `SELECT
		COUNT(*) FILTER (WHERE kind = 'new'),
		COUNT(*) FILTER (WHERE kind = 'worsening'),
		COUNT(DISTINCT patient)
		FROM alerts WHERE room = ? AND kind != 'escalation' AND raised_at >= ? AND raised_at < ?`, room, ms(from), ms(to)).
		Scan(&s.NewAlerts, &s.Worsening, &s.PatientsAlerted)
	if err != nil {
		return s, fmt.Errorf("alerting: summary counts: %w", err)
	}
	rows, err := l.db.QueryContext(ctx, `SELECT k.delay_ms FROM acks k JOIN alerts a ON a.id = k.alert_id
		WHERE a.room = ? AND a.raised_at >= ? AND a.raised_at < ? ORDER BY k.delay_ms`, room, ms(from), ms(to))
	if err != nil {
		return s, fmt.Errorf("alerting: summary acks: %w", err)
	}
	var delays []int64
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return s, err
		}
		delays = append(delays, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, err
	}
	s.Acknowledged = len(delays)
	if n := len(delays); n > 0 {
		// The lower median, so that it is a delay that happened.
		s.MedianAckDelay = time.Duration(delays[(n-1)/2]) * time.Millisecond
	}
	err = l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM escalations WHERE from_room = ? AND escalated_at >= ? AND escalated_at < ?`, room, ms(from), ms(to)).Scan(&s.Escalated)
	if err != nil {
		return s, fmt.Errorf("alerting: summary escalations: %w", err)
	}
	return s, nil
}

// openState is what an Engine restores after a restart.
type openState struct {
	episodes []*episode
}

// loadOpen reads the open episodes with their alerts, acks and
// escalations.
func (l *AuditLog) loadOpen(ctx context.Context) (openState, error) {
	var st openState
	rows, err := l.db.QueryContext(ctx, `SELECT id, patient, bed, room, opened_at, peak_risk FROM episodes WHERE closed_at IS NULL ORDER BY opened_at`)
	if err != nil {
		return st, fmt.Errorf("alerting: load episodes: %w", err)
	}
	for rows.Next() {
		e := &episode{}
		var opened int64
		if err := rows.Scan(&e.id, &e.patient, &e.bed, &e.room, &opened, &e.peakRisk); err != nil {
			rows.Close()
			return st, err
		}
		e.openedAt = fromMS(opened)
		st.episodes = append(st.episodes, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}
	for _, e := range st.episodes {
		rows, err := l.db.QueryContext(ctx, `SELECT a.detail, a.event_id, k.by_user, k.acked_at, s.escalation_id
			FROM alerts a LEFT JOIN acks k ON k.alert_id = a.id LEFT JOIN escalations s ON s.alert_id = a.id
			WHERE a.episode_id = ? AND a.kind != 'escalation' ORDER BY a.raised_at`, e.id)
		if err != nil {
			return st, fmt.Errorf("alerting: load alerts: %w", err)
		}
		for rows.Next() {
			var detail, eventID string
			var by, escalation sql.NullString
			var ackedAt sql.NullInt64
			if err := rows.Scan(&detail, &eventID, &by, &ackedAt, &escalation); err != nil {
				rows.Close()
				return st, err
			}
			p := &posted{eventID: eventID}
			if err := json.Unmarshal([]byte(detail), &p.alert); err != nil {
				rows.Close()
				return st, fmt.Errorf("alerting: load alert: %w", err)
			}
			p.acked = by.Valid
			p.escalated = escalation.Valid
			e.alerts = append(e.alerts, p)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, err
		}
		// Escalation events are acknowledgeable too.
		rows, err = l.db.QueryContext(ctx, `SELECT s.alert_id, a.event_id, a.room FROM escalations s JOIN alerts a ON a.id = s.escalation_id JOIN alerts o ON o.id = s.alert_id WHERE o.episode_id = ?`, e.id)
		if err != nil {
			return st, fmt.Errorf("alerting: load escalations: %w", err)
		}
		for rows.Next() {
			var alertID, eventID, room string
			if err := rows.Scan(&alertID, &eventID, &room); err != nil {
				rows.Close()
				return st, err
			}
			for _, p := range e.alerts {
				if p.alert.ID == alertID {
					p.escalationEvent, p.escalationRoom = eventID, room
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return st, err
		}
	}
	return st, nil
}
