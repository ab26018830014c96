package evaluate

import (
	"fmt"
	"math"
	"sort"
)

// WarningWindow is how many hours before t_sepsis an alert counts as a
// warning of that onset for Sensitivity and MedianWarningHours; an alert
// two days before onset is not a warning of it.
const WarningWindow = 48

// Cohort accumulates the stays of an evaluation. The zero value is ready
// to use.
type Cohort struct {
	utility  UtilityTotals
	labels   []bool
	probs    []float64
	stays    int
	septic   int
	detected int
	hours    int
	alerts   int
	alerted  int
	warnings []float64
}

// Add adds one stay: its hourly labels, the predicted probabilities and the
// binary alerts decided from them (all the same length).
func (c *Cohort) Add(labels []bool, probabilities []float64, alerts []bool) error {
	if len(labels) != len(probabilities) || len(labels) != len(alerts) {
		return fmt.Errorf("%w: %d labels, %d probabilities, %d alerts", ErrLength, len(labels), len(probabilities), len(alerts))
	}
	if err := c.utility.Add(labels, alerts); err != nil {
		return err
	}
	c.labels = append(c.labels, labels...)
	c.probs = append(c.probs, probabilities...)
	c.stays++
	c.hours += len(labels)
	for t, a := range alerts {
		if a {
			c.alerted++
			if t == 0 || !alerts[t-1] {
				c.alerts++
			}
		}
	}
	if ts, septic := SepsisTime(labels); septic {
		c.septic++
		for t := max(0, ts-WarningWindow); t < len(alerts) && t <= ts+DtLate; t++ {
			if alerts[t] {
				c.detected++
				c.warnings = append(c.warnings, float64(ts-t))
				break
			}
		}
	}
	return nil
}

// Report holds a cohort's figures. Its JSON keys are stable.
type Report struct {
	// Utility is the challenge's normalized utility (1 best, 0 never alert).
	Utility float64 `json:"utility"`
	// AUROC and AUPRC are computed over all hours of all stays, as the
	// official script does.
	AUROC float64 `json:"auroc"`
	AUPRC float64 `json:"auprc"`
	// Sensitivity is the fraction of septic stays alerted in the hours
	// from t_sepsis−48 to t_sepsis+3 (the last hour the utility credits).
	Sensitivity float64 `json:"sensitivity"`
	// AlertsPerPatientDay counts alert onsets (an hour alerted after an hour
	// not alerted) per 24 hours of stay.
	AlertsPerPatientDay float64 `json:"alerts_per_patient_day"`
	// AlertedHoursFraction is the fraction of all hours with an alert.
	AlertedHoursFraction float64 `json:"alerted_hours_fraction"`
	// MedianWarningHours is, over detected septic stays, the median of
	// t_sepsis minus the first alerted hour in that window (negative when
	// it came after onset; at most 48); 0 when nothing was detected.
	MedianWarningHours float64 `json:"median_warning_hours"`
	Patients           int     `json:"patients"`
	SepticPatients     int     `json:"septic_patients"`
	Hours              int     `json:"hours"`
}

// Report computes the cohort's figures.
func (c *Cohort) Report() (Report, error) {
	r := Report{Patients: c.stays, SepticPatients: c.septic, Hours: c.hours}
	auroc, auprc, err := AUC(c.labels, c.probs)
	if err != nil {
		return r, err
	}
	r.AUROC, r.AUPRC = auroc, auprc
	r.Utility = c.utility.Normalized()
	if math.IsNaN(r.Utility) {
		r.Utility = 0
	}
	if c.septic > 0 {
		r.Sensitivity = float64(c.detected) / float64(c.septic)
	}
	if c.hours > 0 {
		r.AlertsPerPatientDay = float64(c.alerts) / (float64(c.hours) / 24)
		r.AlertedHoursFraction = float64(c.alerted) / float64(c.hours)
	}
	r.MedianWarningHours = median(c.warnings)
	return r, nil
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
