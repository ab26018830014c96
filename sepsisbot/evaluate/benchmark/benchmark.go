// Package benchmark scores ICU stays the way the PhysioNet 2019 challenge
// did — hour by hour, each hour using only the data up to it — with the
// learned model and the rule baselines (qSOFA ≥ 2, SIRS ≥ 2, NEWS2 ≥ 5 on
// carried-forward values), and reports the figures of package evaluate. It
// also runs patient-level k-fold cross-validation.
package benchmark

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/medicus-health/medicus/sepsisbot/evaluate"
	"github.com/medicus-health/medicus/sepsisbot/features"
	"github.com/medicus-health/medicus/sepsisbot/model"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
	"github.com/medicus-health/medicus/sepsisbot/score"
)

// Baseline is a rule score with an alert cutoff.
type Baseline struct {
	Name   string // the key in Results.Baselines, e.g. "news2>=5"
	Cutoff int
	Score  func(physionet.Values) score.Result
}

// Baselines are the rule baselines the issue names. Their probability for
// AUROC/AUPRC is points divided by the attainable maximum.
var Baselines = []Baseline{
	{"qsofa>=2", 2, score.QSOFA},
	{"sirs>=2", 2, score.SIRS},
	{"news2>=5", 5, score.NEWS2},
}

// Results are the figures of one evaluation. The model's figures are at the
// top level (JSON keys utility, auroc, auprc, alerts_per_patient_day,
// patients, …); the baselines' are under "baselines".
type Results struct {
	evaluate.Report
	Threshold float64                    `json:"threshold"`
	Folds     int                        `json:"folds,omitempty"`
	Baselines map[string]evaluate.Report `json:"baselines"`
}

// Evaluator accumulates stays. Create it with [NewEvaluator].
type Evaluator struct {
	model     evaluate.Cohort
	baselines []evaluate.Cohort
}

// NewEvaluator returns an empty Evaluator.
func NewEvaluator() *Evaluator {
	return &Evaluator{baselines: make([]evaluate.Cohort, len(Baselines))}
}

// Add scores one stay hour by hour with m at threshold (alert when risk ≥
// threshold) and with every baseline.
func (e *Evaluator) Add(s *physionet.Stay, m *model.Model, threshold float64) error {
	n := len(s.Rows)
	labels := s.Labels()
	probs := make([]float64, n)
	alerts := make([]bool, n)
	bprobs := make([][]float64, len(Baselines))
	balerts := make([][]bool, len(Baselines))
	for i := range Baselines {
		bprobs[i] = make([]float64, n)
		balerts[i] = make([]bool, n)
	}
	p := features.NewPatient()
	for t, r := range s.Rows {
		p.Add(features.Hour{Values: r.Values})
		probs[t] = m.Probability(p.Vector())
		alerts[t] = probs[t] >= threshold
		cur := p.Current()
		for i, b := range Baselines {
			res := b.Score(cur)
			bprobs[i][t] = float64(res.Points) / float64(res.Max)
			balerts[i][t] = res.Points >= b.Cutoff
		}
	}
	if err := e.model.Add(labels, probs, alerts); err != nil {
		return fmt.Errorf("stay %s: %w", s.ID, err)
	}
	for i := range Baselines {
		if err := e.baselines[i].Add(labels, bprobs[i], balerts[i]); err != nil {
			return fmt.Errorf("stay %s: %w", s.ID, err)
		}
	}
	return nil
}

// Results computes the figures of every stay added so far.
func (e *Evaluator) Results(threshold float64) (Results, error) {
	r := Results{Threshold: threshold, Baselines: map[string]evaluate.Report{}}
	var err error
	if r.Report, err = e.model.Report(); err != nil {
		return r, err
	}
	for i, b := range Baselines {
		if r.Baselines[b.Name], err = e.baselines[i].Report(); err != nil {
			return r, err
		}
	}
	return r, nil
}

// EvaluateFiles parses and scores each file in turn (never holding more
// than one stay in memory).
func EvaluateFiles(ctx context.Context, files []string, m *model.Model, threshold float64) (Results, error) {
	e := NewEvaluator()
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return Results{}, err
		}
		s, err := physionet.ParseFile(f)
		if err != nil {
			return Results{}, err
		}
		if err := e.Add(s, m, threshold); err != nil {
			return Results{}, err
		}
	}
	return e.Results(threshold)
}

// LoadStays parses every file.
func LoadStays(ctx context.Context, files []string) ([]*physionet.Stay, error) {
	out := make([]*physionet.Stay, 0, len(files))
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, err := physionet.ParseFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Folds assigns each stay to one of k folds, stratified by sepsis and
// deterministic for a seed.
func Folds(stays []*physionet.Stay, k int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, 0xf01d5))
	fold := make([]int, len(stays))
	for _, septic := range []bool{true, false} {
		var idx []int
		for i, s := range stays {
			if s.Septic() == septic {
				idx = append(idx, i)
			}
		}
		for j, p := range rng.Perm(len(idx)) {
			fold[idx[p]] = j % k
		}
	}
	return fold
}

// CrossValidate runs patient-level k-fold cross-validation: for each fold
// it fits a model (with cfg) on the other folds and scores the held-out
// stays with that model at its own threshold (or at threshold, if > 0).
// The figures pool all held-out hours and stays, so the normalized utility
// is the cohort utility over the whole set. progress, if not nil, is told
// when each fold starts.
func CrossValidate(ctx context.Context, stays []*physionet.Stay, k int, cfg model.FitConfig, threshold float64, progress func(fold int, m *model.Model)) (Results, error) {
	if k < 2 {
		return Results{}, fmt.Errorf("benchmark: cross-validation needs k ≥ 2, got %d", k)
	}
	fold := Folds(stays, k, cfg.Seed)
	e := NewEvaluator()
	var thresholds float64
	for f := range k {
		if err := ctx.Err(); err != nil {
			return Results{}, err
		}
		var train, test []*physionet.Stay
		for i, s := range stays {
			if fold[i] == f {
				test = append(test, s)
			} else {
				train = append(train, s)
			}
		}
		m, err := model.Fit(ctx, train, cfg)
		if err != nil {
			return Results{}, fmt.Errorf("fold %d: %w", f+1, err)
		}
		if progress != nil {
			progress(f+1, m)
		}
		thr := m.Threshold
		if threshold > 0 {
			thr = threshold
		}
		thresholds += thr
		for _, s := range test {
			if err := e.Add(s, m, thr); err != nil {
				return Results{}, err
			}
		}
	}
	r, err := e.Results(thresholds / float64(k))
	r.Folds = k
	return r, err
}
