// Package evaluate computes the metrics of the PhysioNet/Computing in
// Cardiology Challenge 2019 exactly as the official evaluation script
// (physionetchallenges/evaluation-2019, evaluate_sepsis_score.py) does —
// the normalized utility, AUROC and AUPRC — plus the figures clinicians ask
// of an alerting system: sensitivity per septic stay, alerts per
// patient-day and hours of warning before onset.
//
// Reference: Reyna MA et al., Early Prediction of Sepsis From Clinical Data:
// the PhysioNet/Computing in Cardiology Challenge 2019, Crit Care Med
// 48(2):210–217 (2020).
package evaluate

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// The utility parameters of the challenge. Times are hours relative to
// t_sepsis, where t_sepsis is the 0-based index of a stay's first
// SepsisLabel of 1 plus 6 (labels turn 1 six hours before clinical onset).
const (
	DtEarly   = -12
	DtOptimal = -6
	DtLate    = 3
	MaxUTP    = 1.0
	MinUFN    = -2.0
	UFP       = -0.05
	UTN       = 0.0
)

// ErrLength means labels and predictions differ in length.
var ErrLength = errors.New("evaluate: labels and predictions differ in length")

// SepsisTime returns t_sepsis for a stay: the index of the first true label
// minus DtOptimal, and false if the stay has no true label (t_sepsis = ∞).
func SepsisTime(labels []bool) (int, bool) {
	for i, l := range labels {
		if l {
			return i - DtOptimal, true
		}
	}
	return 0, false
}

// Utility returns the total utility of one stay's binary predictions, as
// compute_prediction_utility in the official script: for a septic stay a
// prediction at hour t earns max((t−t_s)/6+2, −0.05) up to t_s−6, then
// declines linearly to 0 at t_s+3; a missed hour costs 0 up to t_s−6, then
// falls linearly to −2 at t_s+3; hours after t_s+3 score 0. For a stay
// without sepsis every positive prediction costs 0.05.
func Utility(labels, predictions []bool) (float64, error) {
	if len(labels) != len(predictions) {
		return 0, fmt.Errorf("%w: %d labels, %d predictions", ErrLength, len(labels), len(predictions))
	}
	ts, septic := SepsisTime(labels)
	m1 := MaxUTP / float64(DtOptimal-DtEarly)
	b1 := -m1 * DtEarly
	m2 := -MaxUTP / float64(DtLate-DtOptimal)
	b2 := -m2 * DtLate
	m3 := MinUFN / float64(DtLate-DtOptimal)
	b3 := -m3 * DtOptimal
	var u float64
	for t, p := range predictions {
		if !septic {
			if p {
				u += UFP
			} else {
				u += UTN
			}
			continue
		}
		d := float64(t - ts)
		switch {
		case t > ts+DtLate:
			// Outside the window: no utility either way.
		case p && t <= ts+DtOptimal:
			u += math.Max(m1*d+b1, UFP)
		case p:
			u += m2*d + b2
		case t <= ts+DtOptimal:
			// A miss before the optimal time costs nothing.
		default:
			u += m3*d + b3
		}
	}
	return u, nil
}

// BestPredictions returns the predictions of the best possible algorithm as
// the official script defines it: positive from t_s−12 to t_s+3 inclusive
// (clipped to the stay) for septic stays, never otherwise.
func BestPredictions(labels []bool) []bool {
	out := make([]bool, len(labels))
	ts, septic := SepsisTime(labels)
	if !septic {
		return out
	}
	for t := max(0, ts+DtEarly); t < min(ts+DtLate+1, len(labels)); t++ {
		out[t] = true
	}
	return out
}

// UtilityTotals accumulates the cohort's observed, best and inaction
// (never predict) utilities, summed over stays.
type UtilityTotals struct {
	Observed, Best, Inaction float64
}

// Add adds one stay.
func (u *UtilityTotals) Add(labels, predictions []bool) error {
	obs, err := Utility(labels, predictions)
	if err != nil {
		return err
	}
	best, _ := Utility(labels, BestPredictions(labels))
	none, _ := Utility(labels, make([]bool, len(labels)))
	u.Observed += obs
	u.Best += best
	u.Inaction += none
	return nil
}

// Normalized returns (observed − inaction)/(best − inaction): 1 for the best
// algorithm, 0 for never alerting. It is NaN when the cohort has no septic
// stay (best equals inaction).
func (u UtilityTotals) Normalized() float64 {
	if u.Best == u.Inaction {
		return math.NaN()
	}
	return (u.Observed - u.Inaction) / (u.Best - u.Inaction)
}

// AUC returns the AUROC and AUPRC of probabilities against labels as
// compute_auc in the official script does: thresholds are the distinct
// probabilities in decreasing order, with 1 prepended if absent and a
// trailing 0 dropped; AUROC is the trapezoidal area under specificity as a
// function of sensitivity, AUPRC the area under precision as a
// right-continuous step function of recall.
func AUC(labels []bool, probabilities []float64) (auroc, auprc float64, err error) {
	n := len(labels)
	if n != len(probabilities) {
		return 0, 0, fmt.Errorf("%w: %d labels, %d probabilities", ErrLength, n, len(probabilities))
	}
	if n == 0 {
		return 0, 0, nil
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return probabilities[idx[a]] > probabilities[idx[b]] })
	thresholds := make([]float64, 0, 64)
	for _, i := range idx {
		p := probabilities[i]
		if len(thresholds) == 0 || thresholds[len(thresholds)-1] != p {
			thresholds = append(thresholds, p)
		}
	}
	if thresholds[0] != 1 {
		thresholds = append([]float64{1}, thresholds...)
	}
	if thresholds[len(thresholds)-1] == 0 {
		thresholds = thresholds[:len(thresholds)-1]
	}
	var positives float64
	for _, l := range labels {
		if l {
			positives++
		}
	}
	tp, fp, fn, tn := 0.0, 0.0, positives, float64(n)-positives
	var prevTPR, prevTNR float64
	i := 0
	for j, th := range thresholds {
		for i < n && probabilities[idx[i]] >= th {
			if labels[idx[i]] {
				tp++
				fn--
			} else {
				fp++
				tn--
			}
			i++
		}
		tpr, tnr, ppv := 1.0, 1.0, 1.0
		if tp+fn != 0 {
			tpr = tp / (tp + fn)
		}
		if fp+tn != 0 {
			tnr = tn / (fp + tn)
		}
		if tp+fp != 0 {
			ppv = tp / (tp + fp)
		}
		if j > 0 {
			auroc += 0.5 * (tpr - prevTPR) * (tnr + prevTNR)
			auprc += (tpr - prevTPR) * ppv
		}
		prevTPR, prevTNR = tpr, tnr
	}
	return auroc, auprc, nil
}
