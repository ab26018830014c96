package fhirobs

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func TestConvertQuantityConvertsUnitsToPhysioNetUnits(t *testing.T) {
	tests := []struct {
		name  string
		loinc string
		unit  string
		value float64
		want  string
		out   float64
	}{
		{"fahrenheit to celsius", "8310-5", "[degF]", 98.6, "Temp", 37},
		{"celsius unchanged", "8310-5", "Cel", 38.2, "Temp", 38.2},
		{"creatinine µmol/L to mg/dL", "14682-9", "umol/L", 88.42, "Creatinine", 1},
		{"creatinine mg/dL code in µmol/L", "2160-0", "µmol/L", 176.84, "Creatinine", 2},
		{"haemoglobin g/L to g/dL", "718-7", "g/L", 120, "Hgb", 12},
		{"haemoglobin mmol/L to g/dL", "59260-0", "mmol/L", 8.0, "Hgb", 12.8912},
		{"FiO2 percent to fraction", "3150-0", "%", 40, "FiO2", 0.4},
		{"FiO2 fraction", "3150-0", "1", 0.4, "FiO2", 0.4},
		{"WBC 10*9/L equals 10*3/uL", "6690-2", "10*9/L", 12.5, "WBC", 12.5},
		{"WBC per µL", "6690-2", "/uL", 12500, "WBC", 12.5},
		{"platelets /nL", "777-3", "/nL", 150, "Platelets", 150},
		{"lactate mmol/L", "2524-7", "mmol/L", 2.1, "Lactate", 2.1},
		{"lactate mg/dL to mmol/L", "32693-4", "mg/dL", 18.016, "Lactate", 2},
		{"glucose mmol/L to mg/dL", "15074-8", "mmol/L", 5.5, "Glucose", 99.088},
		{"urea mg/dL to BUN", "3091-6", "mg/dL", 60, "BUN", 27.99},
		{"urea mmol/L to BUN", "22664-7", "mmol/L", 10, "BUN", 28.01},
		{"bilirubin µmol/L to mg/dL", "14631-6", "umol/L", 34.2, "Bilirubin_total", 2},
		{"systolic kPa to mmHg", "8480-6", "kPa", 16, "SBP", 120.00992},
		{"heart rate HL7 spelling", "8867-4", "BPM", 88, "HR", 88},
		{"ionized calcium", "1994-3", "mmol/L", 1.2, "Calcium", 4.8096},
		{"troponin ng/L to ng/mL", "89579-7", "ng/L", 45, "TroponinI", 0.045},
		{"fibrinogen g/L to mg/dL", "3255-7", "g/L", 3.5, "Fibrinogen", 350},
		{"AST µkat/L to U/L", "1920-8", "ukat/L", 0.5, "AST", 30},
		{"haematocrit fraction to percent", "4544-3", "L/L", 0.42, "Hct", 42},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, out, err := ConvertQuantity(tt.loinc, tt.unit, tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if v != tt.want || math.Abs(out-tt.out) > 1e-3 {
				t.Fatalf("got %s %v, want %s %v", v, out, tt.want, tt.out)
			}
		})
	}
}

func TestConvertQuantityRefusesWrongUnitsAndImplausibleValues(t *testing.T) {
	tests := []struct {
		name  string
		loinc string
		unit  string
		value float64
		want  error
	}{
		{"unknown code", "12345-6", "mg/dL", 1, ErrUnknownCode},
		{"heart rate in mg/dL", "8867-4", "mg/dL", 80, ErrUnit},
		{"unknown unit", "2160-0", "furlongs", 1, ErrUnit},
		{"creatinine µmol/L sent as mg/dL", "2160-0", "mg/dL", 88, ErrImplausible},
		{"FiO2 fraction labelled percent", "3150-0", "%", 0.4, ErrImplausible},
		{"FiO2 percent without unit", "3150-0", "", 40, ErrImplausible},
		{"temperature in Fahrenheit labelled Celsius", "8310-5", "Cel", 101.3, ErrImplausible},
		{"NaN", "8867-4", "/min", math.NaN(), ErrImplausible},
		{"infinite", "8867-4", "/min", math.Inf(1), ErrImplausible},
		{"mEq/L not accepted for lactate", "2524-7", "meq/L", 2, ErrUnit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ConvertQuantity(tt.loinc, tt.unit, tt.value)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// heartRate is the FHIR R4 vital-signs heart rate example, with the
// subject replaced by a pseudonym.
const heartRate = `{
  "resourceType": "Observation",
  "id": "heart-rate",
  "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">HR 44</div>"},
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}], "text": "Vital Signs"}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
  "subject": {"reference": "Patient/icu3-bed07"},
  "effectiveDateTime": "2026-11-29T09:30:10+01:00",
  "valueQuantity": {"value": 44, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"}
}`

const bloodPressure = `{
  "resourceType": "Observation",
  "id": "blood-pressure",
  "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:187e0c12-8dd2-67e2-99b2-bf273c878281"}],
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel with all children optional"}]},
  "subject": {"reference": "https://fhir.icu.example/r4/Patient/icu3-bed07/_history/2"},
  "effectiveDateTime": "2026-11-29T08:15:00Z",
  "performer": [{"reference": "Practitioner/example"}],
  "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "L"}]}],
  "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "368209003", "display": "Right arm"}]},
  "component": [
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]},
     "valueQuantity": {"value": 87, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4", "display": "Diastolic blood pressure"}]},
     "valueQuantity": {"value": 48, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
    {"code": {"coding": [{"system": "http://loinc.org", "code": "8478-0"}]},
     "dataAbsentReason": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-performed"}]}}
  ]
}`

const spo2 = `{
  "resourceType": "Observation",
  "status": "final",
  "code": {"coding": [
    {"system": "http://loinc.org", "code": "2708-6", "display": "Oxygen saturation in Arterial blood"},
    {"system": "http://loinc.org", "code": "59408-5", "display": "Oxygen saturation in Arterial blood by Pulse oximetry"}]},
  "subject": {"identifier": {"system": "urn:oid:1.2.276.0.76.4.17", "value": "ps-4711"}},
  "effectiveInstant": "2026-11-29T10:00:00.123Z",
  "valueQuantity": {"value": 93, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
}`

const lactateLab = `{
  "resourceType": "Observation",
  "id": "lac-1",
  "status": "corrected",
  "code": {"coding": [{"system": "http://acme.lab/codes", "code": "LAC"}, {"system": "http://loinc.org", "code": "32693-4"}]},
  "subject": {"reference": "Patient/icu3-bed07"},
  "effectivePeriod": {"start": "2026-11-29T07:00:00Z", "end": "2026-11-29T07:05:00Z"},
  "issued": "2026-11-29T07:40:00Z",
  "valueQuantity": {"value": 36.0, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
  "referenceRange": [{"low": {"value": 4.5, "unit": "mg/dL"}, "high": {"value": 19.8, "unit": "mg/dL"}}]
}`

func TestMapReadsRealisticObservations(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []Measurement
	}{
		{"heart rate", heartRate, []Measurement{{Patient: "icu3-bed07", Variable: "HR", Value: 44, Unit: "/min", Time: time.Date(2026, 11, 29, 8, 30, 10, 0, time.UTC), Code: "8867-4"}}},
		{"blood pressure panel", bloodPressure, []Measurement{
			{Patient: "icu3-bed07", Variable: "SBP", Value: 87, Unit: "mm[Hg]", Time: time.Date(2026, 11, 29, 8, 15, 0, 0, time.UTC), Code: "8480-6"},
			{Patient: "icu3-bed07", Variable: "DBP", Value: 48, Unit: "mm[Hg]", Time: time.Date(2026, 11, 29, 8, 15, 0, 0, time.UTC), Code: "8462-4"},
		}},
		{"pulse oximetry preferred over SaO2", spo2, []Measurement{{Patient: "ps-4711", Variable: "O2Sat", Value: 93, Unit: "%", Time: time.Date(2026, 11, 29, 10, 0, 0, 123e6, time.UTC), Code: "59408-5"}}},
		{"lab with local and LOINC coding", lactateLab, []Measurement{{Patient: "icu3-bed07", Variable: "Lactate", Value: 36.0 / 9.008, Unit: "mmol/L", Time: time.Date(2026, 11, 29, 7, 5, 0, 0, time.UTC), Code: "32693-4"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := DecodeObservation([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			r := Map(o, testNow)
			if len(r.Measurements) != len(tt.want) {
				t.Fatalf("got %d measurements %+v (issues %v), want %d", len(r.Measurements), r.Measurements, r.Issues, len(tt.want))
			}
			for i, m := range r.Measurements {
				w := tt.want[i]
				if m.Patient != w.Patient || m.Variable != w.Variable || math.Abs(m.Value-w.Value) > 1e-9 || m.Unit != w.Unit || !m.Time.Equal(w.Time) || m.Code != w.Code {
					t.Errorf("measurement %d = %+v, want %+v", i, m, w)
				}
			}
		})
	}
}

func TestMapAcceptsTheOIDsOfLOINCAndUCUM(t *testing.T) {
	src := strings.Replace(strings.Replace(heartRate, `"http://loinc.org"`, `"urn:oid:2.16.840.1.113883.6.1"`, 1),
		`"system": "http://unitsofmeasure.org"`, `"system": "urn:oid:2.16.840.1.113883.6.8"`, 1)
	o, err := DecodeObservation([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if r := Map(o, testNow); len(r.Measurements) != 1 || r.Measurements[0].Variable != "HR" {
		t.Fatalf("report %+v", r)
	}
}

func TestMapReportsTheBloodPressureComponentWithoutValue(t *testing.T) {
	o, err := DecodeObservation([]byte(bloodPressure))
	if err != nil {
		t.Fatal(err)
	}
	r := Map(o, testNow)
	if len(r.Issues) != 1 || !errors.Is(r.Issues[0], ErrNoValue) || r.Issues[0].Code != "8478-0" {
		t.Fatalf("issues = %v, want one ErrNoValue for 8478-0", r.Issues)
	}
}

func TestMapReportsAndIgnoresUnusableObservations(t *testing.T) {
	tests := []struct {
		name    string
		replace [2]string
		want    error
	}{
		{"unknown code", [2]string{`"8867-4"`, `"8302-2"`}, ErrUnknownCode},
		{"code of another system", [2]string{`"http://loinc.org"`, `"http://snomed.info/sct"`}, ErrUnknownCode},
		{"cancelled", [2]string{`"status": "final"`, `"status": "cancelled"`}, ErrStatus},
		{"entered in error", [2]string{`"status": "final"`, `"status": "entered-in-error"`}, ErrStatus},
		{"wrong unit", [2]string{`"code": "/min"`, `"code": "mg/dL"`}, ErrUnit},
		{"non-UCUM unit system", [2]string{`"system": "http://unitsofmeasure.org"`, `"system": "http://acme.example/units"`}, ErrUnit},
		{"implausible value", [2]string{`"value": 44`, `"value": 4400`}, ErrImplausible},
		{"no value", [2]string{`"value": 44, `, ``}, ErrNoValue},
		{"group subject", [2]string{`"Patient/icu3-bed07"`, `"Group/icu3"`}, ErrSubject},
		{"pseudonym with spaces", [2]string{`"Patient/icu3-bed07"`, `"Patient/Max Mustermann"`}, ErrSubject},
		{"date without time", [2]string{`"2026-11-29T09:30:10+01:00"`, `"2026-11-29"`}, ErrTime},
		{"time without zone", [2]string{`"2026-11-29T09:30:10+01:00"`, `"2026-11-29T09:30:10"`}, ErrTime},
		{"time in the future", [2]string{`"2026-11-29T09:30:10+01:00"`, `"2026-11-29T14:00:00+01:00"`}, ErrTime},
		{"modifier extension", [2]string{`"status": "final",`, `"status": "final", "modifierExtension": [{"url": "http://acme.example/not-really", "valueBoolean": true}],`}, ErrModifierExtension},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(heartRate, tt.replace[0], tt.replace[1], 1)
			if src == heartRate {
				t.Fatalf("replacement %q not found", tt.replace[0])
			}
			o, err := DecodeObservation([]byte(src))
			if err != nil {
				t.Fatal(err)
			}
			r := Map(o, testNow)
			if len(r.Measurements) != 0 || len(r.Issues) != 1 || !errors.Is(r.Issues[0], tt.want) {
				t.Fatalf("report = %+v, want only an issue wrapping %v", r, tt.want)
			}
			if r.Issues[0].Ref != "Observation/heart-rate" {
				t.Errorf("issue ref = %q", r.Issues[0].Ref)
			}
		})
	}
}

func TestDecodeObservationIsStrict(t *testing.T) {
	tests := []struct {
		name string
		json string
		want error
	}{
		{"unknown element", strings.Replace(heartRate, `"status": "final"`, `"stauts": "x", "status": "final"`, 1), ErrMalformed},
		{"unknown element in quantity", strings.Replace(heartRate, `"value": 44`, `"value": 44, "precision": 2`, 1), ErrMalformed},
		{"value as string", strings.Replace(heartRate, `"value": 44`, `"value": "44"`, 1), ErrMalformed},
		{"trailing data", heartRate + `{}`, ErrMalformed},
		{"another resource", `{"resourceType": "Patient", "id": "x"}`, ErrMalformed},
		{"not JSON", `<Observation/>`, ErrMalformed},
		{"too large", `{"resourceType": "Observation", "id": "` + strings.Repeat("a", MaxObservationBytes) + `"}`, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeObservation([]byte(tt.json))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodeRoundTripsEveryVariable(t *testing.T) {
	at := time.Date(2026, 11, 29, 6, 0, 0, 0, time.UTC)
	values := map[string]float64{"FiO2": 0.5, "pH": 7.31, "Temp": 38.4, "BaseExcess": -4, "Age": 67.5, "Magnesium": 2.1, "Potassium": 4.2, "Chloride": 101, "Calcium": 8.4, "Creatinine": 1.3, "Phosphate": 3.1, "TroponinI": 0.04}
	for _, name := range append(Variables(), "Gender") {
		v, ok := values[name]
		if !ok {
			v = 20
		}
		if name == "Gender" {
			v = 1
		}
		o, err := Encode("", Measurement{Patient: "stay-p000009", Variable: name, Value: v, Time: at})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := Map(o, testNow)
		if len(r.Issues) != 0 || len(r.Measurements) != 1 {
			t.Fatalf("%s: report %+v", name, r)
		}
		m := r.Measurements[0]
		if m.Variable != name || m.Value != v || !m.Time.Equal(at) || m.Patient != "stay-p000009" || m.Unit != CanonicalUnit(name) {
			t.Errorf("%s: got %+v", name, m)
		}
	}
}

func TestMapBundleSkipsNonObservationsAndReportsBadEntries(t *testing.T) {
	src := `{"resourceType": "Bundle", "type": "searchset", "total": 3,
	  "link": [{"relation": "self", "url": "https://fhir.example/Observation?_lastUpdated=gt2026"}, {"relation": "next", "url": "https://fhir.example/Observation?page=2"}],
	  "entry": [
	    {"fullUrl": "https://fhir.example/Observation/heart-rate", "resource": ` + heartRate + `, "search": {"mode": "match"}},
	    {"resource": {"resourceType": "Patient", "id": "icu3-bed07"}, "search": {"mode": "include"}},
	    {"resource": {"resourceType": "OperationOutcome", "issue": []}, "search": {"mode": "outcome"}},
	    {"resource": {"resourceType": "Observation", "bogus": 1}},
	    {"resource": ` + lactateLab + `}
	  ]}`
	b, err := DecodeBundle([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if b.Next() != "https://fhir.example/Observation?page=2" {
		t.Errorf("next = %q", b.Next())
	}
	r := MapBundle(b, testNow)
	if len(r.Measurements) != 2 || r.Measurements[0].Variable != "HR" || r.Measurements[1].Variable != "Lactate" {
		t.Fatalf("measurements = %+v", r.Measurements)
	}
	if len(r.Issues) != 1 || !errors.Is(r.Issues[0], ErrMalformed) || r.Issues[0].Ref != "entry[3]" {
		t.Fatalf("issues = %v", r.Issues)
	}
}
