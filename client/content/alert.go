package content

import (
	"math"
)

// Alert is a sepsis early-warning alert posted by the sepsis bot into an
// ICU room. It names the patient only by bed and/or a pseudonym.
type Alert struct {
	// AlertID identifies the alert episode in the bot (1 to 64 characters
	// of [a-z0-9_.-]); re-notifications of one episode share it.
	AlertID string `json:"alert_id"`
	// Bed is the bed or location label, e.g. "ICU-3 bed 12".
	Bed string `json:"bed,omitempty"`
	// Patient is the patient's pseudonym (never a name or record number).
	Patient string `json:"patient,omitempty"`
	// Risk is the model's sepsis risk, 0 to 1.
	Risk float64 `json:"risk"`
	// Trend is how the risk moves: "rising", "falling", "stable" or "new".
	Trend string `json:"trend,omitempty"`
	// Scores are the rule-based scores computed from the same data.
	Scores RuleScores `json:"scores"`
	// Top are the strongest contributions to the risk, at most
	// MaxContributions, strongest first.
	Top []Contribution `json:"top,omitempty"`
	// DataTime is the time of the newest data the alert was computed from.
	DataTime Timestamp `json:"data_ts"`
	// Level is the escalation level, 1 (first notification) to 5.
	Level int `json:"level"`
	// Summary is an optional one-line human summary.
	Summary string `json:"summary,omitempty"`
}

// RuleScores are rule-based sepsis scores; nil means not computed.
type RuleScores struct {
	QSOFA *int `json:"qsofa,omitempty"` // 0–3
	SIRS  *int `json:"sirs,omitempty"`  // 0–4
	NEWS2 *int `json:"news2,omitempty"` // 0–20
}

// Contribution is one input variable's contribution to an alert.
type Contribution struct {
	// Variable names the measurement, e.g. "HR", "Lactate".
	Variable string `json:"var"`
	// Value is the measured value.
	Value float64 `json:"value"`
	// Unit is the value's unit (UCUM where possible), e.g. "/min".
	Unit string `json:"unit,omitempty"`
	// Time is when the value was measured.
	Time Timestamp `json:"ts,omitempty"`
	// Weight is the variable's contribution to the risk (model-specific,
	// signed); 0 when not given.
	Weight float64 `json:"weight,omitempty"`
}

// MaxContributions bounds Alert.Top.
const MaxContributions = 16

// Type returns TypeAlert.
func (*Alert) Type() Type { return TypeAlert }

func (b *Alert) validate(*Message) error {
	if !validToken(b.AlertID, 64) {
		return invalid("alert_id", "must be 1 to 64 characters of [a-z0-9_.-]")
	}
	if b.Bed == "" && b.Patient == "" {
		return invalid("bed", "an alert needs a bed or a patient pseudonym")
	}
	if err := checkLine("bed", b.Bed, 64, false); err != nil {
		return err
	}
	if err := checkLine("patient", b.Patient, 64, false); err != nil {
		return err
	}
	if !finite(b.Risk) || b.Risk < 0 || b.Risk > 1 {
		return invalid("risk", "must be between 0 and 1")
	}
	switch b.Trend {
	case "", "rising", "falling", "stable", "new":
	default:
		return invalid("trend", `must be "rising", "falling", "stable" or "new"`)
	}
	for _, s := range []struct {
		name string
		v    *int
		max  int
	}{{"scores.qsofa", b.Scores.QSOFA, 3}, {"scores.sirs", b.Scores.SIRS, 4}, {"scores.news2", b.Scores.NEWS2, 20}} {
		if s.v != nil && (*s.v < 0 || *s.v > s.max) {
			return invalidf(s.name, "must be between 0 and %d", s.max)
		}
	}
	if len(b.Top) > MaxContributions {
		return invalidf("top", "more than %d contributions", MaxContributions)
	}
	for _, c := range b.Top {
		if err := checkLine("top.var", c.Variable, 64, true); err != nil {
			return err
		}
		if err := checkLine("top.unit", c.Unit, 32, false); err != nil {
			return err
		}
		if !finite(c.Value) || !finite(c.Weight) {
			return invalid("top.value", "not a finite number")
		}
		if c.Time != 0 && !c.Time.valid() {
			return invalid("top.ts", "out of range")
		}
	}
	if !b.DataTime.valid() {
		return invalid("data_ts", "out of range")
	}
	if b.Level < 1 || b.Level > 5 {
		return invalid("level", "must be between 1 and 5")
	}
	return checkLine("summary", b.Summary, 512, false)
}

// AlertAck acknowledges an alert: a member of the care team has seen it and
// takes responsibility.
type AlertAck struct {
	// AlertEvent is the message id of the acknowledged Alert message.
	AlertEvent string `json:"alert_event"`
	// AlertID repeats the alert's AlertID.
	AlertID string `json:"alert_id"`
	// AckedBy is the user id of the acknowledging member.
	AckedBy string `json:"by"`
	// Time is when the alert was acknowledged.
	Time Timestamp `json:"at"`
	// Note is an optional free-text note, e.g. "lactate ordered".
	Note string `json:"note,omitempty"`
}

// Type returns TypeAlertAck.
func (*AlertAck) Type() Type { return TypeAlertAck }

func (b *AlertAck) validate(m *Message) error {
	if !validID(b.AlertEvent) {
		return invalid("alert_event", "must be a message id")
	}
	if m.InReplyTo != "" && m.InReplyTo != b.AlertEvent {
		return invalid("irt", "must be the acknowledged alert's message id")
	}
	if !validToken(b.AlertID, 64) {
		return invalid("alert_id", "must be 1 to 64 characters of [a-z0-9_.-]")
	}
	if !validUserID(b.AckedBy) {
		return invalid("by", "not a user id")
	}
	if !b.Time.valid() {
		return invalid("at", "out of range")
	}
	if len(b.Note) > MaxNoteSize {
		return tooLarge("note", len(b.Note), MaxNoteSize)
	}
	if b.Note != "" {
		return checkMarkdown("note", b.Note)
	}
	return nil
}

// MaxNoteSize bounds AlertAck.Note.
const MaxNoteSize = 2 << 10

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
