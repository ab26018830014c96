package alerting

import (
	"fmt"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client/content"
)

func TestAlertContentIsValidMessengerContent(t *testing.T) {
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	var contribs []Contribution
	for i := range 20 {
		contribs = append(contribs, Contribution{Variable: fmt.Sprintf("V%d", i), Value: float64(i), Unit: "mmol/L", Measured: i != 3, Time: at, Weight: 1})
	}
	tests := []struct {
		alert Alert
		trend string
		level int
	}{
		{Alert{Kind: KindNew, Episode: "0a1b2c", Patient: "icu3-bed07", Bed: "ICU3/07", Risk: 0.62, DataTime: at,
			Scores: []RuleScore{{"qSOFA", 2, 3}, {"SIRS", 3, 4}, {"NEWS2", 9, 20}, {"SOFA", 4, 24}}, Contributions: contribs}, "new", 1},
		{Alert{Kind: KindWorsening, Episode: "0a1b2c", Patient: "icu3-bed07", Risk: 0.8, Trend: 0.3, TrendHours: 6, DataTime: at}, "rising", 1},
		{Alert{Kind: KindEscalation, Episode: "0a1b2c", Patient: "icu3-bed07", Risk: 0.6, Trend: -0.01, TrendHours: 6, DataTime: at}, "stable", 2},
		{Alert{Kind: KindNew, Episode: "0a1b2c", Patient: "icu3-bed07", Risk: 0.3, Trend: -0.2, TrendHours: 3, DataTime: at}, "falling", 1},
	}
	for _, tt := range tests {
		c := tt.alert.Content()
		raw, err := content.Encode(content.New(c))
		if err != nil {
			t.Fatalf("%s alert does not encode: %v", tt.alert.Kind, err)
		}
		m, err := content.Decode(raw)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		got, ok := m.Body.(*content.Alert)
		if !ok || got.Trend != tt.trend || got.Level != tt.level || got.AlertID != "0a1b2c" || got.DataTime.Time() != at {
			t.Fatalf("%s: %+v", tt.alert.Kind, got)
		}
	}
	c := tests[0].alert.Content()
	if len(c.Top) != content.MaxContributions || c.Top[3].Variable != "V4" || *c.Scores.QSOFA != 2 || *c.Scores.NEWS2 != 9 {
		t.Fatalf("content %+v", c)
	}
}
