package features

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

func index(t *testing.T, name string) int {
	t.Helper()
	i := slices.Index(Names(), name)
	if i < 0 {
		t.Fatalf("no feature %q", name)
	}
	return i
}

func hour(m map[physionet.Index]float64) Hour {
	v := physionet.Missing()
	for k, x := range m {
		v[k] = x
	}
	return Hour{Values: v}
}

func TestNamesAreUniqueAndMatchVector(t *testing.T) {
	names := Names()
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Fatalf("duplicate feature %q", n)
		}
		seen[n] = true
	}
	p := NewPatient()
	if len(p.Vector()) != len(names) {
		t.Fatalf("vector has %d entries, %d names", len(p.Vector()), len(names))
	}
	for _, f := range Features() {
		if f.Group == "" || f.Doc == "" {
			t.Errorf("feature %q lacks group or doc", f.Name)
		}
		if f.Group == "Unit1" || f.Group == "Unit2" {
			t.Errorf("hospital-specific unit flag used: %q", f.Name)
		}
	}
}

func TestHeartRateFeaturesHandWorked(t *testing.T) {
	p := NewPatient()
	// Hours 0..7: HR 80, missing, 90, missing, missing, missing, missing, 110.
	hrs := []float64{80, math.NaN(), 90, math.NaN(), math.NaN(), math.NaN(), math.NaN(), 110}
	base := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	for i, hr := range hrs {
		h := hour(map[physionet.Index]float64{physionet.HR: hr})
		h.Time = base.Add(time.Duration(i) * time.Hour)
		p.Add(h)
		if i == 5 {
			x := p.Vector()
			if got := x[index(t, "HR.last")]; got != 90 {
				t.Errorf("hour 5: HR.last = %v, want 90 (carried forward)", got)
			}
			if got := x[index(t, "HR.since")]; got != 3 {
				t.Errorf("hour 5: HR.since = %v, want 3", got)
			}
			if got := x[index(t, "HR.delta6")]; !math.IsNaN(got) {
				t.Errorf("hour 5: HR.delta6 = %v, want NaN (no value 6 hours back)", got)
			}
		}
	}
	x := p.Vector()
	// Carried-forward values at hours 2..7: 90 90 90 90 90 110.
	want := map[string]float64{
		"HR.last":   110,
		"HR.since":  0,
		"HR.delta6": 110 - 80, // hour 7 vs hour 1 (carried 80)
		"HR.mean6":  (90*5 + 110) / 6.0,
		"HR.min6":   90,
		"HR.max6":   110,
		"HR.dev":    110 - (80+90+110)/3.0,
	}
	for name, w := range want {
		if got := x[index(t, name)]; math.Abs(got-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	if got := x[index(t, "O2Sat.last")]; !math.IsNaN(got) {
		t.Errorf("never-measured O2Sat.last = %v, want NaN", got)
	}
	if got := x[index(t, "ICULOS.hours")]; got != 8 {
		t.Errorf("ICULOS.hours = %v, want 8 (counted)", got)
	}
	v, at, ok := p.Last(physionet.HR)
	if !ok || v != 110 || !at.Equal(base.Add(7*time.Hour)) {
		t.Errorf("Last(HR) = %v %v %v", v, at, ok)
	}
	if got := x[index(t, "VitalSigns24h.count")]; got != 3 {
		t.Errorf("VitalSigns24h.count = %v, want 3", got)
	}
}

func TestLabFeaturesHandWorked(t *testing.T) {
	p := NewPatient()
	p.Add(hour(map[physionet.Index]float64{physionet.Lactate: 1.5, physionet.ICULOS: 5}))
	p.Add(hour(nil))
	p.Add(hour(map[physionet.Index]float64{physionet.Lactate: 4.0}))
	p.Add(hour(map[physionet.Index]float64{physionet.Lactate: 3.0}))
	x := p.Vector()
	want := map[string]float64{
		"Lactate.last":      3,
		"Lactate.delta":     -1,
		"Lactate.dev":       1.5,
		"Lactate.since":     0,
		"LabTests24h.count": 3,
		"ICULOS.hours":      4, // not given at hour 3: the Patient's own count
	}
	for name, w := range want {
		if got := x[index(t, name)]; math.Abs(got-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
}

func TestDerivedFeatures(t *testing.T) {
	p := NewPatient()
	p.Add(hour(map[physionet.Index]float64{physionet.HR: 120, physionet.SBP: 80, physionet.DBP: 50, physionet.Resp: 24, physionet.O2Sat: 92, physionet.FiO2: 0.4}))
	x := p.Vector()
	want := map[string]float64{
		"ShockIndex.value":    1.5,
		"PulsePressure.value": 30,
		"SpO2FiO2.value":      230,
		"qSOFA.points":        2,
		// RR 24 → 2, SpO2 92 → 2, O2 → 2, SBP 80 → 3, HR 120 → 2 = 11.
		"NEWS2.points": 11,
	}
	for name, w := range want {
		if got := x[index(t, name)]; math.Abs(got-w) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
}

// The features of hour t must not depend on anything after t.
func TestFeaturesUseOnlyThePast(t *testing.T) {
	hours := make([]Hour, 40)
	for i := range hours {
		hours[i] = hour(map[physionet.Index]float64{physionet.HR: 70 + float64(i%7)*5, physionet.Temp: 36 + float64(i%3)})
		if i%9 == 0 {
			hours[i].Values[physionet.WBC] = 8 + float64(i)/10
		}
	}
	full := NewPatient()
	var at20 []float64
	for i, h := range hours {
		full.Add(h)
		if i == 20 {
			at20 = slices.Clone(full.Vector())
		}
	}
	short := NewPatient()
	for _, h := range hours[:21] {
		short.Add(h)
	}
	for i, v := range short.Vector() {
		if v != at20[i] && !(math.IsNaN(v) && math.IsNaN(at20[i])) {
			t.Fatalf("%s differs: %v vs %v", Names()[i], v, at20[i])
		}
	}
}

func BenchmarkPatientAdd(b *testing.B) {
	h := hour(map[physionet.Index]float64{physionet.HR: 90, physionet.SBP: 110, physionet.Resp: 18, physionet.Temp: 37})
	p := NewPatient()
	for b.Loop() {
		p.Add(h)
	}
}
