package alerting

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client/content"
)

// testClock is a settable Clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// roomLog is an AlertSink that keeps what was posted per room, as the
// messenger would show it, and can be made to fail.
type roomLog struct {
	mu        sync.Mutex
	alerts    []Alert
	rooms     []string
	events    []string
	summaries []Summary
	fail      bool
	n         int
}

func (r *roomLog) PostAlert(_ context.Context, room string, a Alert) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return "", errors.New("homeserver unreachable")
	}
	r.n++
	id := fmt.Sprintf("$event%d", r.n)
	r.alerts, r.rooms, r.events = append(r.alerts, a), append(r.rooms, room), append(r.events, id)
	return id, nil
}

func (r *roomLog) PostSummary(_ context.Context, room string, s Summary) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return "", errors.New("homeserver unreachable")
	}
	r.n++
	r.summaries = append(r.summaries, s)
	return fmt.Sprintf("$event%d", r.n), nil
}

func (r *roomLog) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.alerts) }

var t0 = time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)

const (
	icu    = "!icu3aaaaaaaaaaaaaaaa:uk-freiburg.example"
	oncall = "!oncallaaaaaaaaaaaaa:uk-freiburg.example"
)

type fixture struct {
	clock *testClock
	sink  *roomLog
	audit *AuditLog
	eng   *Engine
	path  string
	cfg   Config
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{clock: &testClock{now: t0}, sink: &roomLog{}, path: filepath.Join(t.TempDir(), "audit.db")}
	f.cfg = Config{
		Threshold: 0.55, ClearBelow: 0.40, WorseningOddsRatio: 2, MinRealertInterval: time.Hour,
		EscalateAfter: 30 * time.Minute, EscalationRooms: map[string]string{icu: oncall}, DefaultRoom: icu,
		Clock: f.clock, Logger: slog.New(slog.DiscardHandler),
	}
	f.open(t)
	return f
}

func (f *fixture) open(t *testing.T) {
	t.Helper()
	audit, err := OpenAuditLog(f.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { audit.Close() })
	eng, err := NewEngine(context.Background(), f.cfg, f.sink, audit)
	if err != nil {
		t.Fatal(err)
	}
	f.audit, f.eng = audit, eng
}

// observe feeds one hourly assessment for a patient and advances the clock
// by an hour.
func (f *fixture) observe(t *testing.T, patient string, risk float64) {
	t.Helper()
	now := f.clock.Now()
	err := f.eng.Observe(context.Background(), Assessment{
		Patient: patient, Bed: "ICU3/07", Risk: risk, DataTime: now.Add(-5 * time.Minute),
		Scores: []RuleScore{{"qSOFA", 2, 3}, {"SIRS", 3, 4}, {"NEWS2", 8, 20}},
		Contributions: []Contribution{
			{Variable: "Lactate", Value: 4.2, Unit: "mmol/L", Measured: true, Time: now.Add(-50 * time.Minute), Weight: 0.9},
			{Variable: "Resp", Value: 28, Unit: "/min", Measured: true, Time: now.Add(-5 * time.Minute), Weight: 0.4},
			{Variable: "Platelets", Weight: 0.1},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
}

func (f *fixture) countRows(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.audit.db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestHysteresisGivesOneAlertPerEpisode(t *testing.T) {
	f := newFixture(t)
	// Up across the threshold, wobbling around it, down below the clear
	// level, and up again: two episodes, two alerts.
	for _, r := range []float64{0.30, 0.60, 0.54, 0.50, 0.62, 0.41, 0.56, 0.35, 0.20, 0.58} {
		f.observe(t, "icu3-bed07", r)
	}
	if f.sink.count() != 2 {
		t.Fatalf("%d alerts posted, want 2: %+v", f.sink.count(), f.sink.alerts)
	}
	a, b := f.sink.alerts[0], f.sink.alerts[1]
	if a.Kind != KindNew || b.Kind != KindNew || a.Episode == b.Episode || a.Risk != 0.60 || b.Risk != 0.58 {
		t.Fatalf("alerts %+v", f.sink.alerts)
	}
	if got := f.countRows(t, `SELECT COUNT(*) FROM episodes WHERE closed_at IS NOT NULL AND outcome = 'resolved-unacknowledged'`); got != 1 {
		t.Fatalf("%d closed unacknowledged episodes in the audit log, want 1", got)
	}
	if got := f.countRows(t, `SELECT COUNT(*) FROM episodes WHERE closed_at IS NULL AND peak_risk = 0.58`); got != 1 {
		t.Fatalf("%d open episodes, want 1", got)
	}
}

func TestReAlertOnlyOnMarkedWorsening(t *testing.T) {
	f := newFixture(t)
	f.observe(t, "icu3-bed07", 0.60) // new
	f.observe(t, "icu3-bed07", 0.70) // odds 2.33 / 1.5: not marked
	f.observe(t, "icu3-bed07", 0.76) // odds 3.17 / 1.5 = 2.1: worsening
	f.observe(t, "icu3-bed07", 0.85) // odds 5.67 / 3.17 = 1.8: not marked
	if f.sink.count() != 2 || f.sink.alerts[1].Kind != KindWorsening || f.sink.alerts[1].Risk != 0.76 {
		t.Fatalf("alerts %+v", f.sink.alerts)
	}
	if got := f.sink.alerts[1].Episode; got != f.sink.alerts[0].Episode {
		t.Fatal("worsening alert in another episode")
	}
	// Trend over the assessments so far: 0.76 - 0.60 over 2 hours.
	if a := f.sink.alerts[1]; a.TrendHours != 2 || a.Trend < 0.159 || a.Trend > 0.161 {
		t.Fatalf("trend %v over %v h", a.Trend, a.TrendHours)
	}
}

func TestWorseningWaitsForTheMinimumInterval(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	assess := func(r float64) {
		if err := f.eng.Observe(ctx, Assessment{Patient: "p1", Risk: r, DataTime: f.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	assess(0.6)
	f.clock.Advance(20 * time.Minute)
	assess(0.9) // marked, but only 20 minutes later
	if f.sink.count() != 1 {
		t.Fatalf("%d alerts", f.sink.count())
	}
	f.clock.Advance(40 * time.Minute)
	assess(0.9)
	if f.sink.count() != 2 {
		t.Fatalf("%d alerts after an hour", f.sink.count())
	}
}

func TestAlertCarriesTheEvidence(t *testing.T) {
	f := newFixture(t)
	f.observe(t, "icu3-bed07", 0.40)
	f.observe(t, "icu3-bed07", 0.72)
	a := f.sink.alerts[0]
	if a.Patient != "icu3-bed07" || a.Bed != "ICU3/07" || a.Room != icu || a.Threshold != 0.55 || len(a.Scores) != 3 || len(a.Contributions) != 3 {
		t.Fatalf("alert %+v", a)
	}
	if !a.DataTime.Equal(t0.Add(time.Hour - 5*time.Minute)) {
		t.Fatalf("data time %v", a.DataTime)
	}
	md := a.Markdown()
	for _, want := range []string{"bed ICU3/07 (icu3-bed07)", "Risk **0.72**", "+0.32 over 1 h", "qSOFA 2/3", "NEWS2 8/20", "Lactate 4.2 mmol/L at 2026-11-29 08:10 UTC", "Platelets not measured", "Data as of 2026-11-29 08:55 UTC"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestUnacknowledgedAlertEscalatesOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if err := f.eng.Observe(ctx, Assessment{Patient: "icu3-bed07", Bed: "ICU3/07", Risk: 0.7, DataTime: t0}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(29 * time.Minute)
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if f.sink.count() != 1 {
		t.Fatal("escalated before the time")
	}
	f.clock.Advance(time.Minute)
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if f.sink.count() != 2 || f.sink.rooms[1] != oncall {
		t.Fatalf("posts %v", f.sink.rooms)
	}
	esc := f.sink.alerts[1]
	if esc.Kind != KindEscalation || esc.Escalates != f.sink.alerts[0].ID || esc.EscalatesEvent != "$event1" || esc.EscalatesRoom != icu || !esc.Unacknowledged.Equal(t0) {
		t.Fatalf("escalation %+v", esc)
	}
	f.clock.Advance(time.Hour)
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if f.sink.count() != 2 {
		t.Fatal("escalated twice")
	}
	// The on-call doctor acknowledges in the escalation room.
	a, err := f.eng.Acknowledge(ctx, oncall, "$event2", "@oncall:uk-freiburg.example")
	if err != nil || a.ID != f.sink.alerts[0].ID {
		t.Fatalf("ack: %v, %+v", err, a)
	}
	if _, err := f.eng.Acknowledge(ctx, icu, "$event1", "@nurse:uk-freiburg.example"); !errors.Is(err, ErrAlreadyAcknowledged) {
		t.Fatalf("second ack: %v", err)
	}
	if _, err := f.eng.Acknowledge(ctx, icu, "$event2", "@nurse:uk-freiburg.example"); !errors.Is(err, ErrUnknownAlert) {
		t.Fatalf("ack of an event in the wrong room: %v", err)
	}
	if got := f.countRows(t, `SELECT COUNT(*) FROM escalations WHERE from_room = ? AND to_room = ?`, icu, oncall); got != 1 {
		t.Fatalf("%d escalations in the audit log", got)
	}
	if got := f.countRows(t, `SELECT COUNT(*) FROM acks WHERE by_user = '@oncall:uk-freiburg.example' AND delay_ms = ?`, (90 * time.Minute).Milliseconds()); got != 1 {
		t.Fatalf("%d matching acks in the audit log", got)
	}
}

func TestAcknowledgedAlertDoesNotEscalate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.observe(t, "p1", 0.6) // $event1 at t0
	f.observe(t, "p1", 0.8) // worsening $event2 at t0+1h
	f.clock.Advance(-50 * time.Minute)
	// Acknowledging the worsening alert covers the first one too.
	if _, err := f.eng.Acknowledge(ctx, icu, "$event2", "@nurse:uk-freiburg.example"); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(3 * time.Hour)
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if f.sink.count() != 2 {
		t.Fatalf("posts %v", f.sink.rooms)
	}
	f.observe(t, "p1", 0.1)
	if got := f.countRows(t, `SELECT COUNT(*) FROM episodes WHERE outcome = 'resolved'`); got != 1 {
		t.Fatal("episode not closed as resolved")
	}
}

func TestFailedPostIsRetriedAndAuditedOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.sink.fail = true
	f.observe(t, "p1", 0.7)
	f.observe(t, "p1", 0.72)
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if f.sink.count() != 0 || f.countRows(t, `SELECT COUNT(*) FROM alerts`) != 0 {
		t.Fatal("an undelivered alert was counted")
	}
	f.sink.fail = false
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if f.sink.count() != 1 || f.sink.alerts[0].Kind != KindNew || f.sink.alerts[0].Risk != 0.72 || f.countRows(t, `SELECT COUNT(*) FROM alerts`) != 1 {
		t.Fatalf("after recovery: %d posts, %+v", f.sink.count(), f.sink.alerts)
	}
	if !f.sink.alerts[0].RaisedAt.Equal(f.clock.Now()) {
		t.Fatalf("raised at %v, want the time of delivery %v", f.sink.alerts[0].RaisedAt, f.clock.Now())
	}
	// Escalation counts from the delivery, not from the first attempt.
	f.clock.Advance(29 * time.Minute)
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if f.sink.count() != 1 {
		t.Fatal("escalated before 30 minutes after delivery")
	}
}

func TestDailySummaryPerRoom(t *testing.T) {
	f := newFixture(t)
	f.cfg.SummaryRooms = []string{oncall}
	f.clock.now = time.Date(2026, 11, 28, 7, 30, 0, 0, time.UTC)
	f.open(t)
	ctx := context.Background()
	f.observe(t, "p1", 0.2) // 07:30, quiet
	f.observe(t, "p2", 0.7) // 08:30 new alert $event1
	if _, err := f.eng.Acknowledge(ctx, icu, "$event1", "@nurse:uk-freiburg.example"); err != nil {
		t.Fatal(err)
	}
	f.observe(t, "p3", 0.9) // 09:30 new alert, left unacknowledged → escalated
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.sink.summaries) != 0 {
		t.Fatal("summary before its time")
	}
	f.clock.now = time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC)
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.sink.summaries) != 2 {
		t.Fatalf("summaries %+v", f.sink.summaries)
	}
	s := f.sink.summaries[0]
	if s.Room != icu || s.NewAlerts != 2 || s.PatientsAlerted != 2 || s.Acknowledged != 1 || s.MedianAckDelay != time.Hour || s.Escalated != 1 || s.Monitored != 3 || len(s.Open) != 2 {
		t.Fatalf("ICU summary %+v", s)
	}
	if !s.From.Equal(time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC)) || !s.To.Equal(time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC)) {
		t.Fatalf("period %v – %v", s.From, s.To)
	}
	if !strings.Contains(s.Markdown(), "2 new, 0 worsening, for 2 patients; 1 acknowledged (median after 1h0m0s); 1 escalated") {
		t.Fatalf("markdown:\n%s", s.Markdown())
	}
	if f.sink.summaries[1].Room != oncall {
		t.Fatalf("second summary for %s", f.sink.summaries[1].Room)
	}
	if got := f.countRows(t, `SELECT COUNT(*) FROM summaries`); got != 2 {
		t.Fatalf("%d summaries audited", got)
	}
}

func TestEngineResumesOpenEpisodesAfterRestart(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.observe(t, "p1", 0.7) // $event1 at t0, clock now t0+1h
	f.observe(t, "p1", 0.6)
	f.audit.Close()
	f.open(t) // a restart: same audit file, new engine
	// The episode is still open: no new alert for a risk above the clear level.
	if err := f.eng.Observe(ctx, Assessment{Patient: "p1", Risk: 0.65, DataTime: f.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if f.sink.count() != 1 {
		t.Fatalf("posts after restart %+v", f.sink.alerts)
	}
	// The unacknowledged alert escalates, and its event can be acknowledged.
	if err := f.eng.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if f.sink.count() != 2 || f.sink.rooms[1] != oncall {
		t.Fatalf("no escalation after restart: %v", f.sink.rooms)
	}
	if _, err := f.eng.Acknowledge(ctx, icu, "$event1", "@nurse:uk-freiburg.example"); err != nil {
		t.Fatal(err)
	}
}

func TestNewEngineRefusesABadPolicy(t *testing.T) {
	audit, err := OpenAuditLog(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	for _, cfg := range []Config{{Threshold: 0}, {Threshold: 1.5}, {Threshold: 0.5, ClearBelow: 0.6}, {Threshold: 0.5, WorseningOddsRatio: 0.9}} {
		if _, err := NewEngine(context.Background(), cfg, &roomLog{}, audit); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}

func TestAuditLogRefusesANewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenAuditLog(path); err == nil {
		t.Fatal("opened a database of a newer schema")
	}
}

func TestHandleAckUsesTheAuthenticatedSender(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.observe(t, "p1", 0.7)
	a := f.sink.alerts[0]
	forged := &content.AlertAck{AlertEvent: "$event1", AlertID: "someotherepisode", AckedBy: "@nurse:uk-freiburg.example"}
	if _, err := f.eng.HandleAck(ctx, icu, "@nurse:uk-freiburg.example", forged); !errors.Is(err, ErrUnknownAlert) {
		t.Fatalf("ack naming another episode: %v", err)
	}
	ack := &content.AlertAck{AlertEvent: "$event1", AlertID: a.Episode, AckedBy: "@chief:uk-freiburg.example"}
	if _, err := f.eng.HandleAck(ctx, icu, "@nurse:uk-freiburg.example", ack); err != nil {
		t.Fatal(err)
	}
	if got := f.countRows(t, `SELECT COUNT(*) FROM acks WHERE by_user = '@nurse:uk-freiburg.example'`); got != 1 {
		t.Fatal("the ack was not recorded for the sender")
	}
}
