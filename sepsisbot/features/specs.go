package features

import (
	"math"

	"github.com/medicus-health/medicus/sepsisbot/physionet"
	"github.com/medicus-health/medicus/sepsisbot/score"
)

// Feature describes one entry of the feature vector.
type Feature struct {
	// Name is "<variable>.<statistic>", e.g. "HR.delta6" or "NEWS2.points".
	Name string
	// Group names what a clinician would look at for this feature: the
	// canonical variable name (e.g. "HR"), or the name of a derived quantity
	// ("NEWS2", "ShockIndex", "LabTests24h").
	Group string
	// Variable is the variable the feature is computed from, or -1 for
	// derived quantities that combine several.
	Variable physionet.Index
	// Doc explains the feature in a sentence.
	Doc string

	fn func(*Patient) float64
}

// Vitals are the vital signs with hourly statistics; Labs the laboratory
// values with per-measurement statistics. EtCO2 is never measured in the
// training data and is not used.
var (
	Vitals = []physionet.Index{physionet.HR, physionet.O2Sat, physionet.Temp, physionet.SBP, physionet.MAP, physionet.DBP, physionet.Resp}
	Labs   = []physionet.Index{
		physionet.BaseExcess, physionet.HCO3, physionet.FiO2, physionet.PH, physionet.PaCO2, physionet.SaO2,
		physionet.AST, physionet.BUN, physionet.Alkalinephos, physionet.Calcium, physionet.Chloride,
		physionet.Creatinine, physionet.BilirubinDirect, physionet.Glucose, physionet.Lactate,
		physionet.Magnesium, physionet.Phosphate, physionet.Potassium, physionet.BilirubinTotal,
		physionet.TroponinI, physionet.Hct, physionet.Hgb, physionet.PTT, physionet.WBC,
		physionet.Fibrinogen, physionet.Platelets,
	}
)

var specs = buildSpecs()

// Features returns the description of every feature, in vector order.
func Features() []Feature { return append([]Feature(nil), specs...) }

// Names returns the feature names in vector order.
func Names() []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

func ratio(a, b float64) float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return nan
	}
	return a / b
}

func buildSpecs() []Feature {
	var out []Feature
	add := func(v physionet.Index, stat, doc string, fn func(*Patient) float64) {
		name := v.Name()
		out = append(out, Feature{Name: name + "." + stat, Group: name, Variable: v, Doc: doc, fn: fn})
	}
	derived := func(group, stat, doc string, fn func(*Patient) float64) {
		out = append(out, Feature{Name: group + "." + stat, Group: group, Variable: -1, Doc: doc, fn: fn})
	}
	for _, v := range Vitals {
		add(v, "last", "last measured value, carried forward", func(p *Patient) float64 { return p.vars[v].last })
		add(v, "since", "hours since the last measurement", func(p *Patient) float64 { return p.since(v) })
		add(v, "delta6", "change of the carried-forward value over 6 hours", func(p *Patient) float64 {
			return p.vars[v].last - p.ffillAgo(v, 6)
		})
		add(v, "mean6", "mean over the last 6 hours", func(p *Patient) float64 { m, _, _, _ := p.window(v, 6); return m })
		add(v, "min6", "minimum over the last 6 hours", func(p *Patient) float64 { _, lo, _, _ := p.window(v, 6); return lo })
		add(v, "max6", "maximum over the last 6 hours", func(p *Patient) float64 { _, _, hi, _ := p.window(v, 6); return hi })
		add(v, "sd12", "standard deviation over the last 12 hours", func(p *Patient) float64 { _, _, _, sd := p.window(v, 12); return sd })
		add(v, "delta1", "change of the carried-forward value over 1 hour", func(p *Patient) float64 {
			return p.vars[v].last - p.ffillAgo(v, 1)
		})
		add(v, "mean24", "mean over the last 24 hours", func(p *Patient) float64 { m, _, _, _ := p.window(v, 24); return m })
		add(v, "min24", "minimum over the last 24 hours", func(p *Patient) float64 { _, lo, _, _ := p.window(v, 24); return lo })
		add(v, "max24", "maximum over the last 24 hours", func(p *Patient) float64 { _, _, hi, _ := p.window(v, 24); return hi })
		add(v, "dev", "deviation of the last value from the patient's running mean", func(p *Patient) float64 {
			s := &p.vars[v]
			if s.n == 0 {
				return nan
			}
			return s.last - s.sum/float64(s.n)
		})
	}
	for _, v := range Labs {
		add(v, "last", "last measured value, carried forward", func(p *Patient) float64 { return p.vars[v].last })
		add(v, "since", "hours since the last measurement", func(p *Patient) float64 { return p.since(v) })
		add(v, "delta", "change from the previous measurement", func(p *Patient) float64 { return p.vars[v].last - p.vars[v].prev })
		add(v, "dev", "deviation of the last value from the patient's first value", func(p *Patient) float64 {
			return p.vars[v].last - p.vars[v].first
		})
		add(v, "count24", "measurements in the last 24 hours", func(p *Patient) float64 { return p.count(v, 24) })
	}
	for _, v := range []physionet.Index{physionet.Age, physionet.Gender, physionet.HospAdmTime} {
		add(v, "value", "demographic value", func(p *Patient) float64 { return p.vars[v].last })
	}
	add(physionet.ICULOS, "hours", "hours since ICU admission", func(p *Patient) float64 { return p.iculos })
	derived("ShockIndex", "value", "heart rate divided by systolic pressure", func(p *Patient) float64 {
		return ratio(p.vars[physionet.HR].last, p.vars[physionet.SBP].last)
	})
	derived("PulsePressure", "value", "systolic minus diastolic pressure", func(p *Patient) float64 {
		return p.vars[physionet.SBP].last - p.vars[physionet.DBP].last
	})
	derived("BUNCreatinine", "value", "ratio of BUN to creatinine", func(p *Patient) float64 {
		return ratio(p.vars[physionet.BUN].last, p.vars[physionet.Creatinine].last)
	})
	derived("SpO2FiO2", "value", "SpO2 divided by FiO2 (oxygenation surrogate for PaO2/FiO2)", func(p *Patient) float64 {
		f := p.vars[physionet.FiO2].last
		if f > 1 {
			f /= 100
		}
		return ratio(p.vars[physionet.O2Sat].last, f)
	})
	derived("qSOFA", "points", "qSOFA on carried-forward values", func(p *Patient) float64 { return float64(score.QSOFA(p.current).Points) })
	derived("SIRS", "points", "SIRS criteria on carried-forward values", func(p *Patient) float64 { return float64(score.SIRS(p.current).Points) })
	derived("NEWS2", "points", "NEWS2 on carried-forward values", func(p *Patient) float64 { return float64(score.NEWS2(p.current).Points) })
	derived("SOFA", "points", "computable SOFA components on carried-forward values", func(p *Patient) float64 { return float64(score.SOFA(p.current).Points) })
	derived("LabTests24h", "count", "laboratory measurements in the last 24 hours", func(p *Patient) float64 {
		n := 0.0
		for _, v := range Labs {
			n += p.count(v, 24)
		}
		return n
	})
	derived("VitalSigns24h", "count", "vital-sign measurements in the last 24 hours", func(p *Patient) float64 {
		n := 0.0
		for _, v := range Vitals {
			n += p.count(v, 24)
		}
		return n
	})
	return out
}
