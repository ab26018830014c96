package fhirobs

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Errors reported in Issues and returned by the decoders. Callers
// distinguish them with errors.Is.
var (
	// ErrMalformed means the input is not a well-formed R4 resource.
	ErrMalformed = errors.New("fhirobs: malformed resource")
	// ErrTooLarge means the input exceeds a size or count limit.
	ErrTooLarge = errors.New("fhirobs: input too large")
	// ErrUnknownCode means no known LOINC code identifies the measurement.
	ErrUnknownCode = errors.New("fhirobs: unknown code")
	// ErrUnit means the unit is missing, unknown or not one the variable
	// can be converted from.
	ErrUnit = errors.New("fhirobs: unsupported unit")
	// ErrImplausible means the converted value lies outside the variable's
	// plausible range, or is not a finite number.
	ErrImplausible = errors.New("fhirobs: implausible value")
	// ErrNoValue means the Observation carries no usable value (no
	// valueQuantity, or a dataAbsentReason).
	ErrNoValue = errors.New("fhirobs: no value")
	// ErrStatus means the Observation's status is not final, amended,
	// corrected or preliminary.
	ErrStatus = errors.New("fhirobs: unusable status")
	// ErrSubject means the subject is missing or not a usable pseudonym.
	ErrSubject = errors.New("fhirobs: no usable subject")
	// ErrTime means the Observation has no usable effective time, or one
	// too far in the future.
	ErrTime = errors.New("fhirobs: no usable time")
	// ErrModifierExtension means the resource carries a modifier extension,
	// which a receiver that does not understand it must not process.
	ErrModifierExtension = errors.New("fhirobs: modifier extension not understood")
)

// Measurement is one value of a canonical variable for one patient, in the
// variable's canonical unit.
type Measurement struct {
	// Patient is the pseudonym of the patient.
	Patient string `json:"patient"`
	// Variable is the PhysioNet 2019 column name, e.g. "HR" or "Lactate".
	Variable string `json:"variable"`
	// Value is in the canonical unit Unit.
	Value float64 `json:"value"`
	// Unit is the variable's canonical UCUM unit.
	Unit string `json:"unit"`
	// Time is when the value was measured (effective time).
	Time time.Time `json:"time"`
	// Code is the LOINC code the value was identified by.
	Code string `json:"code"`
	// Bed is the patient's location as the source reported it (HL7 v2
	// PV1-3), or "" if it did not.
	Bed string `json:"bed,omitempty"`
}

// Issue reports one value that could not be used and was ignored.
type Issue struct {
	// Ref locates the value: "Observation/<id>", a bundle entry, or an
	// HL7 segment.
	Ref string
	// Code is the LOINC code involved, if any.
	Code string
	// Err wraps one of the package's sentinel errors.
	Err error
}

// Error implements error.
func (i Issue) Error() string {
	if i.Code != "" {
		return fmt.Sprintf("%s (%s): %v", i.Ref, i.Code, i.Err)
	}
	return fmt.Sprintf("%s: %v", i.Ref, i.Err)
}

// Unwrap returns the underlying error.
func (i Issue) Unwrap() error { return i.Err }

// Report is the result of mapping: the measurements that were accepted and
// an Issue for every value that was ignored.
type Report struct {
	Measurements []Measurement
	Issues       []Issue
}

// Add appends another report's contents to r.
func (r *Report) Add(o Report) {
	r.Measurements = append(r.Measurements, o.Measurements...)
	r.Issues = append(r.Issues, o.Issues...)
}

// MaxFutureSkew is how far in the future an effective time may lie (clock
// differences between devices) before the value is refused.
const MaxFutureSkew = 10 * time.Minute

// pseudonymPattern is what the bot accepts as a patient pseudonym: the
// FHIR id alphabet, bounded.
var pseudonymPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// ValidPseudonym reports whether s is acceptable as a patient pseudonym:
// 1–64 characters of A–Z, a–z, 0–9, '-' and '.', the FHIR id alphabet.
func ValidPseudonym(s string) bool { return pseudonymPattern.MatchString(s) }

// Pseudonym returns the patient pseudonym of an Observation's subject: the
// id of a "Patient/<id>" reference (relative or absolute), or else the value
// of the subject's identifier. It returns an error wrapping ErrSubject if
// neither yields a valid pseudonym.
func Pseudonym(subject *Reference) (string, error) {
	if subject == nil {
		return "", fmt.Errorf("%w: no subject", ErrSubject)
	}
	if ref := subject.Reference; ref != "" {
		parts := strings.Split(strings.TrimSuffix(ref, "/"), "/")
		// RFC 3986 paths: ".../Patient/<id>" or ".../Patient/<id>/_history/<v>".
		if n := len(parts); n >= 4 && parts[n-2] == "_history" {
			parts = parts[:n-2]
		}
		if n := len(parts); n >= 2 && parts[n-2] == "Patient" && ValidPseudonym(parts[n-1]) {
			return parts[n-1], nil
		}
		return "", fmt.Errorf("%w: reference is not Patient/<pseudonym>", ErrSubject)
	}
	if subject.Identifier != nil && ValidPseudonym(subject.Identifier.Value) {
		return subject.Identifier.Value, nil
	}
	return "", fmt.Errorf("%w: no Patient reference or identifier", ErrSubject)
}

// ParseDateTime parses a FHIR dateTime or instant that has a time of day:
// "YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)". Dates without a time are refused
// because they cannot be placed in an hour; the error wraps ErrTime.
func ParseDateTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q is not a dateTime with time and zone", ErrTime, s)
	}
	return t, nil
}

// effectiveTime picks the time an Observation's value belongs to:
// effectiveDateTime, effectiveInstant, the end (or start) of
// effectivePeriod, or else issued.
func effectiveTime(o *Observation) (time.Time, error) {
	switch {
	case o.EffectiveDateTime != "":
		return ParseDateTime(o.EffectiveDateTime)
	case o.EffectiveInstant != "":
		return ParseDateTime(o.EffectiveInstant)
	case o.EffectivePeriod != nil && o.EffectivePeriod.End != "":
		return ParseDateTime(o.EffectivePeriod.End)
	case o.EffectivePeriod != nil && o.EffectivePeriod.Start != "":
		return ParseDateTime(o.EffectivePeriod.Start)
	case o.Issued != "":
		return ParseDateTime(o.Issued)
	}
	return time.Time{}, fmt.Errorf("%w: no effective time", ErrTime)
}

// usableStatus lists the Observation statuses whose values are used
// (R4 ObservationStatus value set).
var usableStatus = map[string]bool{"final": true, "amended": true, "corrected": true, "preliminary": true}

// The OIDs of LOINC and UCUM, which documents converted from CDA use as
// system URIs.
const (
	loincOID = "urn:oid:2.16.840.1.113883.6.1"
	ucumOID  = "urn:oid:2.16.840.1.113883.6.8"
)

func isLOINC(system string) bool { return system == LOINCSystem || system == loincOID }

// knownCode returns the best-ranked known LOINC coding of a concept.
func knownCode(c CodeableConcept) (string, loincCode, bool) {
	var best string
	var bestCode loincCode
	found := false
	for _, cd := range c.Coding {
		if !isLOINC(cd.System) {
			continue
		}
		if lc, ok := loincCodes[cd.Code]; ok && (!found || lc.rank < bestCode.rank) {
			best, bestCode, found = cd.Code, lc, true
		}
	}
	return best, bestCode, found
}

// hasCode reports whether a concept has the given LOINC code.
func hasCode(c CodeableConcept, code string) bool {
	for _, cd := range c.Coding {
		if isLOINC(cd.System) && cd.Code == code {
			return true
		}
	}
	return false
}

// firstLOINC returns the first LOINC code of a concept, for reports.
func firstLOINC(c CodeableConcept) string {
	for _, cd := range c.Coding {
		if isLOINC(cd.System) {
			return cd.Code
		}
	}
	return ""
}

// ConvertQuantity converts a value of the measurement identified by a LOINC
// code, in the given UCUM unit, to its canonical variable and unit. It
// returns errors wrapping ErrUnknownCode, ErrUnit or ErrImplausible. HL7 v2
// and other feeds use it for values that do not come as Observations.
func ConvertQuantity(loinc, unit string, value float64) (variable string, canonical float64, err error) {
	lc, ok := loincCodes[loinc]
	if !ok {
		return "", 0, fmt.Errorf("%w: LOINC %s", ErrUnknownCode, loinc)
	}
	v, err := convert(lc.variable, lc.units, unit, value)
	if err != nil {
		return "", 0, err
	}
	return lc.variable, v, nil
}

// sexValue maps administrative-gender codes and the LOINC answers of 46098-0
// to the PhysioNet Gender column (1 male, 0 female).
var sexValue = map[string]float64{"male": 1, "female": 0, "LA2-8": 1, "LA3-6": 0}

// Map maps one Observation to measurements. now bounds effective times in
// the future (MaxFutureSkew). Every value that cannot be used becomes an
// Issue; Map never fails as a whole.
func Map(o *Observation, now time.Time) Report {
	ref := "Observation"
	if o.ID != "" {
		ref = "Observation/" + o.ID
	}
	fail := func(code string, err error) Report {
		return Report{Issues: []Issue{{Ref: ref, Code: code, Err: err}}}
	}
	code := firstLOINC(o.Code)
	if len(o.ModifierExtension) > 0 {
		return fail(code, ErrModifierExtension)
	}
	if !usableStatus[o.Status] {
		return fail(code, fmt.Errorf("%w: %q", ErrStatus, o.Status))
	}
	patient, err := Pseudonym(o.Subject)
	if err != nil {
		return fail(code, err)
	}
	at, err := effectiveTime(o)
	if err != nil {
		return fail(code, err)
	}
	if at.After(now.Add(MaxFutureSkew)) {
		return fail(code, fmt.Errorf("%w: %s is in the future", ErrTime, at.Format(time.RFC3339)))
	}
	var r Report
	add := func(code string, lc loincCode, v *Value) {
		m, err := value(lc, v)
		if err != nil {
			r.Issues = append(r.Issues, Issue{Ref: ref, Code: code, Err: err})
			return
		}
		m.Patient, m.Time, m.Code = patient, at, code
		r.Measurements = append(r.Measurements, m)
	}
	if len(o.Component) > 0 {
		for i := range o.Component {
			c := &o.Component[i]
			ccode, lc, ok := knownCode(c.Code)
			if !ok {
				r.Issues = append(r.Issues, Issue{Ref: fmt.Sprintf("%s component[%d]", ref, i), Code: firstLOINC(c.Code), Err: ErrUnknownCode})
				continue
			}
			if len(c.ModifierExtension) > 0 {
				r.Issues = append(r.Issues, Issue{Ref: ref, Code: ccode, Err: ErrModifierExtension})
				continue
			}
			add(ccode, lc, &c.Value)
		}
		// A panel's own code (85354-9) carries no value; other codes may.
		if hasCode(o.Code, loincBloodPressurePanel) || (o.ValueQuantity == nil && o.ValueCodeableConcept == nil) {
			return r
		}
	}
	ocode, lc, ok := knownCode(o.Code)
	if !ok {
		r.Issues = append(r.Issues, Issue{Ref: ref, Code: code, Err: ErrUnknownCode})
		return r
	}
	add(ocode, lc, &o.Value)
	return r
}

// value converts one Observation (or component) value.
func value(lc loincCode, val *Value) (Measurement, error) {
	m := Measurement{Variable: lc.variable, Unit: variables[lc.variable].unit}
	q, cc := val.ValueQuantity, val.ValueCodeableConcept
	if val.DataAbsentReason != nil {
		return m, fmt.Errorf("%w: data absent", ErrNoValue)
	}
	if lc.variable == "Gender" {
		if cc != nil {
			for _, cd := range cc.Coding {
				if v, ok := sexValue[cd.Code]; ok {
					m.Value = v
					return m, nil
				}
			}
		}
		return m, fmt.Errorf("%w: no male/female code", ErrNoValue)
	}
	if q == nil || q.Value == nil {
		return m, fmt.Errorf("%w: no valueQuantity", ErrNoValue)
	}
	unit := q.Code
	if q.System != "" && q.System != UCUMSystem && q.System != ucumOID {
		return m, fmt.Errorf("%w: unit system %q is not UCUM", ErrUnit, q.System)
	}
	if unit == "" {
		unit = q.Unit
	}
	v, err := convert(lc.variable, lc.units, unit, *q.Value)
	if err != nil {
		return m, err
	}
	m.Value = v
	return m, nil
}
