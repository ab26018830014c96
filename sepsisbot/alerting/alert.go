// Package alerting turns the sepsis bot's per-patient risk stream into
// alerts for ICU rooms, without alert storms, and follows them up.
//
// It is transport-agnostic: an Engine receives Assessments (risk, rule
// scores and the measurements behind them) and posts Alerts and daily
// Summaries through an AlertSink, which the bot implements by sending an
// encrypted message into a room. Acknowledgements come back through
// Engine.Acknowledge.
//
// The policy, per patient:
//   - hysteresis: an episode opens when the risk reaches Config.Threshold
//     and closes only when it falls below the lower Config.ClearBelow;
//   - one alert per episode, and a new alert in the same episode only on
//     marked worsening (the odds of the risk grew by Config.WorseningOddsRatio
//     since the last alert, and not sooner than Config.MinRealertInterval);
//   - an alert not acknowledged within Config.EscalateAfter is escalated
//     once to the unit's escalation room (for example the on-call doctor);
//   - one summary per room and day at Config.SummaryTime.
//
// Every episode, alert, acknowledgement, escalation and summary is written
// to an AuditLog (SQLite), from which an Engine also resumes open episodes
// after a restart. Time comes from an injectable Clock, and timers advance
// only in Engine.Tick, so tests control time completely.
package alerting

import (
	"fmt"
	"strings"
	"time"
)

// RuleScore is one rule-based score at the time of an assessment, such as
// qSOFA 2 of 3.
type RuleScore struct {
	Name   string `json:"name"`
	Points int    `json:"points"`
	// Max is the highest score attainable with the available data.
	Max int `json:"max"`
}

// Contribution is one measurement that pushed the risk up: why the model
// thinks so.
type Contribution struct {
	Variable string  `json:"variable"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit,omitempty"`
	// Measured is false when the variable's absence drove the risk; Value
	// and Time are then zero.
	Measured bool      `json:"measured"`
	Time     time.Time `json:"time"`
	// Weight is the model's measure of the push (log-odds); larger first.
	Weight float64 `json:"weight"`
}

// Assessment is the model's view of one patient at one time.
type Assessment struct {
	// Patient is the pseudonym; Bed the location if known.
	Patient string
	Bed     string
	// Room is the ICU room to alert; Config.DefaultRoom if empty.
	Room string
	// Risk is the model's risk in [0, 1].
	Risk float64
	// DataTime is the time of the newest data the risk is based on.
	DataTime      time.Time
	Scores        []RuleScore
	Contributions []Contribution
}

// Kind says why an alert was posted.
type Kind string

// Kinds of alerts.
const (
	// KindNew opens an episode.
	KindNew Kind = "new"
	// KindWorsening reports marked worsening within an open episode.
	KindWorsening Kind = "worsening"
	// KindEscalation repeats an unacknowledged alert in the escalation
	// room.
	KindEscalation Kind = "escalation"
)

// Alert is the structured content of one alert message.
type Alert struct {
	// ID identifies the alert in the audit log.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Episode identifies the patient's episode of high risk.
	Episode string `json:"episode"`
	// Room is where the alert is posted.
	Room    string `json:"room"`
	Patient string `json:"patient"`
	Bed     string `json:"bed,omitempty"`
	// Risk is the current risk; Threshold the alert threshold.
	Risk      float64 `json:"risk"`
	Threshold float64 `json:"threshold"`
	// Trend is the change of risk over the last TrendHours hours of
	// assessments (0 if there is only one).
	Trend      float64 `json:"trend"`
	TrendHours float64 `json:"trend_hours"`
	// Scores are the rule scores (qSOFA, SIRS, NEWS2, …).
	Scores []RuleScore `json:"scores"`
	// Contributions are the top measurements behind the risk.
	Contributions []Contribution `json:"contributions"`
	// DataTime is the time of the newest data.
	DataTime time.Time `json:"data_time"`
	// RaisedAt is when the alert was posted.
	RaisedAt time.Time `json:"raised_at"`
	// For escalations: the alert escalated, its event and room, and since
	// when it has been unacknowledged.
	Escalates      string    `json:"escalates,omitempty"`
	EscalatesEvent string    `json:"escalates_event,omitempty"`
	EscalatesRoom  string    `json:"escalates_room,omitempty"`
	Unacknowledged time.Time `json:"unacknowledged_since,omitzero"`
}

// Summary is the daily report of one room.
type Summary struct {
	Room string    `json:"room"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// NewAlerts and Worsening count alerts posted in the room in [From, To).
	NewAlerts       int `json:"new_alerts"`
	Worsening       int `json:"worsening"`
	PatientsAlerted int `json:"patients_alerted"`
	// Acknowledged counts those alerts acknowledged; MedianAckDelay is the
	// median time to acknowledgement.
	Acknowledged   int           `json:"acknowledged"`
	MedianAckDelay time.Duration `json:"median_ack_delay"`
	// Escalated counts escalations out of the room in [From, To).
	Escalated int `json:"escalated"`
	// Monitored counts patients assessed in [From, To).
	Monitored int `json:"monitored"`
	// Open lists the episodes open at To.
	Open []OpenEpisode `json:"open"`
}

// OpenEpisode is one open episode in a Summary.
type OpenEpisode struct {
	Patient      string    `json:"patient"`
	Bed          string    `json:"bed,omitempty"`
	Since        time.Time `json:"since"`
	Risk         float64   `json:"risk"`
	Acknowledged bool      `json:"acknowledged"`
}

// Markdown renders the alert as the text of a room message.
func (a *Alert) Markdown() string {
	var b strings.Builder
	switch a.Kind {
	case KindNew:
		b.WriteString("**Sepsis risk alert**")
	case KindWorsening:
		b.WriteString("**Sepsis risk worsening**")
	case KindEscalation:
		fmt.Fprintf(&b, "**Escalation: sepsis alert unacknowledged since %s**", a.Unacknowledged.UTC().Format("15:04 MST"))
	}
	fmt.Fprintf(&b, " — %s\n\n", a.who())
	fmt.Fprintf(&b, "Risk **%.2f** (threshold %.2f)", a.Risk, a.Threshold)
	if a.TrendHours > 0 {
		fmt.Fprintf(&b, ", %+.2f over %.0f h", a.Trend, a.TrendHours)
	}
	b.WriteString("\n")
	if len(a.Scores) > 0 {
		var parts []string
		for _, s := range a.Scores {
			parts = append(parts, fmt.Sprintf("%s %d/%d", s.Name, s.Points, s.Max))
		}
		b.WriteString("Scores: " + strings.Join(parts, " · ") + "\n")
	}
	if len(a.Contributions) > 0 {
		b.WriteString("Why:\n")
		for _, c := range a.Contributions {
			if !c.Measured {
				fmt.Fprintf(&b, "- %s not measured\n", c.Variable)
				continue
			}
			v := formatValue(c.Value)
			if c.Unit != "" {
				v += " " + c.Unit
			}
			fmt.Fprintf(&b, "- %s %s at %s\n", c.Variable, v, c.Time.UTC().Format("2006-01-02 15:04 MST"))
		}
	}
	fmt.Fprintf(&b, "Data as of %s.", a.DataTime.UTC().Format("2006-01-02 15:04 MST"))
	return b.String()
}

func (a *Alert) who() string {
	if a.Bed != "" {
		return "bed " + a.Bed + " (" + a.Patient + ")"
	}
	return a.Patient
}

func formatValue(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// Markdown renders the summary as the text of a room message.
func (s *Summary) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Sepsis bot daily summary** %s – %s\n\n", s.From.UTC().Format("2006-01-02 15:04"), s.To.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Patients monitored: %d. Alerts: %d new, %d worsening, for %d patients; %d acknowledged", s.Monitored, s.NewAlerts, s.Worsening, s.PatientsAlerted, s.Acknowledged)
	if s.Acknowledged > 0 {
		fmt.Fprintf(&b, " (median after %s)", s.MedianAckDelay.Round(time.Second))
	}
	fmt.Fprintf(&b, "; %d escalated.\n", s.Escalated)
	if len(s.Open) > 0 {
		b.WriteString("Open episodes:\n")
		for _, e := range s.Open {
			ack := "unacknowledged"
			if e.Acknowledged {
				ack = "acknowledged"
			}
			who := e.Patient
			if e.Bed != "" {
				who = "bed " + e.Bed + " (" + e.Patient + ")"
			}
			fmt.Fprintf(&b, "- %s since %s, risk %.2f, %s\n", who, e.Since.UTC().Format("2006-01-02 15:04 MST"), e.Risk, ack)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}
