package benchmark

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/sepsisbot/model"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// subset returns the first n stays of training set A, or skips.
func subset(t *testing.T, n int) []string {
	t.Helper()
	dir, looked := physionet.DataDir()
	if dir == "" {
		t.Skipf("PhysioNet 2019 training set A not found at %s (set MEDICUS_PHYSIONET_DIR)", looked)
	}
	files, err := physionet.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < n {
		t.Fatalf("%s has %d stays, want ≥ %d", dir, len(files), n)
	}
	return files[:n]
}

func TestEvaluateDefaultModelOnRealStays(t *testing.T) {
	files := subset(t, 200)
	m, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	r, err := EvaluateFiles(context.Background(), files, m, m.Threshold)
	if err != nil {
		t.Fatal(err)
	}
	if r.Patients != 200 || r.SepticPatients == 0 || len(r.Baselines) != 3 {
		t.Fatalf("results = %+v", r)
	}
	// The model must beat chance and every rule baseline on AUROC.
	if r.AUROC < 0.7 {
		t.Errorf("AUROC %.3f < 0.7", r.AUROC)
	}
	for name, b := range r.Baselines {
		if b.Patients != 200 || b.AUROC >= r.AUROC {
			t.Errorf("%s: %+v (model AUROC %.3f)", name, b, r.AUROC)
		}
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	json.Unmarshal(raw, &keys)
	for _, k := range []string{"utility", "auroc", "auprc", "alerts_per_patient_day", "patients", "baselines"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, raw)
		}
	}
}

func TestCrossValidateSmallSubset(t *testing.T) {
	stays, err := LoadStays(context.Background(), subset(t, 300))
	if err != nil {
		t.Fatal(err)
	}
	folds := 0
	r, err := CrossValidate(context.Background(), stays, 2, model.FitConfig{Seed: 3, Params: model.Params{Rounds: 15, LearningRate: 0.2}}, 0,
		func(int, *model.Model) { folds++ })
	if err != nil {
		t.Fatal(err)
	}
	if folds != 2 || r.Folds != 2 || r.Patients != 300 {
		t.Fatalf("folds %d, results %+v", folds, r)
	}
	// Held-out stays only: a model trained on 150 stays still ranks hours
	// better than chance.
	if r.AUROC < 0.6 {
		t.Errorf("cross-validated AUROC %.3f < 0.6", r.AUROC)
	}
}

func TestFoldsAreStratifiedAndDeterministic(t *testing.T) {
	var stays []*physionet.Stay
	for i := range 100 {
		s := &physionet.Stay{Rows: []physionet.Row{{Label: i%10 == 0}}}
		stays = append(stays, s)
	}
	a, b := Folds(stays, 5, 1), Folds(stays, 5, 1)
	septic := make([]int, 5)
	for i := range stays {
		if a[i] != b[i] {
			t.Fatal("folds differ for one seed")
		}
		if stays[i].Septic() {
			septic[a[i]]++
		}
	}
	for f, n := range septic {
		if n != 2 {
			t.Errorf("fold %d has %d septic stays, want 2", f, n)
		}
	}
}
