package alerting

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"
)

// AlertSink posts alerts and summaries into rooms. The bot implements it
// with its messenger client; the returned event ID is what clinicians
// acknowledge.
type AlertSink interface {
	// PostAlert posts an alert into a room and returns the message's event
	// ID. On error the Engine retries at the next Observe or Tick.
	PostAlert(ctx context.Context, room string, a Alert) (eventID string, err error)
	// PostSummary posts a daily summary into a room.
	PostSummary(ctx context.Context, room string, s Summary) (eventID string, err error)
}

// Clock tells the time. Tests use a settable clock.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Config is the alert policy.
type Config struct {
	// Threshold opens an episode (risk >= Threshold). Required, in (0, 1].
	Threshold float64
	// ClearBelow closes an episode (risk < ClearBelow); it must be below
	// Threshold. Default: 0.7 × Threshold.
	ClearBelow float64
	// WorseningOddsRatio is how much the odds of the risk, risk/(1-risk),
	// must have grown since the last alert of the episode for another
	// alert. Odds, unlike differences of risk, mean the same for models
	// with thresholds of 0.03 and 0.5. Default 2: the odds doubled.
	WorseningOddsRatio float64
	// MinRealertInterval is the least time between alerts of one episode.
	// Default 1 hour.
	MinRealertInterval time.Duration
	// EscalateAfter is how long an alert may stay unacknowledged before it
	// is escalated. Zero disables escalation.
	EscalateAfter time.Duration
	// EscalationRooms maps a unit's room to its escalation room;
	// EscalationRoom is used for rooms not in the map. No escalation
	// happens for a room without either.
	EscalationRooms map[string]string
	EscalationRoom  string
	// DefaultRoom receives alerts of assessments without a Room.
	DefaultRoom string
	// SummaryRooms always get a daily summary, besides every room that
	// had patients assessed.
	SummaryRooms []string
	// SummaryTime is the time of day of the daily summary, as an offset
	// from midnight in SummaryLocation (UTC if nil). Default 07:00.
	SummaryTime     time.Duration
	SummaryLocation *time.Location
	// TrendWindow is the span over which an alert's trend is computed.
	// Default 6 hours.
	TrendWindow time.Duration
	// Clock tells the time; the system clock if nil.
	Clock Clock
	// Logger receives events without patient values; slog.Default() if nil.
	Logger *slog.Logger
}

// Errors of Acknowledge.
var (
	// ErrUnknownAlert means no alert of this Engine has that event in that
	// room.
	ErrUnknownAlert = errors.New("alerting: no such alert")
	// ErrAlreadyAcknowledged means the alert was acknowledged before; the
	// first acknowledgement stands.
	ErrAlreadyAcknowledged = errors.New("alerting: alert already acknowledged")
)

// posted is an alert that was posted (or is waiting to be).
type posted struct {
	alert           Alert
	eventID         string // "" until delivered
	acked           bool
	escalated       bool
	escalationEvent string
	escalationRoom  string
}

// episode is one period of high risk of one patient.
type episode struct {
	id, patient, bed, room string
	openedAt               time.Time
	peakRisk               float64
	alerts                 []*posted
}

// lastDelivered returns the episode's last delivered non-escalation alert.
func (e *episode) lastDelivered() *posted {
	for i := len(e.alerts) - 1; i >= 0; i-- {
		if e.alerts[i].eventID != "" {
			return e.alerts[i]
		}
	}
	return nil
}

type riskPoint struct {
	at   time.Time
	risk float64
}

// patient is the Engine's state of one patient.
type patient struct {
	last     Assessment
	lastSeen time.Time // clock time of the last assessment
	history  []riskPoint
	episode  *episode
}

type eventKey struct{ room, event string }

// Engine applies the alert policy. Its methods are safe for concurrent
// use; they hold a lock while posting, so a slow sink delays the others.
type Engine struct {
	cfg   Config
	sink  AlertSink
	audit *AuditLog
	log   *slog.Logger

	mu          sync.Mutex
	patients    map[string]*patient
	events      map[eventKey]*posted
	nextSummary time.Time
}

// NewEngine validates the policy, fills in defaults, and resumes the open
// episodes recorded in the audit log.
func NewEngine(ctx context.Context, cfg Config, sink AlertSink, audit *AuditLog) (*Engine, error) {
	if !(cfg.Threshold > 0 && cfg.Threshold <= 1) {
		return nil, fmt.Errorf("alerting: threshold %v is not in (0, 1]", cfg.Threshold)
	}
	if cfg.ClearBelow == 0 {
		cfg.ClearBelow = 0.7 * cfg.Threshold
	}
	if cfg.ClearBelow >= cfg.Threshold || cfg.ClearBelow < 0 {
		return nil, fmt.Errorf("alerting: clear level %v must be below the threshold %v", cfg.ClearBelow, cfg.Threshold)
	}
	if cfg.WorseningOddsRatio == 0 {
		cfg.WorseningOddsRatio = 2
	}
	if cfg.WorseningOddsRatio <= 1 {
		return nil, fmt.Errorf("alerting: worsening odds ratio %v must exceed 1", cfg.WorseningOddsRatio)
	}
	if cfg.MinRealertInterval == 0 {
		cfg.MinRealertInterval = time.Hour
	}
	if cfg.SummaryTime == 0 {
		cfg.SummaryTime = 7 * time.Hour
	}
	if cfg.SummaryLocation == nil {
		cfg.SummaryLocation = time.UTC
	}
	if cfg.TrendWindow == 0 {
		cfg.TrendWindow = 6 * time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if sink == nil || audit == nil {
		return nil, errors.New("alerting: nil sink or audit log")
	}
	e := &Engine{cfg: cfg, sink: sink, audit: audit, log: cfg.Logger, patients: map[string]*patient{}, events: map[eventKey]*posted{}}
	e.nextSummary = e.summaryAfter(cfg.Clock.Now())
	st, err := audit.loadOpen(ctx)
	if err != nil {
		return nil, err
	}
	for _, ep := range st.episodes {
		p := &patient{episode: ep, last: Assessment{Patient: ep.patient, Bed: ep.bed, Room: ep.room, Risk: ep.peakRisk}}
		e.patients[ep.patient] = p
		for _, a := range ep.alerts {
			e.events[eventKey{a.alert.Room, a.eventID}] = a
			if a.escalationEvent != "" {
				e.events[eventKey{a.escalationRoom, a.escalationEvent}] = a
			}
		}
	}
	return e, nil
}

// summaryAfter returns the first summary time strictly after t.
func (e *Engine) summaryAfter(t time.Time) time.Time {
	lt := t.In(e.cfg.SummaryLocation)
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, e.cfg.SummaryLocation)
	next := day.Add(e.cfg.SummaryTime)
	for !next.After(t) {
		day = day.AddDate(0, 0, 1)
		next = day.Add(e.cfg.SummaryTime)
	}
	return next
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Observe applies the policy to a new assessment: it may open an episode
// and post an alert, post a worsening alert, or close the episode. It
// returns an error only if the audit log cannot be written; a failing sink
// is logged and retried later.
func (e *Engine) Observe(ctx context.Context, a Assessment) error {
	if a.Room == "" {
		a.Room = e.cfg.DefaultRoom
	}
	if a.Patient == "" || a.Room == "" || math.IsNaN(a.Risk) {
		return fmt.Errorf("alerting: assessment without patient, room or risk")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Clock.Now()
	p := e.patients[a.Patient]
	if p == nil {
		p = &patient{}
		e.patients[a.Patient] = p
	}
	if a.Bed == "" {
		a.Bed = p.last.Bed
	}
	p.last, p.lastSeen = a, now
	p.addRisk(riskPoint{a.DataTime, a.Risk}, e.cfg.TrendWindow)

	ep := p.episode
	switch {
	case ep == nil && a.Risk >= e.cfg.Threshold:
		ep = &episode{id: newID(), patient: a.Patient, bed: a.Bed, room: a.Room, openedAt: now, peakRisk: a.Risk}
		if err := e.audit.openEpisode(ctx, ep); err != nil {
			return err
		}
		p.episode = ep
		e.log.Info("alerting: episode opened", "episode", ep.id, "room", ep.room)
		return e.raise(ctx, p, KindNew, now)
	case ep == nil:
		return nil
	case a.Risk < e.cfg.ClearBelow:
		return e.close(ctx, p, now)
	}
	if a.Risk > ep.peakRisk {
		ep.peakRisk = a.Risk
		if err := e.audit.updatePeak(ctx, ep); err != nil {
			return err
		}
	}
	if err := e.deliverPending(ctx, p); err != nil {
		return err
	}
	last := ep.lastDelivered()
	if last != nil && e.markedWorsening(last.alert.Risk, a.Risk) && now.Sub(last.alert.RaisedAt) >= e.cfg.MinRealertInterval {
		return e.raise(ctx, p, KindWorsening, now)
	}
	return nil
}

// markedWorsening reports whether the odds of risk are at least
// WorseningOddsRatio times those of the last alerted risk.
func (e *Engine) markedWorsening(alerted, risk float64) bool {
	if risk >= 1 {
		return alerted < 1
	}
	odds := func(p float64) float64 { return p / (1 - p) }
	return odds(risk) >= e.cfg.WorseningOddsRatio*odds(alerted)
}

// addRisk records a risk point and drops points older than the window
// before it, keeping the oldest point inside the window.
func (p *patient) addRisk(pt riskPoint, window time.Duration) {
	p.history = append(p.history, pt)
	sort.SliceStable(p.history, func(i, j int) bool { return p.history[i].at.Before(p.history[j].at) })
	newest := p.history[len(p.history)-1].at
	i := 0
	for i < len(p.history)-1 && newest.Sub(p.history[i].at) > window {
		i++
	}
	p.history = append(p.history[:0], p.history[i:]...)
}

// trend returns the change of risk across the history and its span in
// hours.
func (p *patient) trend() (float64, float64) {
	if len(p.history) < 2 {
		return 0, 0
	}
	first, last := p.history[0], p.history[len(p.history)-1]
	return last.risk - first.risk, last.at.Sub(first.at).Hours()
}

// alertFor builds an alert of the patient's latest assessment.
func (e *Engine) alertFor(p *patient, kind Kind, room string, now time.Time) Alert {
	a := p.last
	trend, hours := p.trend()
	return Alert{
		ID: newID(), Kind: kind, Episode: p.episode.id, Room: room, Patient: a.Patient, Bed: a.Bed,
		Risk: a.Risk, Threshold: e.cfg.Threshold, Trend: trend, TrendHours: hours,
		Scores: a.Scores, Contributions: a.Contributions, DataTime: a.DataTime, RaisedAt: now,
	}
}

// raise adds an alert to the episode and tries to deliver it.
func (e *Engine) raise(ctx context.Context, p *patient, kind Kind, now time.Time) error {
	ep := p.episode
	// An undelivered alert is superseded by the new one.
	if n := len(ep.alerts); n > 0 && ep.alerts[n-1].eventID == "" {
		ep.alerts = ep.alerts[:n-1]
		if kind == KindWorsening && ep.lastDelivered() == nil {
			kind = KindNew
		}
	}
	ep.alerts = append(ep.alerts, &posted{alert: e.alertFor(p, kind, ep.room, now)})
	return e.deliverPending(ctx, p)
}

// deliverPending posts the episode's undelivered alert, if any. A sink
// failure is logged, not returned: the alert stays pending.
func (e *Engine) deliverPending(ctx context.Context, p *patient) error {
	ep := p.episode
	n := len(ep.alerts)
	if n == 0 || ep.alerts[n-1].eventID != "" {
		return nil
	}
	pa := ep.alerts[n-1]
	// A retry shows the latest assessment, under the same alert ID.
	id0, kind := pa.alert.ID, pa.alert.Kind
	pa.alert = e.alertFor(p, kind, pa.alert.Room, e.cfg.Clock.Now())
	pa.alert.ID = id0
	id, err := e.sink.PostAlert(ctx, pa.alert.Room, pa.alert)
	if err != nil {
		e.log.Warn("alerting: posting an alert failed; will retry", "room", pa.alert.Room, "err", err)
		return nil
	}
	pa.eventID = id
	e.events[eventKey{pa.alert.Room, id}] = pa
	e.log.Info("alerting: alert posted", "kind", pa.alert.Kind, "room", pa.alert.Room, "event", id)
	return e.audit.recordAlert(ctx, &pa.alert, id)
}

// close ends the patient's episode.
func (e *Engine) close(ctx context.Context, p *patient, now time.Time) error {
	ep := p.episode
	outcome := "resolved"
	for _, a := range ep.alerts {
		if a.eventID != "" && !a.acked && !e.coveredByLaterAck(ep, a) {
			outcome = "resolved-unacknowledged"
		}
	}
	p.episode = nil
	e.log.Info("alerting: episode closed", "episode", ep.id, "outcome", outcome)
	return e.audit.closeEpisode(ctx, ep, now, outcome)
}

// coveredByLaterAck reports whether an alert or a later one of its episode
// has been acknowledged: acknowledging the latest alert acknowledges the
// episode so far.
func (e *Engine) coveredByLaterAck(ep *episode, a *posted) bool {
	after := false
	for _, x := range ep.alerts {
		if x == a {
			after = true
		}
		if after && x.acked {
			return true
		}
	}
	return false
}

// Acknowledge records that user acknowledged the alert posted as event in
// room (the alert's own room or its escalation room). It returns the alert,
// or an error wrapping ErrUnknownAlert or ErrAlreadyAcknowledged.
func (e *Engine) Acknowledge(ctx context.Context, room, event, user string) (Alert, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	pa := e.events[eventKey{room, event}]
	if pa == nil {
		return Alert{}, fmt.Errorf("%w: event %s in %s", ErrUnknownAlert, event, room)
	}
	if pa.acked {
		return pa.alert, fmt.Errorf("%w: event %s", ErrAlreadyAcknowledged, event)
	}
	now := e.cfg.Clock.Now()
	if err := e.audit.recordAck(ctx, pa.alert.ID, room, event, user, now, now.Sub(pa.alert.RaisedAt)); err != nil {
		return Alert{}, err
	}
	pa.acked = true
	e.log.Info("alerting: alert acknowledged", "room", room, "event", event, "after", now.Sub(pa.alert.RaisedAt).Round(time.Second))
	return pa.alert, nil
}

// Tick advances the timers: it retries undelivered alerts, escalates
// alerts unacknowledged for Config.EscalateAfter, and posts the daily
// summaries when their time has come. The bot calls it periodically (see
// Run); tests call it after moving their clock.
func (e *Engine) Tick(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Clock.Now()
	var errs []error
	for _, name := range e.sortedPatients() {
		p := e.patients[name]
		if p.episode == nil {
			continue
		}
		if err := e.deliverPending(ctx, p); err != nil {
			errs = append(errs, err)
		}
		if err := e.escalate(ctx, p, now); err != nil {
			errs = append(errs, err)
		}
	}
	if !now.Before(e.nextSummary) {
		if err := e.summarize(ctx, e.nextSummary); err != nil {
			errs = append(errs, err)
		} else {
			e.nextSummary = e.summaryAfter(now)
		}
	}
	e.prune(now)
	return errors.Join(errs...)
}

func (e *Engine) sortedPatients() []string {
	names := make([]string, 0, len(e.patients))
	for n := range e.patients {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// escalationRoom returns the escalation room of a unit room, or "".
func (e *Engine) escalationRoom(room string) string {
	if r, ok := e.cfg.EscalationRooms[room]; ok {
		return r
	}
	return e.cfg.EscalationRoom
}

// escalate posts escalations of the patient's overdue alerts.
func (e *Engine) escalate(ctx context.Context, p *patient, now time.Time) error {
	if e.cfg.EscalateAfter <= 0 {
		return nil
	}
	ep := p.episode
	for _, pa := range ep.alerts {
		if pa.eventID == "" || pa.acked || pa.escalated || e.coveredByLaterAck(ep, pa) || now.Sub(pa.alert.RaisedAt) < e.cfg.EscalateAfter {
			continue
		}
		to := e.escalationRoom(pa.alert.Room)
		if to == "" {
			continue
		}
		esc := e.alertFor(p, KindEscalation, to, now)
		esc.Escalates, esc.EscalatesEvent, esc.EscalatesRoom, esc.Unacknowledged = pa.alert.ID, pa.eventID, pa.alert.Room, pa.alert.RaisedAt
		id, err := e.sink.PostAlert(ctx, to, esc)
		if err != nil {
			e.log.Warn("alerting: posting an escalation failed; will retry", "room", to, "err", err)
			continue
		}
		pa.escalated, pa.escalationEvent, pa.escalationRoom = true, id, to
		e.events[eventKey{to, id}] = pa
		e.log.Info("alerting: alert escalated", "from", pa.alert.Room, "to", to, "event", id)
		if err := e.audit.recordAlert(ctx, &esc, id); err != nil {
			return err
		}
		if err := e.audit.recordEscalation(ctx, pa.alert.ID, esc.ID, pa.alert.Room, to, now); err != nil {
			return err
		}
	}
	return nil
}

// summarize posts the summary of the day ending at end to every room.
func (e *Engine) summarize(ctx context.Context, end time.Time) error {
	from := end.AddDate(0, 0, -1)
	rooms := map[string]bool{}
	for _, r := range e.cfg.SummaryRooms {
		rooms[r] = true
	}
	monitored := map[string]int{}
	open := map[string][]OpenEpisode{}
	for _, name := range e.sortedPatients() {
		p := e.patients[name]
		if p.lastSeen.After(from) && !p.lastSeen.After(end) || p.episode != nil {
			rooms[p.last.Room] = true
			monitored[p.last.Room]++
		}
		if ep := p.episode; ep != nil {
			acked := len(ep.alerts) > 0 && e.coveredByLaterAck(ep, ep.alerts[0])
			open[ep.room] = append(open[ep.room], OpenEpisode{Patient: ep.patient, Bed: p.last.Bed, Since: ep.openedAt, Risk: p.last.Risk, Acknowledged: acked})
		}
	}
	names := make([]string, 0, len(rooms))
	for r := range rooms {
		if r != "" {
			names = append(names, r)
		}
	}
	sort.Strings(names)
	var errs []error
	for _, room := range names {
		s, err := e.audit.roomCounts(ctx, room, from, end)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.Monitored, s.Open = monitored[room], open[room]
		id, err := e.sink.PostSummary(ctx, room, s)
		if err != nil {
			e.log.Warn("alerting: posting a summary failed", "room", room, "err", err)
			errs = append(errs, fmt.Errorf("alerting: summary for %s: %w", room, err))
			continue
		}
		if err := e.audit.recordSummary(ctx, &s, id, e.cfg.Clock.Now()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// retention bounds how long the Engine remembers closed alerts (for late
// acknowledgements) and quiet patients.
const retention = 7 * 24 * time.Hour

// prune forgets patients without an episode not assessed for the
// retention period, and events of alerts older than it that are not part
// of an open episode.
func (e *Engine) prune(now time.Time) {
	for name, p := range e.patients {
		if p.episode == nil && now.Sub(p.lastSeen) > retention {
			delete(e.patients, name)
		}
	}
	for k, pa := range e.events {
		if now.Sub(pa.alert.RaisedAt) > retention {
			if p := e.patients[pa.alert.Patient]; p == nil || p.episode == nil || p.episode.id != pa.alert.Episode {
				delete(e.events, k)
			}
		}
	}
}

// Run calls Tick every interval until ctx is cancelled, logging errors.
// It returns ctx.Err().
func (e *Engine) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := e.Tick(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("alerting: tick", "err", err)
			}
		}
	}
}
