package fhirobs

import (
	"fmt"
	"math"
	"strings"
)

// UCUMSystem is the code system URI of UCUM units in FHIR Quantities.
const UCUMSystem = "http://unitsofmeasure.org"

// linear converts a value to the canonical unit as value*factor + offset.
type linear struct{ factor, offset float64 }

func (c linear) apply(v float64) float64 { return v*c.factor + c.offset }

var same = linear{factor: 1}

// Conversion factors from the molar masses (g/mol) of the analytes.
const (
	mmHgPerKPa         = 7.50062 // 1 kPa = 7.50062 mm[Hg]
	creatinineUmolPer  = 88.42   // µmol/L per mg/dL
	bilirubinUmolPer   = 17.1    // µmol/L per mg/dL
	glucoseMgPerMmol   = 18.016  // mg/dL per mmol/L (180.16 g/mol)
	lactateMgPerMmol   = 9.008   // mg/dL per mmol/L (90.08 g/mol)
	calciumMgPerMmol   = 4.008   // mg/dL per mmol/L (40.08 g/mol)
	magnesiumMgPer     = 2.431   // mg/dL per mmol/L (24.31 g/mol)
	phosphateMgPer     = 3.097   // mg/dL per mmol/L (phosphorus 30.97 g/mol)
	bunMgPerMmol       = 2.801   // mg/dL urea nitrogen per mmol/L urea (2 × 14.007 g/mol)
	bunPerUreaMass     = 0.4665  // mg/dL urea nitrogen per mg/dL urea (28.014/60.06)
	haemoglobinMgPer   = 1.6114  // g/dL per mmol/L (monomer, 16.114 g/mol ×1000/10000)
	enzymeUPerMicroKat = 60.0    // U/L per µkat/L
)

// unitAliases maps lower-cased unit spellings seen in FHIR and HL7 v2
// feeds to one key. Units are matched case-insensitively because HL7 v2
// senders often upper-case them ("MG/DL"); none of the units accepted here
// differ only in case.
var unitAliases = map[string]string{
	"/min": "/min", "1/min": "/min", "{beats}/min": "/min", "{beat}/min": "/min", "beats/min": "/min",
	"bpm": "/min", "{breaths}/min": "/min", "{breath}/min": "/min", "breaths/min": "/min",
	"%":   "%",
	"cel": "cel", "°c": "cel", "degc": "cel",
	"[degf]": "[degf]", "°f": "[degf]", "degf": "[degf]",
	"mm[hg]": "mm[hg]", "mmhg": "mm[hg]", "mm hg": "mm[hg]",
	"kpa":    "kpa",
	"mmol/l": "mmol/l", "meq/l": "meq/l", "umol/l": "umol/l", "µmol/l": "umol/l", "μmol/l": "umol/l",
	"u/l": "u/l", "[iu]/l": "u/l", "iu/l": "u/l", "ukat/l": "ukat/l", "µkat/l": "ukat/l", "μkat/l": "ukat/l",
	"mg/dl": "mg/dl", "g/dl": "g/dl", "g/l": "g/l",
	"10*3/ul": "10*3/ul", "10*9/l": "10*3/ul", "/nl": "10*3/ul", "10^3/ul": "10*3/ul", "10^9/l": "10*3/ul",
	"10*3/mm3": "10*3/ul", "k/ul": "10*3/ul", "x10e3/ul": "10*3/ul", "giga/l": "10*3/ul", "/ul": "/ul",
	"1": "1", "{ratio}": "1", "l/l": "1", "": "1",
	"[ph]": "[ph]", "ph": "[ph]",
	"ng/ml": "ng/ml", "ug/l": "ng/ml", "µg/l": "ng/ml", "ng/l": "ng/l", "pg/ml": "ng/l",
	"s": "s", "sec": "s",
	"a": "a", "yr": "a", "mo": "mo",
}

// normalizeUnit returns the key of unitAliases for a unit as sent, or
// ("", false) if the spelling is unknown.
func normalizeUnit(u string) (string, bool) {
	k, ok := unitAliases[strings.ToLower(strings.TrimSpace(u))]
	return k, ok
}

// variable describes one canonical variable: its UCUM unit, the units it is
// accepted in with their conversions, and its plausible range in the
// canonical unit.
type variable struct {
	unit     string
	min, max float64
	units    map[string]linear
}

var (
	pressure      = map[string]linear{"mm[hg]": same, "kpa": {factor: mmHgPerKPa}}
	perMinute     = map[string]linear{"/min": same}
	percent       = map[string]linear{"%": same}
	monovalent    = map[string]linear{"mmol/l": same, "meq/l": same}
	enzyme        = map[string]linear{"u/l": same, "ukat/l": {factor: enzymeUPerMicroKat}}
	bilirubin     = map[string]linear{"mg/dl": same, "umol/l": {factor: 1 / bilirubinUmolPer}}
	cellCount     = map[string]linear{"10*3/ul": same, "/ul": {factor: 0.001}}
	dimensionless = map[string]linear{"1": same}
)

// variables is keyed by the PhysioNet 2019 column name. The ranges are wide
// physiological limits meant to catch unit errors, not to judge values
// clinically. They include every value of PhysioNet set A except a few
// artefacts (FiO2 of 0 or above 1, a potassium of 27.5 mmol/L).
var variables = map[string]variable{
	"HR":               {"/min", 1, 300, perMinute},
	"O2Sat":            {"%", 10, 100, percent},
	"Temp":             {"Cel", 20, 45, map[string]linear{"cel": same, "[degf]": {factor: 5.0 / 9, offset: -32 * 5.0 / 9}}},
	"SBP":              {"mm[Hg]", 10, 320, pressure},
	"MAP":              {"mm[Hg]", 10, 320, pressure},
	"DBP":              {"mm[Hg]", 5, 320, pressure},
	"Resp":             {"/min", 1, 120, perMinute},
	"EtCO2":            {"mm[Hg]", 0, 150, pressure},
	"BaseExcess":       {"mmol/L", -50, 100, monovalent},
	"HCO3":             {"mmol/L", 0, 70, monovalent},
	"FiO2":             {"1", 0.1, 1, map[string]linear{"1": same, "%": {factor: 0.01}}},
	"pH":               {"[pH]", 6.5, 8, map[string]linear{"[ph]": same, "1": same}},
	"PaCO2":            {"mm[Hg]", 5, 200, pressure},
	"SaO2":             {"%", 10, 100, percent},
	"AST":              {"U/L", 0, 20000, enzyme},
	"BUN":              {"mg/dL", 0, 300, map[string]linear{"mg/dl": same, "mmol/l": {factor: bunMgPerMmol}}},
	"Alkalinephos":     {"U/L", 0, 5000, enzyme},
	"Calcium":          {"mg/dL", 0.5, 30, map[string]linear{"mg/dl": same, "mmol/l": {factor: calciumMgPerMmol}, "meq/l": {factor: calciumMgPerMmol / 2}}},
	"Chloride":         {"mmol/L", 20, 180, monovalent},
	"Creatinine":       {"mg/dL", 0.05, 50, map[string]linear{"mg/dl": same, "umol/l": {factor: 1 / creatinineUmolPer}}},
	"Bilirubin_direct": {"mg/dL", 0, 60, bilirubin},
	"Glucose":          {"mg/dL", 5, 2000, map[string]linear{"mg/dl": same, "mmol/l": {factor: glucoseMgPerMmol}}},
	"Lactate":          {"mmol/L", 0, 40, map[string]linear{"mmol/l": same, "mg/dl": {factor: 1 / lactateMgPerMmol}}},
	"Magnesium":        {"mg/dL", 0.1, 15, map[string]linear{"mg/dl": same, "mmol/l": {factor: magnesiumMgPer}, "meq/l": {factor: magnesiumMgPer / 2}}},
	"Phosphate":        {"mg/dL", 0.1, 30, map[string]linear{"mg/dl": same, "mmol/l": {factor: phosphateMgPer}}},
	"Potassium":        {"mmol/L", 0.5, 15, monovalent},
	"Bilirubin_total":  {"mg/dL", 0, 80, bilirubin},
	"TroponinI":        {"ng/mL", 0, 500, map[string]linear{"ng/ml": same, "ng/l": {factor: 0.001}}},
	"Hct":              {"%", 5, 80, map[string]linear{"%": same, "1": {factor: 100}}},
	"Hgb":              {"g/dL", 1, 35, map[string]linear{"g/dl": same, "g/l": {factor: 0.1}, "mmol/l": {factor: haemoglobinMgPer}}},
	"PTT":              {"s", 5, 250, map[string]linear{"s": same}},
	"WBC":              {"10*3/uL", 0, 500, cellCount},
	"Fibrinogen":       {"mg/dL", 10, 2000, map[string]linear{"mg/dl": same, "g/l": {factor: 100}}},
	"Platelets":        {"10*3/uL", 0, 3000, cellCount},
	"Age":              {"a", 0, 120, map[string]linear{"a": same, "mo": {factor: 1.0 / 12}}},
	"Gender":           {"1", 0, 1, dimensionless},
}

// CanonicalUnit returns the UCUM unit of a canonical variable, or "" if name
// is not one.
func CanonicalUnit(name string) string { return variables[name].unit }

// convert checks unit and value for the variable and returns the value in
// the canonical unit. units, if not nil, replaces the variable's accepted
// units (for codes measuring a related analyte, such as urea for BUN).
func convert(name string, units map[string]linear, unit string, value float64) (float64, error) {
	v, ok := variables[name]
	if !ok {
		return 0, fmt.Errorf("%w: no variable %q", ErrUnknownCode, name)
	}
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return 0, fmt.Errorf("%w: %s is not a finite number", ErrImplausible, name)
	}
	if units == nil {
		units = v.units
	}
	key, ok := normalizeUnit(unit)
	if !ok {
		return 0, fmt.Errorf("%w: %q for %s", ErrUnit, unit, name)
	}
	c, ok := units[key]
	if !ok {
		return 0, fmt.Errorf("%w: %q for %s", ErrUnit, unit, name)
	}
	out := c.apply(value)
	if out < v.min || out > v.max {
		return 0, fmt.Errorf("%w: %s %g %s is outside %g–%g", ErrImplausible, name, out, v.unit, v.min, v.max)
	}
	return out, nil
}
