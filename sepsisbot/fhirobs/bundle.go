package fhirobs

import (
	"encoding/json"
	"fmt"
	"time"
)

// MapBundle decodes and maps every Observation of a Bundle (typically a
// searchset from a FHIR server). Entries that are search outcomes or
// includes, or that are not Observations, are skipped; entries that do not
// decode become Issues wrapping ErrMalformed.
func MapBundle(b *Bundle, now time.Time) Report {
	var r Report
	for i, e := range b.Entry {
		if e.Search != nil && e.Search.Mode != "" && e.Search.Mode != "match" {
			continue
		}
		if len(e.Resource) == 0 {
			continue
		}
		ref := fmt.Sprintf("entry[%d]", i)
		rt, err := ResourceType(e.Resource)
		if err != nil {
			r.Issues = append(r.Issues, Issue{Ref: ref, Err: err})
			continue
		}
		if rt != "Observation" {
			continue
		}
		o, err := DecodeObservation(e.Resource)
		if err != nil {
			r.Issues = append(r.Issues, Issue{Ref: ref, Err: err})
			continue
		}
		r.Add(Map(o, now))
	}
	return r
}

const categorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"

// vitalSigns are the variables Encode files under the vital-signs category.
var vitalSigns = map[string]bool{"HR": true, "O2Sat": true, "Temp": true, "SBP": true, "MAP": true, "DBP": true, "Resp": true, "EtCO2": true}

// Encode builds a final Observation of a canonical variable (see
// Variables, plus "Gender" with 1 for male and 0 for female) for a patient
// pseudonym, with the variable's standard LOINC code and canonical UCUM
// unit, so that Map gives back the same measurement. id may be empty.
func Encode(id string, m Measurement) (*Observation, error) {
	if !ValidPseudonym(m.Patient) {
		return nil, fmt.Errorf("encode %s: %w: invalid pseudonym", m.Variable, ErrSubject)
	}
	o := &Observation{
		ResourceType:      "Observation",
		ID:                id,
		Status:            "final",
		Subject:           &Reference{Reference: "Patient/" + m.Patient},
		EffectiveDateTime: m.Time.UTC().Format(time.RFC3339),
	}
	if m.Variable == "Gender" {
		code := "female"
		if m.Value >= 0.5 {
			code = "male"
		}
		o.Code = CodeableConcept{Coding: []Coding{{System: LOINCSystem, Code: "46098-0", Display: "Sex"}}}
		o.ValueCodeableConcept = &CodeableConcept{Coding: []Coding{{System: "http://hl7.org/fhir/administrative-gender", Code: code}}}
		return o, nil
	}
	c, ok := encodeCodes[m.Variable]
	if !ok {
		return nil, fmt.Errorf("encode %s: %w", m.Variable, ErrUnknownCode)
	}
	cat := "laboratory"
	if vitalSigns[m.Variable] {
		cat = "vital-signs"
	}
	if m.Variable == "Age" {
		cat = "social-history"
	}
	unit := variables[m.Variable].unit
	v := m.Value
	o.Category = []CodeableConcept{{Coding: []Coding{{System: categorySystem, Code: cat}}}}
	o.Code = CodeableConcept{Coding: []Coding{{System: LOINCSystem, Code: c[0], Display: c[1]}}}
	o.ValueQuantity = &Quantity{Value: &v, Unit: unit, System: UCUMSystem, Code: unit}
	return o, nil
}

// NewTransaction returns a transaction Bundle with one entry per
// Observation, each created by "POST Observation".
func NewTransaction(obs []*Observation) (*Bundle, error) {
	b := &Bundle{ResourceType: "Bundle", Type: "transaction"}
	for _, o := range obs {
		raw, err := json.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("new transaction: %w", err)
		}
		b.Entry = append(b.Entry, BundleEntry{Resource: raw, Request: &BundleRequest{Method: "POST", URL: "Observation"}})
	}
	return b, nil
}
