// Package score computes the bedside sepsis rule scores — qSOFA, SIRS,
// NEWS2 and the SOFA components — from one hour of carried-forward
// PhysioNet 2019 variables ([physionet.Values]).
//
// The data have no Glasgow Coma Scale, PaO2, urine output, vasopressor,
// band-neutrophil or consciousness (ACVPU) column, so each score is computed
// from what exists and reports what it could not use:
//
//   - qSOFA (Singer et al., JAMA 2016): respiratory rate ≥ 22/min and
//     systolic pressure ≤ 100 mm Hg; altered mentation (GCS < 15) is never
//     available, so the attainable maximum is 2, not 3.
//   - SIRS (Bone et al., Chest 1992): temperature > 38 °C or < 36 °C; heart
//     rate > 90/min; respiratory rate > 20/min or PaCO2 < 32 mm Hg; WBC
//     > 12 or < 4 ×10³/µL (band forms > 10 % are not available). Maximum 4.
//   - NEWS2 (Royal College of Physicians, 2017): respiration rate, SpO2 on
//     scale 1, air or supplemental oxygen (FiO2 > 0.21), systolic pressure,
//     pulse and temperature; consciousness is not available and scores 0.
//     Maximum attainable 17 of 20. Scale 2 (hypercapnic patients) is not
//     used. NEWS2 charts whole numbers and temperatures to 0.1 °C, so values
//     are rounded half away from zero to that precision before banding.
//   - SOFA (Vincent et al., 1996): coagulation (platelets), liver (total
//     bilirubin), renal (creatinine only; urine output unavailable) and
//     cardiovascular (MAP < 70 mm Hg = 1; the higher levels need vasopressor
//     doses, unavailable). Respiration (PaO2/FiO2) and central nervous
//     system (GCS) cannot be computed. Maximum attainable 13 of 24.
//
// A missing value contributes 0 points (it is assumed normal) and marks its
// component not available.
package score

import (
	"math"

	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// Component is one criterion of a score.
type Component struct {
	Name      string // e.g. "respiratory rate ≥ 22"
	Points    int
	Available bool // false when the inputs were missing or the data never have them
}

// Result is a score with its components.
type Result struct {
	Name       string // "qSOFA", "SIRS", "NEWS2" or "SOFA"
	Points     int    // sum of the components' points
	Max        int    // the highest total attainable from PhysioNet 2019 variables
	Components []Component
}

func present(x float64) bool { return !math.IsNaN(x) }

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// QSOFA returns the quick SOFA score: one point each for respiratory rate
// ≥ 22/min and systolic pressure ≤ 100 mm Hg. The altered-mentation
// criterion is reported as not available.
func QSOFA(v physionet.Values) Result {
	r := Result{Name: "qSOFA", Max: 2, Components: []Component{
		{Name: "respiratory rate ≥ 22", Points: flag(v[physionet.Resp] >= 22), Available: present(v[physionet.Resp])},
		{Name: "systolic pressure ≤ 100", Points: flag(v[physionet.SBP] <= 100), Available: present(v[physionet.SBP])},
		{Name: "altered mentation (GCS < 15)", Available: false},
	}}
	return total(r)
}

// SIRS returns the systemic inflammatory response syndrome criteria count.
func SIRS(v physionet.Values) Result {
	t, hr, rr, pa, wbc := v[physionet.Temp], v[physionet.HR], v[physionet.Resp], v[physionet.PaCO2], v[physionet.WBC]
	r := Result{Name: "SIRS", Max: 4, Components: []Component{
		{Name: "temperature > 38 or < 36", Points: flag(t > 38 || t < 36), Available: present(t)},
		{Name: "heart rate > 90", Points: flag(hr > 90), Available: present(hr)},
		{Name: "respiratory rate > 20 or PaCO2 < 32", Points: flag(rr > 20 || pa < 32), Available: present(rr) || present(pa)},
		{Name: "WBC > 12 or < 4", Points: flag(wbc > 12 || wbc < 4), Available: present(wbc)},
	}}
	return total(r)
}

// band returns the points of the first band whose upper bound x does not
// exceed; bounds are inclusive upper limits in increasing order and the
// last band is open.
func band(x float64, uppers []float64, points []int) int {
	for i, u := range uppers {
		if x <= u {
			return points[i]
		}
	}
	return points[len(points)-1]
}

// roundTo rounds half away from zero to the given number of decimals.
func roundTo(x float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(x*p) / p
}

// OnOxygen reports whether FiO2 indicates supplemental oxygen (FiO2 above
// room air's 0.21). FiO2 is a fraction; values above 1 are taken as
// percentages. A missing FiO2 means air.
func OnOxygen(fio2 float64) bool {
	if !present(fio2) {
		return false
	}
	if fio2 > 1 {
		fio2 /= 100
	}
	return fio2 > 0.21
}

// NEWS2 returns the National Early Warning Score 2 (scale 1 for SpO2).
func NEWS2(v physionet.Values) Result {
	rr, spo2, sbp, hr, t, fio2 := v[physionet.Resp], v[physionet.O2Sat], v[physionet.SBP], v[physionet.HR], v[physionet.Temp], v[physionet.FiO2]
	c := []Component{
		{Name: "respiration rate", Available: present(rr)},
		{Name: "SpO2 (scale 1)", Available: present(spo2)},
		{Name: "air or oxygen", Available: present(fio2)},
		{Name: "systolic pressure", Available: present(sbp)},
		{Name: "pulse", Available: present(hr)},
		{Name: "consciousness", Available: false},
		{Name: "temperature", Available: present(t)},
	}
	if present(rr) {
		c[0].Points = band(roundTo(rr, 0), []float64{8, 11, 20, 24}, []int{3, 1, 0, 2, 3})
	}
	if present(spo2) {
		c[1].Points = band(roundTo(spo2, 0), []float64{91, 93, 95}, []int{3, 2, 1, 0})
	}
	if OnOxygen(fio2) {
		c[2].Points = 2
	}
	if present(sbp) {
		c[3].Points = band(roundTo(sbp, 0), []float64{90, 100, 110, 219}, []int{3, 2, 1, 0, 3})
	}
	if present(hr) {
		c[4].Points = band(roundTo(hr, 0), []float64{40, 50, 90, 110, 130}, []int{3, 1, 0, 1, 2, 3})
	}
	if present(t) {
		c[6].Points = band(roundTo(t, 1), []float64{35.0, 36.0, 38.0, 39.0}, []int{3, 1, 0, 1, 2})
	}
	return total(Result{Name: "NEWS2", Max: 17, Components: c})
}

// SOFA returns the SOFA components computable from the data: coagulation,
// liver, cardiovascular (MAP only) and renal (creatinine only).
// Respiration and central nervous system are reported as not available.
func SOFA(v physionet.Values) Result {
	plt, bili, mapv, cr := v[physionet.Platelets], v[physionet.BilirubinTotal], v[physionet.MAP], v[physionet.Creatinine]
	c := []Component{
		{Name: "respiration (PaO2/FiO2)", Available: false},
		{Name: "coagulation (platelets)", Available: present(plt)},
		{Name: "liver (bilirubin)", Available: present(bili)},
		{Name: "cardiovascular (MAP < 70)", Available: present(mapv)},
		{Name: "central nervous system (GCS)", Available: false},
		{Name: "renal (creatinine)", Available: present(cr)},
	}
	if present(plt) {
		switch {
		case plt < 20:
			c[1].Points = 4
		case plt < 50:
			c[1].Points = 3
		case plt < 100:
			c[1].Points = 2
		case plt < 150:
			c[1].Points = 1
		}
	}
	c[2].Points = atLeast(bili, []float64{1.2, 2.0, 6.0, 12.0})
	c[3].Points = flag(mapv < 70)
	c[5].Points = atLeast(cr, []float64{1.2, 2.0, 3.5, 5.0})
	return total(Result{Name: "SOFA", Max: 13, Components: c})
}

// atLeast returns how many of the increasing thresholds x reaches; 0 for
// a missing x.
func atLeast(x float64, thresholds []float64) int {
	n := 0
	for _, t := range thresholds {
		if x >= t {
			n++
		}
	}
	return n
}

func total(r Result) Result {
	for _, c := range r.Components {
		r.Points += c.Points
	}
	return r
}
