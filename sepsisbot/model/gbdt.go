package model

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
)

// Params are the hyperparameters of training. Zero fields take the
// defaults of [DefaultParams].
type Params struct {
	Rounds         int     `json:"rounds"`           // maximum number of trees
	LearningRate   float64 `json:"learning_rate"`    // shrinkage of each tree
	MaxDepth       int     `json:"max_depth"`        // depth of each tree
	MinChildWeight float64 `json:"min_child_weight"` // minimum hessian sum in a leaf
	MinLeaf        int     `json:"min_leaf"`         // minimum rows in a leaf
	Lambda         float64 `json:"lambda"`           // L2 regularization of leaf values
	Subsample      float64 `json:"subsample"`        // fraction of rows per tree
	ColSample      float64 `json:"colsample"`        // fraction of features per tree
	MaxBins        int     `json:"max_bins"`         // histogram bins per feature (≤ 254)
	EarlyStop      int     `json:"early_stop"`       // stop after this many rounds without validation improvement
	// Workers is the number of goroutines building histograms; the result
	// does not depend on it. Default GOMAXPROCS.
	Workers int `json:"-"`
}

// DefaultParams are the parameters the default model was trained with.
var DefaultParams = Params{
	Rounds:         600,
	LearningRate:   0.05,
	MaxDepth:       6,
	MinChildWeight: 2,
	MinLeaf:        100,
	Lambda:         1,
	Subsample:      0.5,
	ColSample:      0.8,
	MaxBins:        64,
	EarlyStop:      40,
}

func (p Params) withDefaults() Params {
	d := DefaultParams
	if p.Rounds > 0 {
		d.Rounds = p.Rounds
	}
	if p.LearningRate > 0 {
		d.LearningRate = p.LearningRate
	}
	if p.MaxDepth > 0 {
		d.MaxDepth = p.MaxDepth
	}
	if p.MinChildWeight > 0 {
		d.MinChildWeight = p.MinChildWeight
	}
	if p.MinLeaf > 0 {
		d.MinLeaf = p.MinLeaf
	}
	if p.Lambda > 0 {
		d.Lambda = p.Lambda
	}
	if p.Subsample > 0 && p.Subsample <= 1 {
		d.Subsample = p.Subsample
	}
	if p.ColSample > 0 && p.ColSample <= 1 {
		d.ColSample = p.ColSample
	}
	if p.MaxBins > 1 && p.MaxBins <= 254 {
		d.MaxBins = p.MaxBins
	}
	if p.EarlyStop > 0 {
		d.EarlyStop = p.EarlyStop
	}
	d.Workers = p.Workers
	if d.Workers <= 0 {
		d.Workers = runtime.GOMAXPROCS(0)
	}
	return d
}

const missingBin = 255

// Edges are per-feature bin upper bounds: a value x falls in the first bin
// j with x ≤ edges[j], or in bin len(edges) if larger than all.
type Edges [][]float64

// ComputeEdges chooses at most maxBins−1 edges per feature at quantiles of
// the sample (rows of feature vectors), rounded to 5 significant digits so
// the saved thresholds stay short.
func ComputeEdges(sample [][]float64, numFeatures, maxBins int) Edges {
	edges := make(Edges, numFeatures)
	vals := make([]float64, 0, len(sample))
	for f := range numFeatures {
		vals = vals[:0]
		for _, x := range sample {
			if v := x[f]; !math.IsNaN(v) && !math.IsInf(v, 0) {
				vals = append(vals, v)
			}
		}
		slices.Sort(vals)
		var e []float64
		for k := 1; k < maxBins && len(vals) > 0; k++ {
			q := vals[min(len(vals)-1, k*len(vals)/maxBins)]
			q, _ = strconv.ParseFloat(strconv.FormatFloat(q, 'g', 5, 64), 64)
			if len(e) == 0 || q > e[len(e)-1] {
				e = append(e, q)
			}
		}
		edges[f] = e
	}
	return edges
}

func (e Edges) bin(f int, x float64) uint8 {
	if math.IsNaN(x) {
		return missingBin
	}
	lo, hi := 0, len(e[f])
	for lo < hi {
		mid := (lo + hi) / 2
		if x <= e[f][mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return uint8(lo)
}

// threshold returns the raw-value threshold of a split "bin ≤ b".
func (e Edges) threshold(f int, b uint8) float64 {
	if int(b) >= len(e[f]) {
		return math.MaxFloat64
	}
	return e[f][b]
}

// Dataset is a binned training matrix, stored by feature.
type Dataset struct {
	Edges  Edges
	bins   [][]uint8 // [feature][row]
	labels []float64
}

// NewDataset returns an empty dataset binned by edges.
func NewDataset(edges Edges) *Dataset {
	return &Dataset{Edges: edges, bins: make([][]uint8, len(edges))}
}

// Append adds one row.
func (d *Dataset) Append(x []float64, label bool) {
	for f := range d.bins {
		d.bins[f] = append(d.bins[f], d.Edges.bin(f, x[f]))
	}
	y := 0.0
	if label {
		y = 1
	}
	d.labels = append(d.labels, y)
}

// Rows returns the number of rows.
func (d *Dataset) Rows() int { return len(d.labels) }

type histBin struct {
	g, h float64
	n    int32
}

type binnedTree struct {
	feature     []int32
	bin         []uint8
	missingLeft []int8
	left, right []int32
	value       []float64
}

func (t *binnedTree) predict(d *Dataset, r int) float64 {
	i := 0
	for t.feature[i] >= 0 {
		b := d.bins[t.feature[i]][r]
		var left bool
		if b == missingBin {
			left = t.missingLeft[i] == 1
		} else {
			left = b <= t.bin[i]
		}
		if left {
			i = int(t.left[i])
		} else {
			i = int(t.right[i])
		}
	}
	return t.value[i]
}

type trainer struct {
	p        Params
	d        *Dataset
	g, h     []float64
	stride   int
	nf       int
	features []int // sampled for the current tree
	free     [][]histBin
	tree     *binnedTree
}

func (tr *trainer) alloc() []histBin {
	if n := len(tr.free); n > 0 {
		h := tr.free[n-1]
		tr.free = tr.free[:n-1]
		clear(h)
		return h
	}
	return make([]histBin, tr.nf*tr.stride)
}

func (tr *trainer) release(h []histBin) { tr.free = append(tr.free, h) }

func (tr *trainer) histogram(rows []int32) []histBin {
	hist := tr.alloc()
	var wg sync.WaitGroup
	next := make(chan int, len(tr.features))
	for _, f := range tr.features {
		next <- f
	}
	close(next)
	for range min(tr.p.Workers, len(tr.features)) {
		wg.Go(func() {
			for f := range next {
				col := tr.d.bins[f]
				hb := hist[f*tr.stride : (f+1)*tr.stride]
				miss := tr.stride - 1
				for _, r := range rows {
					b := int(col[r])
					if b == missingBin {
						b = miss
					}
					e := &hb[b]
					e.g += tr.g[r]
					e.h += tr.h[r]
					e.n++
				}
			}
		})
	}
	wg.Wait()
	return hist
}

type split struct {
	gain        float64
	feature     int
	bin         uint8
	missingLeft bool
}

func (tr *trainer) score(g, h float64) float64 { return g * g / (h + tr.p.Lambda) }

func (tr *trainer) bestSplit(hist []histBin, G, H float64, N int32) (split, bool) {
	best := split{gain: 0}
	found := false
	parent := tr.score(G, H)
	for _, f := range tr.features {
		hb := hist[f*tr.stride : (f+1)*tr.stride]
		nb := len(tr.d.Edges[f]) + 1
		miss := hb[tr.stride-1]
		var gl, hl float64
		var nl int32
		for b := 0; b < nb; b++ {
			gl += hb[b].g
			hl += hb[b].h
			nl += hb[b].n
			for _, ml := range [2]bool{false, true} {
				lg, lh, ln := gl, hl, nl
				if ml {
					lg, lh, ln = gl+miss.g, hl+miss.h, nl+miss.n
				}
				rg, rh, rn := G-lg, H-lh, N-ln
				if ln < int32(tr.p.MinLeaf) || rn < int32(tr.p.MinLeaf) || lh < tr.p.MinChildWeight || rh < tr.p.MinChildWeight {
					continue
				}
				gain := tr.score(lg, lh) + tr.score(rg, rh) - parent
				if gain > best.gain+1e-12 {
					best = split{gain: gain, feature: f, bin: uint8(b), missingLeft: ml}
					found = true
				}
			}
		}
	}
	return best, found
}

func (tr *trainer) addNode(value float64) int32 {
	t := tr.tree
	t.feature = append(t.feature, -1)
	t.bin = append(t.bin, 0)
	t.missingLeft = append(t.missingLeft, 0)
	t.left = append(t.left, -1)
	t.right = append(t.right, -1)
	t.value = append(t.value, value)
	return int32(len(t.feature) - 1)
}

// grow builds the subtree for rows whose histogram is hist (released by
// grow) and returns its node index.
func (tr *trainer) grow(rows []int32, hist []histBin, depth int) int32 {
	var G, H float64
	var N int32
	// Totals from any one feature's histogram (every row falls in one bin).
	f0 := tr.features[0]
	for _, e := range hist[f0*tr.stride : (f0+1)*tr.stride] {
		G += e.g
		H += e.h
		N += e.n
	}
	node := tr.addNode(-G / (H + tr.p.Lambda) * tr.p.LearningRate)
	if depth >= tr.p.MaxDepth || N < 2*int32(tr.p.MinLeaf) {
		tr.release(hist)
		return node
	}
	s, ok := tr.bestSplit(hist, G, H, N)
	if !ok {
		tr.release(hist)
		return node
	}
	col := tr.d.bins[s.feature]
	var left, right []int32
	for _, r := range rows {
		b := col[r]
		if b == missingBin && s.missingLeft || b != missingBin && b <= s.bin {
			left = append(left, r)
		} else {
			right = append(right, r)
		}
	}
	small, large := left, right
	if len(small) > len(large) {
		small, large = large, small
	}
	hs := tr.histogram(small)
	for i := range hist {
		hist[i].g -= hs[i].g
		hist[i].h -= hs[i].h
		hist[i].n -= hs[i].n
	}
	hl, hr := hs, hist
	if len(left) > len(right) {
		hl, hr = hist, hs
	}
	t := tr.tree
	t.feature[node] = int32(s.feature)
	t.bin[node] = s.bin
	if s.missingLeft {
		t.missingLeft[node] = 1
	}
	l := tr.grow(left, hl, depth+1)
	r := tr.grow(right, hr, depth+1)
	t.left[node], t.right[node] = l, r
	return node
}

// TrainResult is the outcome of [Train].
type TrainResult struct {
	Trees        []Tree
	Base         float64
	Rounds       int       // trees kept (best validation round)
	ValidLogLoss float64   // validation log loss at that round
	ValidMargins []float64 // validation log-odds of the kept model, by row
}

// Train fits gradient-boosted trees with logistic loss on train, stopping
// when the validation log loss has not improved for Params.EarlyStop rounds
// and keeping the best round. It is deterministic for a seed. progress, if
// not nil, is called after each round. It returns ctx's error if ctx is
// cancelled (checked between rounds).
func Train(ctx context.Context, train, valid *Dataset, p Params, seed uint64, progress func(round int, validLogLoss float64)) (TrainResult, error) {
	p = p.withDefaults()
	n := train.Rows()
	nf := len(train.Edges)
	pos := 0.0
	for _, y := range train.labels {
		pos += y
	}
	prior := (pos + 1) / (float64(n) + 2)
	base := math.Log(prior / (1 - prior))
	margin := make([]float64, n)
	vmargin := make([]float64, valid.Rows())
	for i := range margin {
		margin[i] = base
	}
	for i := range vmargin {
		vmargin[i] = base
	}
	tr := &trainer{p: p, d: train, g: make([]float64, n), h: make([]float64, n), stride: p.MaxBins + 1, nf: nf}
	rng := rand.New(rand.NewPCG(seed, 0x5e9515))
	var trees []*binnedTree
	bestLoss, bestRound := math.Inf(1), 0
	bestV := slices.Clone(vmargin)
	rows := make([]int32, 0, n)
	for round := 0; round < p.Rounds; round++ {
		if err := ctx.Err(); err != nil {
			return TrainResult{}, err
		}
		for i := range n {
			pr := sigmoid(margin[i])
			tr.g[i] = pr - train.labels[i]
			tr.h[i] = math.Max(pr*(1-pr), 1e-16)
		}
		rows = rows[:0]
		for i := range n {
			if rng.Float64() < p.Subsample {
				rows = append(rows, int32(i))
			}
		}
		perm := rng.Perm(nf)
		k := max(1, int(math.Round(p.ColSample*float64(nf))))
		tr.features = perm[:k]
		slices.Sort(tr.features)
		if len(rows) == 0 {
			continue
		}
		tr.tree = &binnedTree{}
		tr.grow(rows, tr.histogram(rows), 0)
		t := tr.tree
		trees = append(trees, t)
		for i := range n {
			margin[i] += t.predict(train, i)
		}
		loss := 0.0
		for i := range vmargin {
			vmargin[i] += t.predict(valid, i)
			loss += logLoss(vmargin[i], valid.labels[i])
		}
		if valid.Rows() > 0 {
			loss /= float64(valid.Rows())
		}
		if progress != nil {
			progress(round+1, loss)
		}
		if loss < bestLoss-1e-9 {
			bestLoss, bestRound = loss, round+1
			copy(bestV, vmargin)
		} else if round+1-bestRound >= p.EarlyStop {
			break
		}
	}
	res := TrainResult{Base: base, Rounds: bestRound, ValidLogLoss: bestLoss, ValidMargins: bestV}
	for _, bt := range trees[:bestRound] {
		t := Tree{
			Feature: bt.feature, MissingLeft: bt.missingLeft, Left: bt.left, Right: bt.right, Value: bt.value,
			Threshold: make([]float64, len(bt.feature)),
		}
		for i, f := range bt.feature {
			if f >= 0 {
				t.Threshold[i] = train.Edges.threshold(int(f), bt.bin[i])
			}
		}
		res.Trees = append(res.Trees, t)
	}
	return res, nil
}

func logLoss(margin, y float64) float64 {
	// log(1+exp(−m)) for y=1, log(1+exp(m)) for y=0, computed stably.
	if y == 1 {
		margin = -margin
	}
	if margin > 0 {
		return margin + math.Log1p(math.Exp(-margin))
	}
	return math.Log1p(math.Exp(margin))
}
