package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/medicus-health/medicus/sepsisbot/evaluate"
	"github.com/medicus-health/medicus/sepsisbot/features"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// ErrNoData means Fit was given too few stays, or no septic stay, to train
// and validate.
var ErrNoData = errors.New("model: not enough stays to train")

// FitConfig configures [Fit].
type FitConfig struct {
	Params Params
	Seed   uint64
	// ValidationFraction of the stays (default 0.2) is held out for early
	// stopping and for choosing the alert threshold.
	ValidationFraction float64
	// Progress, if not nil, is called after each boosting round.
	Progress func(round int, validLogLoss float64)
}

// StayFeatures streams a stay through a [features.Patient] and returns the
// feature vector of every hour (each computed from data up to that hour).
func StayFeatures(s *physionet.Stay) [][]float64 {
	p := features.NewPatient()
	out := make([][]float64, len(s.Rows))
	for i, r := range s.Rows {
		p.Add(features.Hour{Values: r.Values})
		out[i] = slices.Clone(p.Vector())
	}
	return out
}

// SplitStays divides stays into two groups deterministically for a seed,
// putting about fraction of the septic and of the other stays into the
// second group (stratified, so both groups have septic stays).
func SplitStays(stays []*physionet.Stay, fraction float64, seed uint64) (first, second []*physionet.Stay) {
	rng := rand.New(rand.NewPCG(seed, 0x5b117))
	var septic, other []*physionet.Stay
	for _, s := range stays {
		if s.Septic() {
			septic = append(septic, s)
		} else {
			other = append(other, s)
		}
	}
	for _, group := range [][]*physionet.Stay{septic, other} {
		perm := rng.Perm(len(group))
		cut := int(math.Round(fraction * float64(len(group))))
		for i, j := range perm {
			if i < cut {
				second = append(second, group[j])
			} else {
				first = append(first, group[j])
			}
		}
	}
	return first, second
}

// Fit trains a model on stays: it holds out a stratified validation split,
// bins the features at quantiles of the training stays, boosts trees with
// early stopping on the validation log loss, and sets Threshold to the risk
// that maximizes the normalized utility on the validation stays. It
// returns ctx's error if ctx is cancelled.
func Fit(ctx context.Context, stays []*physionet.Stay, cfg FitConfig) (*Model, error) {
	if cfg.ValidationFraction <= 0 || cfg.ValidationFraction >= 1 {
		cfg.ValidationFraction = 0.2
	}
	train, valid := SplitStays(stays, cfg.ValidationFraction, cfg.Seed)
	if len(train) < 10 || len(valid) < 2 {
		return nil, fmt.Errorf("%w: %d training and %d validation stays", ErrNoData, len(train), len(valid))
	}
	names := features.Names()
	params := cfg.Params.withDefaults()

	// Bin edges from up to ~100,000 training rows, sampled by stay.
	totalRows := 0
	for _, s := range train {
		totalRows += len(s.Rows)
	}
	keep := min(1, 100000/math.Max(1, float64(totalRows)))
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xed6e5))
	var sample [][]float64
	for _, s := range train {
		if rng.Float64() < keep {
			sample = append(sample, StayFeatures(s)...)
		}
	}
	edges := ComputeEdges(sample, len(names), params.MaxBins)
	sample = nil

	trainDS := NewDataset(edges)
	for _, s := range train {
		for i, x := range StayFeatures(s) {
			trainDS.Append(x, s.Rows[i].Label)
		}
	}
	validDS := NewDataset(edges)
	for _, s := range valid {
		for i, x := range StayFeatures(s) {
			validDS.Append(x, s.Rows[i].Label)
		}
	}
	res, err := Train(ctx, trainDS, validDS, params, cfg.Seed, cfg.Progress)
	if err != nil {
		return nil, err
	}

	m := &Model{
		Version:  FormatVersion,
		Features: names,
		Base:     res.Base,
		Trees:    res.Trees,
	}
	probs := make([]float64, len(res.ValidMargins))
	for i, v := range res.ValidMargins {
		probs[i] = sigmoid(v)
	}
	thr, util := BestThreshold(valid, probs)
	m.Threshold = thr
	m.Training = TrainingInfo{
		Seed: cfg.Seed, Stays: len(train), Rows: trainDS.Rows(), ValidationStays: len(valid),
		Rounds: res.Rounds, ValidationLogLoss: res.ValidLogLoss, ValidationUtility: util, Params: params,
	}
	m.index()
	return m, nil
}

// BestThreshold returns the alert threshold that maximizes the normalized
// utility of stays given their hourly probabilities (concatenated in stay
// order), searched over quantiles of the probabilities, and that utility.
func BestThreshold(stays []*physionet.Stay, probs []float64) (threshold, utility float64) {
	sorted := slices.Clone(probs)
	slices.Sort(sorted)
	var candidates []float64
	for q := 0.50; q < 0.999; q += 0.0025 {
		c := sorted[int(q*float64(len(sorted)))]
		if len(candidates) == 0 || c > candidates[len(candidates)-1] {
			candidates = append(candidates, c)
		}
	}
	labels := make([][]bool, len(stays))
	for i, s := range stays {
		labels[i] = s.Labels()
	}
	utility = math.Inf(-1)
	for _, c := range candidates {
		var u evaluate.UtilityTotals
		off := 0
		for _, l := range labels {
			pred := make([]bool, len(l))
			for t := range l {
				pred[t] = probs[off+t] >= c
			}
			off += len(l)
			u.Add(l, pred)
		}
		if v := u.Normalized(); v > utility {
			threshold, utility = c, v
		}
	}
	// Round to 4 significant digits so the saved threshold reads well.
	return roundSig(threshold, 4), utility
}

func roundSig(x float64, digits int) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, float64(digits)-math.Ceil(math.Log10(math.Abs(x))))
	return math.Round(x*p) / p
}
