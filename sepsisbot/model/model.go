// Package model is the learned sepsis risk model: gradient-boosted
// regression trees on the hourly features of package features, trained
// with logistic loss in Go (histogram-based, deterministic for a seed,
// early stopping on a validation split), saved as JSON.
//
// The bot calls [Default] once, feeds each patient's hours into a
// [features.Patient] and asks [Model.Risk] for the probability that the
// patient is within six hours of sepsis onset (or later), together with the
// measurements that drove it.
package model

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/features"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// FormatVersion is the version of the JSON model format this package reads
// and writes.
const FormatVersion = 1

// MaxModelBytes bounds what [Load] reads.
const MaxModelBytes = 64 << 20

// Errors returned by [Load].
var (
	// ErrFormat means the input is not a valid model of this format.
	ErrFormat = errors.New("model: invalid model file")
	// ErrFeatures means the model was trained on a different feature set
	// than this build computes.
	ErrFeatures = errors.New("model: feature set differs from this build's")
)

// Tree is one regression tree in flat arrays; node 0 is the root. A node
// with Feature −1 is a leaf. At an inner node, a row goes left when its
// feature value is ≤ Threshold, and when it is NaN, left iff MissingLeft is
// 1. Value holds every node's value (the leaf outputs, and at inner nodes
// the value the node would have as a leaf, used to attribute the
// prediction to features).
type Tree struct {
	Feature     []int32   `json:"feature"`
	Threshold   []float64 `json:"threshold"`
	MissingLeft []int8    `json:"missing_left"`
	Left        []int32   `json:"left"`
	Right       []int32   `json:"right"`
	Value       []float64 `json:"value"`
}

// TrainingInfo records how a model was trained.
type TrainingInfo struct {
	Seed              uint64  `json:"seed"`
	Stays             int     `json:"stays"`
	Rows              int     `json:"rows"`
	ValidationStays   int     `json:"validation_stays"`
	Rounds            int     `json:"rounds"`
	ValidationLogLoss float64 `json:"validation_log_loss"`
	ValidationUtility float64 `json:"validation_utility"`
	Params            Params  `json:"params"`
}

// Model is a trained risk model.
type Model struct {
	Version int `json:"version"`
	// Features are the feature names the trees index, in order; they must
	// equal features.Names() of this build.
	Features []string `json:"features"`
	// Base is the initial log-odds.
	Base float64 `json:"base"`
	// Threshold is the default alert threshold on the risk, chosen to
	// maximize the normalized utility on the validation split. Sites may
	// override it.
	Threshold float64      `json:"threshold"`
	Trees     []Tree       `json:"trees"`
	Training  TrainingInfo `json:"training"`

	groups []string // feature index → contribution group
	vars   []physionet.Index
}

//go:embed default.json
var defaultJSON []byte

// Default returns the model trained on PhysioNet 2019 training set A that
// ships with medicus. Each call returns a new copy.
func Default() (*Model, error) {
	return Load(bytes.NewReader(defaultJSON))
}

// LoadFile reads a model from a JSON file.
func LoadFile(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	defer f.Close()
	m, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Load reads a model from JSON and checks it: the format version, that its
// features are this build's, and that every tree is well formed (indices in
// range, children after their parent, finite values). It reads at most
// MaxModelBytes.
func Load(r io.Reader) (*Model, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxModelBytes+1))
	if err != nil {
		return nil, fmt.Errorf("model: read: %w", err)
	}
	if len(data) > MaxModelBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrFormat, MaxModelBytes)
	}
	var m Model
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	if m.Version != FormatVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrFormat, m.Version, FormatVersion)
	}
	if !slices.Equal(m.Features, features.Names()) {
		return nil, ErrFeatures
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	m.index()
	return &m, nil
}

func (m *Model) check() error {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if !finite(m.Base) || !finite(m.Threshold) {
		return fmt.Errorf("%w: base or threshold not finite", ErrFormat)
	}
	nf := int32(len(m.Features))
	for ti, t := range m.Trees {
		n := len(t.Feature)
		if n == 0 || len(t.Threshold) != n || len(t.MissingLeft) != n || len(t.Left) != n || len(t.Right) != n || len(t.Value) != n {
			return fmt.Errorf("%w: tree %d: arrays of different lengths", ErrFormat, ti)
		}
		for i := range n {
			if !finite(t.Value[i]) || math.IsNaN(t.Threshold[i]) {
				return fmt.Errorf("%w: tree %d node %d: value not finite", ErrFormat, ti, i)
			}
			f := t.Feature[i]
			if f == -1 {
				continue
			}
			// Children come after their parent, so evaluation always
			// terminates.
			if f < 0 || f >= nf || t.Left[i] <= int32(i) || t.Right[i] <= int32(i) || int(t.Left[i]) >= n || int(t.Right[i]) >= n {
				return fmt.Errorf("%w: tree %d node %d: bad feature or child index", ErrFormat, ti, i)
			}
		}
	}
	return nil
}

func (m *Model) index() {
	fs := features.Features()
	m.groups = make([]string, len(fs))
	m.vars = make([]physionet.Index, len(fs))
	for i, f := range fs {
		m.groups[i] = f.Group
		m.vars[i] = f.Variable
	}
}

// Save writes the model as JSON.
func (m *Model) Save(w io.Writer) error {
	m.Version = FormatVersion
	enc := json.NewEncoder(w)
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("model: save: %w", err)
	}
	return nil
}

func (t *Tree) leaf(x []float64) int {
	i := 0
	for t.Feature[i] >= 0 {
		v := x[t.Feature[i]]
		var left bool
		if math.IsNaN(v) {
			left = t.MissingLeft[i] == 1
		} else {
			left = v <= t.Threshold[i]
		}
		if left {
			i = int(t.Left[i])
		} else {
			i = int(t.Right[i])
		}
	}
	return i
}

// Margin returns the log-odds for one feature vector (in the order of
// Features).
func (m *Model) Margin(x []float64) float64 {
	s := m.Base
	for i := range m.Trees {
		t := &m.Trees[i]
		s += t.Value[t.leaf(x)]
	}
	return s
}

// Probability returns the risk for one feature vector.
func (m *Model) Probability(x []float64) float64 { return sigmoid(m.Margin(x)) }

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// Contribution is one measurement (or derived quantity) that pushed a risk
// up.
type Contribution struct {
	// Variable is the canonical variable name (physionet.Variables), or the
	// name of a derived quantity: "NEWS2", "SOFA", "SIRS", "qSOFA",
	// "ShockIndex", "PulsePressure", "BUNCreatinine", "SpO2FiO2",
	// "LabTests24h", "VitalSigns24h".
	Variable string `json:"variable"`
	// Value is the variable's last measured value (for a derived quantity,
	// its value at the latest hour). It is 0 when Measured is false.
	Value float64 `json:"value"`
	// Measured is false when the variable was never measured (or the
	// derived quantity cannot be computed): its absence drove the risk.
	Measured bool `json:"measured"`
	// Time is the Hour.Time in which Value was measured (for derived
	// quantities, the latest hour).
	Time time.Time `json:"time"`
	// Weight is the log-odds this variable's features added to the risk
	// (tree-path attribution); positive.
	Weight float64 `json:"weight"`
}

// MaxContributions is how many contributions Risk returns at most.
const MaxContributions = 5

// Risk returns the probability for the patient's latest hour and up to
// MaxContributions variables that raised it most, by decreasing weight.
// Attribution follows each tree's path: the change of node value at a split
// is credited to the split's feature, and features are summed by variable.
// Before the first hour it returns the base risk and no contributions.
func (m *Model) Risk(p *features.Patient) (risk float64, contributions []Contribution) {
	x := p.Vector()
	if p.Hours() == 0 {
		return sigmoid(m.Base), nil
	}
	if m.groups == nil {
		m.index()
	}
	byGroup := map[string]float64{}
	margin := m.Base
	for ti := range m.Trees {
		t := &m.Trees[ti]
		i := 0
		for t.Feature[i] >= 0 {
			f := t.Feature[i]
			v := x[f]
			var left bool
			if math.IsNaN(v) {
				left = t.MissingLeft[i] == 1
			} else {
				left = v <= t.Threshold[i]
			}
			next := int(t.Right[i])
			if left {
				next = int(t.Left[i])
			}
			byGroup[m.groups[f]] += t.Value[next] - t.Value[i]
			i = next
		}
		margin += t.Value[i]
	}
	// The root values are a constant bias shared by every patient; only
	// splits are attributed.
	for g, w := range byGroup {
		if w <= 0 {
			continue
		}
		c := Contribution{Variable: g, Weight: w, Time: p.Time()}
		if idx, ok := physionet.Lookup(g); ok {
			if v, at, ok := p.Last(idx); ok {
				c.Value, c.Time, c.Measured = v, at, true
			}
		} else if v := m.derivedValue(g, x); !math.IsNaN(v) {
			c.Value, c.Measured = v, true
		}
		contributions = append(contributions, c)
	}
	sort.Slice(contributions, func(a, b int) bool {
		if contributions[a].Weight != contributions[b].Weight {
			return contributions[a].Weight > contributions[b].Weight
		}
		return contributions[a].Variable < contributions[b].Variable
	})
	if len(contributions) > MaxContributions {
		contributions = contributions[:MaxContributions]
	}
	return sigmoid(margin), contributions
}

func (m *Model) derivedValue(group string, x []float64) float64 {
	for i, g := range m.groups {
		if g == group {
			return x[i]
		}
	}
	return math.NaN()
}
