package alerting

import (
	"context"
	"fmt"
	"math"

	"github.com/medicus-health/medicus/client/content"
)

// Content returns the alert as the messenger's structured alert content
// (content type "alert"), which the bot posts into the room:
//   - AlertID is the episode, shared by every alert of the episode;
//   - Trend is "new" for the first assessment of a patient, else "rising",
//     "falling" or "stable" (a change of less than a tenth of the risk);
//   - Level is 1 for alerts in the unit's room and 2 for escalations;
//   - Top carries at most content.MaxContributions measured
//     contributions;
//   - Summary is the first line of Markdown without formatting.
//
// Clinicians acknowledge with an AlertAck whose AlertEvent is the id of the
// posted message; pass that id to Engine.Acknowledge.
func (a *Alert) Content() *content.Alert {
	c := &content.Alert{
		AlertID:  a.Episode,
		Bed:      a.Bed,
		Patient:  a.Patient,
		Risk:     math.Min(math.Max(a.Risk, 0), 1),
		Trend:    trendWord(a.Risk, a.Trend, a.TrendHours),
		DataTime: content.At(a.DataTime),
		Level:    1,
		Summary:  a.summaryLine(),
	}
	if a.Kind == KindEscalation {
		c.Level = 2
	}
	for _, s := range a.Scores {
		p := s.Points
		switch s.Name {
		case "qSOFA":
			c.Scores.QSOFA = &p
		case "SIRS":
			c.Scores.SIRS = &p
		case "NEWS2":
			c.Scores.NEWS2 = &p
		}
	}
	for _, k := range a.Contributions {
		if !k.Measured || len(c.Top) == content.MaxContributions {
			continue
		}
		c.Top = append(c.Top, content.Contribution{Variable: k.Variable, Value: k.Value, Unit: k.Unit, Time: content.At(k.Time), Weight: k.Weight})
	}
	return c
}

func trendWord(risk, trend, hours float64) string {
	switch {
	case hours == 0:
		return "new"
	case math.Abs(trend) < 0.1*risk:
		return "stable"
	case trend > 0:
		return "rising"
	}
	return "falling"
}

// summaryLine is a one-line plain-text description of the alert.
func (a *Alert) summaryLine() string {
	head := map[Kind]string{KindNew: "Sepsis risk alert", KindWorsening: "Sepsis risk worsening", KindEscalation: "Escalation: unacknowledged sepsis alert"}[a.Kind]
	return head + " for " + a.who()
}

// HandleAck applies an AlertAck message received in room from sender. The
// acknowledging user is the message's authenticated sender, not the
// content's AckedBy field, which any member could fill in. It returns the
// acknowledged alert or an error wrapping ErrUnknownAlert (also when the
// AlertID does not name the alert's episode) or ErrAlreadyAcknowledged.
func (e *Engine) HandleAck(ctx context.Context, room, sender string, ack *content.AlertAck) (Alert, error) {
	e.mu.Lock()
	pa := e.events[eventKey{room, ack.AlertEvent}]
	e.mu.Unlock()
	if pa == nil || pa.alert.Episode != ack.AlertID {
		return Alert{}, fmt.Errorf("%w: event %s (alert %s) in %s", ErrUnknownAlert, ack.AlertEvent, ack.AlertID, room)
	}
	return e.Acknowledge(ctx, room, ack.AlertEvent, sender)
}
