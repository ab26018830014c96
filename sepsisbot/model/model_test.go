package model

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/medicus-health/medicus/sepsisbot/features"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// synthetic returns rows of 3 features where the label is 1 with high
// probability when x0 > 0.6 and x2 is missing or below 0.
func synthetic(n int, seed uint64) ([][]float64, []bool) {
	rng := rand.New(rand.NewPCG(seed, 1))
	xs := make([][]float64, n)
	ys := make([]bool, n)
	for i := range xs {
		x := []float64{rng.Float64(), rng.NormFloat64(), rng.NormFloat64()}
		if rng.Float64() < 0.3 {
			x[2] = math.NaN()
		}
		signal := x[0] > 0.6 && (math.IsNaN(x[2]) || x[2] < 0)
		ys[i] = signal && rng.Float64() < 0.9 || !signal && rng.Float64() < 0.05
		xs[i] = x
	}
	return xs, ys
}

func dataset(edges Edges, xs [][]float64, ys []bool) *Dataset {
	d := NewDataset(edges)
	for i := range xs {
		d.Append(xs[i], ys[i])
	}
	return d
}

func trainSynthetic(t *testing.T, workers int) (TrainResult, Edges) {
	t.Helper()
	xs, ys := synthetic(2500, 1)
	vx, vy := synthetic(1000, 2)
	edges := ComputeEdges(xs, 3, 32)
	p := Params{Rounds: 40, MinLeaf: 20, MinChildWeight: 1, Workers: workers, LearningRate: 0.2, MaxDepth: 3}
	res, err := Train(context.Background(), dataset(edges, xs, ys), dataset(edges, vx, vy), p, 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res, edges
}

func TestTrainLearnsARuleWithMissingValues(t *testing.T) {
	res, _ := trainSynthetic(t, 2)
	m := &Model{Base: res.Base, Trees: res.Trees}
	tx, ty := synthetic(2000, 3)
	correct := 0
	for i, x := range tx {
		if (m.Probability(x) >= 0.5) == ty[i] {
			correct++
		}
	}
	// The labels are noisy: the Bayes accuracy is about 0.93.
	if acc := float64(correct) / float64(len(tx)); acc < 0.88 {
		t.Fatalf("test accuracy %.3f, want ≥ 0.88", acc)
	}
	if res.Rounds == 0 || res.Rounds > 40 || math.IsInf(res.ValidLogLoss, 0) {
		t.Fatalf("rounds %d, loss %v", res.Rounds, res.ValidLogLoss)
	}
}

func TestTrainIsDeterministicWhateverTheWorkers(t *testing.T) {
	a, _ := trainSynthetic(t, 1)
	b, _ := trainSynthetic(t, 3)
	var ja, jb bytes.Buffer
	(&Model{Trees: a.Trees, Base: a.Base}).Save(&ja)
	(&Model{Trees: b.Trees, Base: b.Base}).Save(&jb)
	if ja.String() != jb.String() {
		t.Fatal("same seed, different models")
	}
}

func TestBinnedAndRawPredictionsAgree(t *testing.T) {
	res, edges := trainSynthetic(t, 2)
	m := &Model{Base: res.Base, Trees: res.Trees}
	vx, vy := synthetic(1000, 2)
	d := dataset(edges, vx, vy)
	for i, x := range vx {
		if got, want := m.Margin(x), res.ValidMargins[i]; math.Abs(got-want) > 1e-9 {
			t.Fatalf("row %d: raw %v, binned %v", i, got, want)
		}
	}
	_ = d
}

func TestDefaultModelLoadsAndExplains(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trees) == 0 || m.Threshold <= 0 || m.Threshold >= 1 {
		t.Fatalf("trees %d threshold %v", len(m.Trees), m.Threshold)
	}
	p := features.NewPatient()
	if r, c := m.Risk(p); c != nil || r <= 0 || r >= 1 {
		t.Fatalf("empty patient: risk %v contributions %v", r, c)
	}
	// A deteriorating patient: rising heart rate and respiration, falling
	// pressure, fever, high lactate.
	for h := range 30 {
		v := physionet.Missing()
		f := float64(h)
		v[physionet.HR] = 80 + 2*f
		v[physionet.Resp] = 16 + f/3
		v[physionet.SBP] = 125 - 1.5*f
		v[physionet.MAP] = 85 - f
		v[physionet.Temp] = 37 + f/12
		v[physionet.O2Sat] = 97 - f/6
		if h%8 == 0 {
			v[physionet.Lactate] = 1 + f/6
			v[physionet.WBC] = 9 + f/3
		}
		v[physionet.Age] = 70
		p.Add(features.Hour{Values: v})
	}
	risk, contribs := m.Risk(p)
	if want := m.Probability(p.Vector()); math.Abs(risk-want) > 1e-12 {
		t.Fatalf("Risk %v, Probability %v", risk, want)
	}
	if len(contribs) == 0 || len(contribs) > MaxContributions {
		t.Fatalf("%d contributions", len(contribs))
	}
	for i, c := range contribs {
		if c.Weight <= 0 || c.Variable == "" || i > 0 && c.Weight > contribs[i-1].Weight {
			t.Fatalf("contribution %d = %+v", i, c)
		}
		if idx, ok := physionet.Lookup(c.Variable); ok && c.Measured {
			if v, _, _ := p.Last(idx); v != c.Value {
				t.Fatalf("%s value %v, last measured %v", c.Variable, c.Value, v)
			}
		}
	}
}

// The attributions along each path plus the root values sum to the margin.
func TestContributionsAddUpToTheMargin(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	p := features.NewPatient()
	v := physionet.Missing()
	v[physionet.HR], v[physionet.Resp], v[physionet.SBP] = 118, 26, 92
	p.Add(features.Hour{Values: v})
	x := p.Vector()
	sum := m.Base
	for ti := range m.Trees {
		t := &m.Trees[ti]
		sum += t.Value[0]
		i := 0
		for t.Feature[i] >= 0 {
			next := int(t.Right[i])
			xv := x[t.Feature[i]]
			if math.IsNaN(xv) && t.MissingLeft[i] == 1 || !math.IsNaN(xv) && xv <= t.Threshold[i] {
				next = int(t.Left[i])
			}
			sum += t.Value[next] - t.Value[i]
			i = next
		}
	}
	if got := m.Margin(x); math.Abs(got-sum) > 1e-9 {
		t.Fatalf("margin %v, root values plus path attributions %v", got, sum)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, len(m.Features))
	for i := range x {
		x[i] = float64(i%7) - 2
	}
	if m.Margin(x) != m2.Margin(x) || m.Threshold != m2.Threshold {
		t.Fatal("round trip changed the model")
	}
}

func TestLoadRefusesBadModels(t *testing.T) {
	good, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	encode := func(mod func(*Model)) string {
		var buf bytes.Buffer
		m, _ := Default()
		mod(m)
		m.Save(&buf)
		return buf.String()
	}
	_ = good
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"not JSON", "{", ErrFormat},
		{"wrong version", strings.Replace(encode(func(*Model) {}), `"version":1`, `"version":9`, 1), ErrFormat},
		{"other features", encode(func(m *Model) { m.Features = m.Features[1:] }), ErrFeatures},
		{"child pointing back (a loop)", encode(func(m *Model) {
			for i, f := range m.Trees[0].Feature {
				if f >= 0 {
					m.Trees[0].Left[i] = int32(i)
					return
				}
			}
		}), ErrFormat},
		{"feature out of range", encode(func(m *Model) { m.Trees[0].Feature[0] = 1 << 20 }), ErrFormat},
		{"ragged tree", encode(func(m *Model) { m.Trees[0].Value = m.Trees[0].Value[:1] }), ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Load(strings.NewReader(tt.in)); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(defaultJSON[:min(len(defaultJSON), 2000)]))
	f.Add([]byte(`{"version":1,"features":[],"trees":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		x := make([]float64, len(m.Features))
		for i := range x {
			x[i] = math.NaN()
		}
		if r := m.Probability(x); math.IsNaN(r) {
			t.Fatal("NaN risk")
		}
	})
}

func BenchmarkRisk(b *testing.B) {
	m, err := Default()
	if err != nil {
		b.Fatal(err)
	}
	p := features.NewPatient()
	v := physionet.Missing()
	v[physionet.HR], v[physionet.Resp], v[physionet.SBP], v[physionet.Temp] = 104, 22, 101, 38.2
	for range 24 {
		p.Add(features.Hour{Values: v})
	}
	for b.Loop() {
		m.Risk(p)
	}
}
