package evaluate

import (
	"errors"
	"math"
	"testing"
)

func bools(x ...int) []bool {
	out := make([]bool, len(x))
	for i, v := range x {
		out[i] = v != 0
	}
	return out
}

func ones(n int) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = true
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestUtilityCheckValueFromTheIssue(t *testing.T) {
	u, err := Utility(bools(0, 0, 0, 0, 1, 1), bools(0, 0, 1, 1, 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	// t_s = 4+6 = 10. Up to t_s−6 = 4 a hit earns (t−10)/6+2: t=2: 2/3,
	// t=3: 5/6, t=4: 1. At t=5 the falling line −(t−10)/9+1/3 gives 8/9.
	// Sum = 61/18 = 3.3889.
	if want := 61.0 / 18; !near(u, want) {
		t.Fatalf("utility = %.6f, want %.6f", u, want)
	}
}

func TestUtilityWindowEdges(t *testing.T) {
	// A septic stay whose first label is at row 20: t_s = 26, the rising
	// window starts at t_s−12 = 14, the optimum is t_s−6 = 20, the window
	// ends at t_s+3 = 29. The stay has 40 rows.
	labels := make([]bool, 40)
	for i := 20; i < 40; i++ {
		labels[i] = true
	}
	single := func(at int) float64 {
		p := make([]bool, 40)
		p[at] = true
		u, err := Utility(labels, p)
		if err != nil {
			t.Fatal(err)
		}
		none, _ := Utility(labels, make([]bool, 40))
		return u - none // the utility this one prediction adds
	}
	tests := []struct {
		name string
		t    int
		want float64
	}{
		{"long before the window costs like a false positive", 0, UFP},
		{"t_s−13 costs a false positive (rising line below −0.05)", 13, UFP},
		{"t_s−12 earns 0", 14, 0},
		{"t_s−11 earns 1/6", 15, 1.0 / 6},
		{"t_s−6 earns the maximum 1 and avoids no penalty", 20, 1},
		// From t_s−5 on, a miss costs −2/9·(t−t_s+6); a hit earns −(t−t_s)/9+1/3.
		{"t_s−5: hit 8/9 instead of miss −2/9", 21, 8.0/9 + 2.0/9},
		{"t_s+3: hit 0 instead of miss −2", 29, 0 + 2},
		{"t_s+4 is outside the window", 30, 0},
		{"last row is outside the window", 39, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := single(tt.t); !near(got, tt.want) {
				t.Fatalf("utility of a prediction at %d = %.6f, want %.6f", tt.t, got, tt.want)
			}
		})
	}
	// Inaction on this stay: misses from t_s−5 to t_s+3 cost
	// −2/9·(1+2+…+9) = −10.
	if none, _ := Utility(labels, make([]bool, 40)); !near(none, -10) {
		t.Fatalf("inaction utility = %v, want −10", none)
	}
}

func TestUtilityNonSepticAndLabelsAtAdmission(t *testing.T) {
	if u, _ := Utility(bools(0, 0, 0), bools(1, 0, 1)); !near(u, 2*UFP) {
		t.Fatalf("non-septic stay: %v, want %v", u, 2*UFP)
	}
	// Septic from row 0: t_s = 6, rising window from −6 (clipped to 0).
	// Predicting every row of a 10-row stay: t=0 → 1 (t_s−6 is the
	// optimum), t=1..9 on the falling line: 8/9, 7/9, …, 0.
	u, _ := Utility(ones(10), ones(10))
	want := 1.0
	for k := 8; k >= 0; k-- {
		want += float64(k) / 9
	}
	if !near(u, want) {
		t.Fatalf("septic from admission: %v, want %v", u, want)
	}
	if _, err := Utility(ones(2), ones(3)); !errors.Is(err, ErrLength) {
		t.Fatalf("err = %v, want ErrLength", err)
	}
}

func TestNormalizedUtility(t *testing.T) {
	var best, none, obs UtilityTotals
	septic := bools(0, 0, 0, 0, 1, 1)
	healthy := bools(0, 0, 0)
	for _, s := range [][]bool{septic, healthy} {
		best.Add(s, BestPredictions(s))
		none.Add(s, make([]bool, len(s)))
	}
	if got := best.Normalized(); !near(got, 1) {
		t.Errorf("best = %v", got)
	}
	if got := none.Normalized(); !near(got, 0) {
		t.Errorf("inaction = %v", got)
	}
	// Observed: the issue's predictions on the septic stay, one false alarm
	// on the healthy stay. Best on the septic stay (t_s = 10) predicts every
	// row from max(0, t_s−12) = 0: rows 0..4 earn max((t−10)/6+2, −0.05),
	// row 5 earns −(t−10)/9+1/3. Inaction costs −2/9 (the miss at row 5;
	// misses up to t_s−6 = 4 cost nothing) and 0 on the healthy stay.
	obs.Add(septic, bools(0, 0, 1, 1, 1, 1))
	obs.Add(healthy, bools(0, 1, 0))
	var wantBest float64
	for t := 0; t <= 5; t++ {
		d := float64(t - 10)
		if t <= 4 {
			wantBest += math.Max(d/6+2, UFP)
		} else {
			wantBest += -d/9 + 1.0/3
		}
	}
	want := (61.0/18 + UFP + 2.0/9) / (wantBest + 2.0/9)
	if got := obs.Normalized(); !near(got, want) {
		t.Errorf("normalized = %v, want %v", got, want)
	}
}

func TestAUCMatchesTheOfficialExample(t *testing.T) {
	// The docstring example of compute_auc.
	auroc, auprc, err := AUC(bools(0, 0, 0, 0, 1, 1), []float64{0.3, 0.4, 0.6, 0.7, 0.8, 0.8})
	if err != nil || !near(auroc, 1) || !near(auprc, 1) {
		t.Fatalf("auroc %v auprc %v err %v, want 1, 1", auroc, auprc, err)
	}
}

func TestAUCHandWorked(t *testing.T) {
	// Labels 1,0,1,0 with probabilities 0.9,0.8,0.7,0.1. Thresholds 1, 0.9,
	// 0.8, 0.7, 0.1. (TPR, TNR, PPV): (0,1,1) (.5,1,1) (.5,.5,.5) (1,.5,2/3) (1,0,.5).
	// AUROC = .5·.5·2 + 0 + .5·.5·1 + 0 = .75; AUPRC = .5·1 + .5·2/3 = 5/6.
	auroc, auprc, err := AUC(bools(1, 0, 1, 0), []float64{0.9, 0.8, 0.7, 0.1})
	if err != nil || !near(auroc, 0.75) || !near(auprc, 5.0/6) {
		t.Fatalf("auroc %v auprc %v err %v, want 0.75, 0.8333", auroc, auprc, err)
	}
	// A trailing threshold of 0 is dropped, as in the official script:
	// probability-0 hours never count as positive predictions.
	auroc, _, _ = AUC(bools(1, 0, 0), []float64{1, 0, 0})
	if !near(auroc, 0) {
		// thresholds [1]: a single point, so the area is 0.
		t.Fatalf("auroc with binary scores = %v, want 0", auroc)
	}
}

func TestCohortReport(t *testing.T) {
	var c Cohort
	// Septic stay: first label at row 4 (t_s = 10), alerted from row 2.
	if err := c.Add(bools(0, 0, 0, 0, 1, 1), []float64{0, 0, 1, 1, 1, 1}, bools(0, 0, 1, 1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	// 42-hour healthy stay with two alert episodes.
	h := make([]bool, 42)
	a := make([]bool, 42)
	p := make([]float64, 42)
	a[3], a[4], a[10] = true, true, true
	if err := c.Add(h, p, a); err != nil {
		t.Fatal(err)
	}
	r, err := c.Report()
	if err != nil {
		t.Fatal(err)
	}
	if r.Patients != 2 || r.SepticPatients != 1 || r.Hours != 48 || r.Sensitivity != 1 {
		t.Errorf("report = %+v", r)
	}
	if !near(r.AlertsPerPatientDay, 3/(48.0/24)) {
		t.Errorf("alerts per patient-day = %v, want 1.5", r.AlertsPerPatientDay)
	}
	if r.MedianWarningHours != 8 {
		t.Errorf("warning = %v, want 8 (t_s 10 − first alert 2)", r.MedianWarningHours)
	}
}

func TestAlertsLongBeforeOnsetAreNotWarnings(t *testing.T) {
	var c Cohort
	// First label at row 60 (t_s = 66): an alert at row 10 is 56 hours
	// early, outside the 48-hour warning window; the next, at row 20, is
	// 46 hours early.
	n := 70
	labels, probs, alerts := make([]bool, n), make([]float64, n), make([]bool, n)
	for i := 60; i < n; i++ {
		labels[i] = true
	}
	alerts[10] = true
	c.Add(labels, probs, alerts)
	if r, _ := c.Report(); r.Sensitivity != 0 {
		t.Fatalf("sensitivity %v with only an alert 56 h early, want 0", r.Sensitivity)
	}
	alerts[20] = true
	var d Cohort
	d.Add(labels, probs, alerts)
	if r, _ := d.Report(); r.Sensitivity != 1 || r.MedianWarningHours != 46 {
		t.Fatalf("sensitivity %v warning %v, want 1 and 46", r.Sensitivity, r.MedianWarningHours)
	}
}
