package hl7

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

// Result is one OBX segment of an ORU^R01 message with the context it
// belongs to: the patient of the preceding PID, the location of the
// preceding PV1, and the observation time of the preceding OBR.
type Result struct {
	// Seq is the occurrence of this OBX among the message's OBX segments,
	// from 1.
	Seq int
	// Patient is PID-3.1 of the first identifier: the pseudonym the
	// hospital system uses for the bot.
	Patient string
	// Bed is PV1-3 (point of care, room, bed) joined with "/".
	Bed string
	// ValueType is OBX-2 (NM, SN, ST, …).
	ValueType string
	// Code, Text and System are OBX-3.1–3; AltCode and AltSystem are
	// OBX-3.4 and 3.6.
	Code, Text, System, AltCode, AltSystem string
	// Value is OBX-5 (first repetition), unescaped; for a structured
	// numeric (SN) it is the first number, OBX-5.2.
	Value string
	// Comparator is OBX-5.1 of a structured numeric ("<", ">=", …).
	Comparator string
	// Range is true for a structured numeric with a separator (a range or
	// ratio such as "^10^-^20"), which has no single value.
	Range bool
	// Units is the UCUM unit of OBX-6: component 1, or component 4 when
	// only the alternate triplet is UCUM (monitors send IEEE 11073 MDC
	// units first).
	Units string
	// Status is OBX-11 (F final, C corrected, P preliminary, …).
	Status string
	// Time is OBX-14, or else OBR-7, or zero if neither is usable.
	Time time.Time
	// TimeErr explains a zero Time.
	TimeErr error
}

// ORU is an ORU^R01 unsolicited observation message.
type ORU struct {
	// ControlID is MSH-10, echoed in the acknowledgement.
	ControlID string
	Results   []Result
}

// ParseORU reads the results of an ORU^R01 message. loc is the time zone of
// timestamps without an offset (HL7 v2 senders often omit it); UTC if nil.
// It returns an error wrapping ErrUnsupported for other message types.
func ParseORU(m *Message, loc *time.Location) (*ORU, error) {
	if loc == nil {
		loc = time.UTC
	}
	code, event := m.Type()
	if code != "ORU" || event != "R01" {
		return nil, fmt.Errorf("%w: message type %s^%s, want ORU^R01", ErrUnsupported, code, event)
	}
	oru := &ORU{ControlID: m.MSH().Get(10, 1, 1, 1)}
	var patient, bed string
	var obrTime time.Time
	var obrErr error
	for i := range m.Segments {
		s := &m.Segments[i]
		switch s.Name {
		case "PID":
			patient, bed = s.Get(3, 1, 1, 1), ""
			obrTime, obrErr = time.Time{}, nil
		case "PV1":
			var parts []string
			for c := 1; c <= 3; c++ {
				if v := s.Get(3, 1, c, 1); v != "" {
					parts = append(parts, v)
				}
			}
			bed = strings.Join(parts, "/")
		case "OBR":
			obrTime, obrErr = ParseTime(s.Get(7, 1, 1, 1), loc)
		case "OBX":
			r := Result{
				Seq: len(oru.Results) + 1, Patient: patient, Bed: bed,
				ValueType: s.Get(2, 1, 1, 1),
				Code:      s.Get(3, 1, 1, 1), Text: s.Get(3, 1, 2, 1), System: s.Get(3, 1, 3, 1),
				AltCode: s.Get(3, 1, 4, 1), AltSystem: s.Get(3, 1, 6, 1),
				Value: s.Component(5, 1), Units: s.Get(6, 1, 1, 1), Status: s.Get(11, 1, 1, 1),
			}
			if s.Get(6, 1, 3, 1) != "UCUM" && s.Get(6, 1, 6, 1) == "UCUM" {
				r.Units = s.Get(6, 1, 4, 1)
			}
			if r.ValueType == "SN" {
				r.Comparator, r.Value, r.Range = s.Get(5, 1, 1, 1), s.Get(5, 1, 2, 1), s.Get(5, 1, 3, 1) != ""
			}
			if raw := s.Get(14, 1, 1, 1); raw != "" {
				r.Time, r.TimeErr = ParseTime(raw, loc)
			} else {
				r.Time, r.TimeErr = obrTime, obrErr
				if obrTime.IsZero() && obrErr == nil {
					r.TimeErr = fmt.Errorf("%w: neither OBX-14 nor OBR-7", fhirobs.ErrTime)
				}
			}
			oru.Results = append(oru.Results, r)
		}
	}
	return oru, nil
}

// ParseTime parses an HL7 v2 DTM timestamp with at least minute precision,
// YYYYMMDDHHMM[SS[.S[S[S[S]]]]][+/-ZZZZ] (HL7 v2.5 §2.A.22). Timestamps
// without an offset are in loc. Errors wrap fhirobs.ErrTime.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("%w: empty timestamp", fhirobs.ErrTime)
	}
	main, zone := s, ""
	if i := strings.IndexAny(s, "+-"); i >= 0 {
		main, zone = s[:i], s[i:]
	}
	frac := ""
	if i := strings.IndexByte(main, '.'); i >= 0 {
		main, frac = main[:i], main[i+1:]
	}
	if len(main) != 12 && len(main) != 14 || len(frac) > 4 || (frac != "" && len(main) != 14) {
		return time.Time{}, fmt.Errorf("%w: %q is not YYYYMMDDHHMM[SS[.S]]", fhirobs.ErrTime, s)
	}
	for _, c := range main + frac {
		if c < '0' || c > '9' {
			return time.Time{}, fmt.Errorf("%w: %q has non-digits", fhirobs.ErrTime, s)
		}
	}
	layout := "200601021504"
	if len(main) == 14 {
		layout += "05"
	}
	value := main
	if frac != "" {
		layout += "." + strings.Repeat("0", len(frac))
		value += "." + frac
	}
	l := loc
	if zone != "" {
		if len(zone) != 5 {
			return time.Time{}, fmt.Errorf("%w: offset %q is not +/-ZZZZ", fhirobs.ErrTime, zone)
		}
		layout += "-0700"
		value += zone
	}
	t, err := time.ParseInLocation(layout, value, l)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: %q: %v", fhirobs.ErrTime, s, err)
	}
	return t, nil
}

// usableStatus lists the OBX-11 result statuses (HL7 table 0085) whose
// values are used: final, corrected, preliminary.
var usableStatus = map[string]bool{"F": true, "C": true, "P": true}

// loincCode returns the LOINC code of OBX-3: the primary triplet if its
// coding system is LN, else the alternate one.
func (r *Result) loincCode() string {
	if r.System == "LN" {
		return r.Code
	}
	if r.AltSystem == "LN" {
		return r.AltCode
	}
	return ""
}

// Map maps the numeric results to measurements; every result that cannot
// be used becomes an Issue with Ref "OBX^<Seq>". now bounds times in the
// future as fhirobs.Map does.
func (o *ORU) Map(now time.Time) fhirobs.Report {
	rep, _ := o.mapResults(now)
	return rep
}

// mapResults is Map that also returns the Seq of each issue's OBX.
func (o *ORU) mapResults(now time.Time) (fhirobs.Report, []int) {
	var rep fhirobs.Report
	var seqs []int
	for i := range o.Results {
		r := &o.Results[i]
		code := r.loincCode()
		issue := func(err error) {
			rep.Issues = append(rep.Issues, fhirobs.Issue{Ref: fmt.Sprintf("OBX^%d", r.Seq), Code: code, Err: err})
			seqs = append(seqs, r.Seq)
		}
		if code == "" {
			issue(fmt.Errorf("%w: OBX-3 %q (%s) has no LOINC code", fhirobs.ErrUnknownCode, r.Code, r.System))
			continue
		}
		if !usableStatus[r.Status] {
			issue(fmt.Errorf("%w: OBX-11 %q", fhirobs.ErrStatus, r.Status))
			continue
		}
		if !fhirobs.ValidPseudonym(r.Patient) {
			issue(fmt.Errorf("%w: PID-3 is not a valid pseudonym", fhirobs.ErrSubject))
			continue
		}
		if r.TimeErr != nil {
			issue(r.TimeErr)
			continue
		}
		if r.Time.After(now.Add(fhirobs.MaxFutureSkew)) {
			issue(fmt.Errorf("%w: %s is in the future", fhirobs.ErrTime, r.Time.Format(time.RFC3339)))
			continue
		}
		v, err := numericValue(r)
		if err != nil {
			issue(err)
			continue
		}
		name, canonical, err := fhirobs.ConvertQuantity(code, r.Units, v)
		if err != nil {
			issue(err)
			continue
		}
		rep.Measurements = append(rep.Measurements, fhirobs.Measurement{
			Patient: r.Patient, Variable: name, Value: canonical, Unit: fhirobs.CanonicalUnit(name),
			Time: r.Time, Code: code, Bed: r.Bed,
		})
	}
	return rep, seqs
}

// numericValue reads OBX-5 of an NM result, or of an SN result that is a
// single number. As with FHIR Quantities, a comparator ("<0.01") is
// accepted and its bound used as the value.
func numericValue(r *Result) (float64, error) {
	switch {
	case r.ValueType == "SN" && r.Range:
		return 0, fmt.Errorf("%w: OBX-5 is a range or ratio", fhirobs.ErrNoValue)
	case r.ValueType != "NM" && r.ValueType != "SN":
		return 0, fmt.Errorf("%w: OBX-2 %q is not numeric", fhirobs.ErrNoValue, r.ValueType)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(r.Value), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: OBX-5 %q is not a number", fhirobs.ErrNoValue, r.Value)
	}
	return v, nil
}
