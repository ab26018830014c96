// Package features turns a patient's hourly measurements into the feature
// vector of the sepsis model, one hour at a time, using only data up to that
// hour. The same streaming [Patient] serves training (fed from PhysioNet
// files) and the bot (fed from FHIR and HL7 observations), so the model sees
// identical features in both.
//
// Missing data are handled the way ICU data need: values are carried forward
// from their last measurement, and each variable also yields the hours since
// it was last measured, so the model can tell a fresh value from a stale one
// and never sees a fabricated one (before the first measurement a feature is
// NaN, which the trees route explicitly). To transfer to hospitals with
// other ranges and measuring habits, most features are relative to the
// patient: changes over 6 hours, deviations from the patient's own running
// mean or first value, and rolling statistics, rather than only absolute
// values. Administrative unit flags (Unit1, Unit2) are not used.
package features

import (
	"math"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

var nan = math.NaN()

// ring is the number of hours of carried-forward values kept per variable.
const ring = 25

// Hour is one hour of a patient's data.
type Hour struct {
	// Time identifies the hour (for example its end); it is reported back
	// with the measurements that drive a risk. It may be zero.
	Time time.Time
	// Values are the measurements taken in this hour, NaN where nothing was
	// measured, in the units of [physionet.Variables]. Demographics (Age,
	// Gender, HospAdmTime) may be given in any hour and are carried forward.
	// If ICULOS is NaN the Patient uses its own count of hours (1 at the
	// first hour).
	Values physionet.Values
}

type variable struct {
	last, prev, first float64
	lastHour          int // hour index of the last measurement; -1 if never
	lastTime          time.Time
	sum               float64
	n                 int
	ffill             [ring]float64
	measured          [ring]bool
}

// Patient accumulates one patient's hours and computes the features of the
// latest hour. Its memory is bounded: it keeps running sums and the last
// [ring] hours, not the whole stay. A Patient is not safe for concurrent use.
type Patient struct {
	hours   int
	iculos  float64
	time    time.Time
	vars    [physionet.NumVariables]variable
	current physionet.Values
	vec     []float64
}

// NewPatient returns a Patient with no hours.
func NewPatient() *Patient {
	p := &Patient{vec: make([]float64, len(specs))}
	for i := range p.vars {
		v := &p.vars[i]
		v.last, v.prev, v.first, v.lastHour = nan, nan, nan, -1
		for j := range v.ffill {
			v.ffill[j] = nan
		}
	}
	p.current = physionet.Missing()
	return p
}

// Add appends the next hour. Call it once per hour in order, passing
// [physionet.Missing] values for hours without data, so that hour counts
// and rolling windows stay right.
func (p *Patient) Add(h Hour) {
	t := p.hours
	slot := t % ring
	for i := range p.vars {
		v := &p.vars[i]
		x := h.Values[i]
		measured := !math.IsNaN(x) && !math.IsInf(x, 0)
		if measured {
			if math.IsNaN(v.first) {
				v.first = x
			}
			v.prev = v.last
			v.last = x
			v.lastHour = t
			v.lastTime = h.Time
			v.sum += x
			v.n++
		}
		v.measured[slot] = measured
		v.ffill[slot] = v.last
		p.current[i] = v.last
	}
	p.hours++
	p.time = h.Time
	p.iculos = float64(p.hours)
	if x := h.Values[physionet.ICULOS]; !math.IsNaN(x) {
		p.iculos = x
	}
	p.current[physionet.ICULOS] = p.iculos
	for i, s := range specs {
		p.vec[i] = s.fn(p)
	}
}

// Hours returns how many hours have been added.
func (p *Patient) Hours() int { return p.hours }

// Time returns the Time of the latest hour.
func (p *Patient) Time() time.Time { return p.time }

// Current returns the carried-forward value of every variable at the latest
// hour (NaN for variables never measured); this is what the rule scores of
// package score take.
func (p *Patient) Current() physionet.Values { return p.current }

// Last returns the last measured value of a variable and the Time of the
// hour it came in; ok is false if it was never measured.
func (p *Patient) Last(i physionet.Index) (value float64, at time.Time, ok bool) {
	if i < 0 || int(i) >= physionet.NumVariables {
		return nan, time.Time{}, false
	}
	v := &p.vars[i]
	return v.last, v.lastTime, v.lastHour >= 0
}

// Vector returns the features of the latest hour, in the order of [Names].
// The slice is owned by the Patient and overwritten by the next Add; copy it
// to keep it. Before the first Add every feature is 0.
func (p *Patient) Vector() []float64 { return p.vec }

// ffillAgo returns the carried-forward value k hours before the latest hour.
func (p *Patient) ffillAgo(i physionet.Index, k int) float64 {
	t := p.hours - 1 - k
	if t < 0 || k >= ring {
		return nan
	}
	return p.vars[i].ffill[t%ring]
}

// window returns mean, min, max and standard deviation of the carried-forward
// values over the latest k hours, skipping NaN.
func (p *Patient) window(i physionet.Index, k int) (mean, lo, hi, sd float64) {
	var sum, sq float64
	n := 0
	lo, hi = math.Inf(1), math.Inf(-1)
	for j := 0; j < k; j++ {
		x := p.ffillAgo(i, j)
		if math.IsNaN(x) {
			continue
		}
		n++
		sum += x
		sq += x * x
		lo = math.Min(lo, x)
		hi = math.Max(hi, x)
	}
	if n == 0 {
		return nan, nan, nan, nan
	}
	mean = sum / float64(n)
	return mean, lo, hi, math.Sqrt(math.Max(0, sq/float64(n)-mean*mean))
}

// count returns how many of the latest k hours had a measurement of i.
func (p *Patient) count(i physionet.Index, k int) float64 {
	n := 0
	for j := 0; j < k && j < p.hours && j < ring; j++ {
		if p.vars[i].measured[(p.hours-1-j)%ring] {
			n++
		}
	}
	return float64(n)
}

func (p *Patient) since(i physionet.Index) float64 {
	v := &p.vars[i]
	if v.lastHour < 0 {
		return nan
	}
	return float64(p.hours - 1 - v.lastHour)
}
