package ingest

import (
	"errors"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/alerting"
	"github.com/medicus-health/medicus/sepsisbot/features"
	"github.com/medicus-health/medicus/sepsisbot/model"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
	"github.com/medicus-health/medicus/sepsisbot/score"
)

// ModelScorer assesses patients with the learned model and the rule
// scores. Each assessment replays the patient's hours into a fresh
// features.Patient, so late results are used in the hour they were
// measured.
type ModelScorer struct {
	Model *model.Model
}

// PhysioNetValues returns an hour's measurements as physionet.Values (NaN where
// nothing was measured).
func (h Hour) PhysioNetValues() physionet.Values {
	v := physionet.Missing()
	for name, s := range h.Values {
		if i, ok := physionet.Lookup(name); ok {
			v[i] = s.Value
		}
	}
	return v
}

// Assess implements RiskScorer: the model's risk for the latest hour, its
// top contributions with the exact times they were measured, and qSOFA,
// SIRS, NEWS2 and SOFA on the carried-forward values.
func (s ModelScorer) Assess(p Patient) (alerting.Assessment, error) {
	if s.Model == nil {
		return alerting.Assessment{}, errors.New("ingest: ModelScorer without a model")
	}
	if len(p.Hours) == 0 {
		return alerting.Assessment{}, ErrNoData
	}
	fp := features.NewPatient()
	for i, h := range p.Hours {
		v := h.PhysioNetValues()
		if i == 0 {
			v[physionet.Age], v[physionet.Gender] = p.Age, p.Gender
		}
		fp.Add(features.Hour{Time: h.Start, Values: v})
	}
	risk, contribs := s.Model.Risk(fp)
	cur := fp.Current()
	a := alerting.Assessment{Patient: p.Pseudonym, Bed: p.Bed, Risk: risk, DataTime: p.DataTime}
	for _, r := range []score.Result{score.QSOFA(cur), score.SIRS(cur), score.NEWS2(cur), score.SOFA(cur)} {
		a.Scores = append(a.Scores, alerting.RuleScore{Name: r.Name, Points: r.Points, Max: r.Max})
	}
	for _, c := range contribs {
		ac := alerting.Contribution{Variable: c.Variable, Value: c.Value, Measured: c.Measured, Time: c.Time, Weight: c.Weight}
		if i, ok := physionet.Lookup(c.Variable); ok {
			ac.Unit = physionet.Variables[i].Unit
			if c.Measured {
				ac.Time = sampleTime(p, c.Variable, c.Time)
			}
		}
		if !c.Measured {
			ac.Time = time.Time{}
		}
		a.Contributions = append(a.Contributions, ac)
	}
	return a, nil
}

// sampleTime returns when a variable's value in the hour starting at
// hourStart was measured, or hourStart if the sample is not found.
func sampleTime(p Patient, variable string, hourStart time.Time) time.Time {
	for _, h := range p.Hours {
		if h.Start.Equal(hourStart) {
			if s, ok := h.Values[variable]; ok {
				return s.Time
			}
		}
	}
	return hourStart
}
