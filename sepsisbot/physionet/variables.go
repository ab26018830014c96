package physionet

// Index is the position of a variable in a [Values] vector and in the columns
// of a PhysioNet 2019 file. The constants below are the canonical variable
// names used across sepsisbot.
type Index int

// The 40 variables of the PhysioNet 2019 challenge, in file column order.
const (
	HR Index = iota
	O2Sat
	Temp
	SBP
	MAP
	DBP
	Resp
	EtCO2
	BaseExcess
	HCO3
	FiO2
	PH
	PaCO2
	SaO2
	AST
	BUN
	Alkalinephos
	Calcium
	Chloride
	Creatinine
	BilirubinDirect
	Glucose
	Lactate
	Magnesium
	Phosphate
	Potassium
	BilirubinTotal
	TroponinI
	Hct
	Hgb
	PTT
	WBC
	Fibrinogen
	Platelets
	Age
	Gender
	Unit1
	Unit2
	HospAdmTime
	ICULOS
)

// NumVariables is the number of variables (columns other than SepsisLabel).
const NumVariables = 40

// LabelColumn is the header of the 41st column, the per-hour sepsis label.
const LabelColumn = "SepsisLabel"

// Kind groups variables by how they are measured.
type Kind int

const (
	// Vital is a bedside vital sign, charted about hourly.
	Vital Kind = iota
	// Lab is a laboratory value, measured every few hours to days.
	Lab
	// Demographic is a per-stay constant or a clock (Age, Gender, Unit1,
	// Unit2, HospAdmTime, ICULOS).
	Demographic
)

// String returns "vital", "lab" or "demographic".
func (k Kind) String() string {
	switch k {
	case Vital:
		return "vital"
	case Lab:
		return "lab"
	case Demographic:
		return "demographic"
	}
	return "unknown"
}

// Variable describes one column: its canonical name (the PSV header), the
// unit in which sepsisbot stores its values, the UCUM code of that unit (for
// mapping FHIR Observations onto it) and a description.
type Variable struct {
	Index       Index
	Name        string
	Kind        Kind
	Unit        string // unit as written in the challenge documentation, corrected where the data differ
	UCUM        string // UCUM code of Unit; "1" for dimensionless numbers and codes
	Description string
}

// Variables is the documented table of the 40 canonical variables, indexed by
// [Index]. Values are stored in exactly these units; an ingester converting
// from another unit must convert into Unit before storing. Notes on quirks of
// the challenge data:
//
//   - FiO2 is a fraction (0.21–1.0), not a percentage, although the
//     challenge documentation says %.
//   - Lactate is in mmol/L (values 0.2–31), although the documentation says
//     mg/dL.
//   - Magnesium is in mg/dL (values 0.7–9.7), although the documentation says
//     mmol/dL.
//   - Calcium mixes ionized (≈1.1 mmol/L would be 4.5 mg/dL) and total calcium
//     (8.5–10.5 mg/dL), all in mg/dL.
//   - EtCO2 is never measured in training set A.
//   - Age is 100 for patients aged 90 or more; Gender is 0 for female, 1 for
//     male; Unit1 and Unit2 flag the medical and surgical ICU.
//   - There is no Glasgow Coma Scale, PaO2, urine output or vasopressor
//     column; see package score for what each rule score can use.
var Variables = [NumVariables]Variable{
	{HR, "HR", Vital, "beats/min", "/min", "Heart rate"},
	{O2Sat, "O2Sat", Vital, "%", "%", "Pulse oximetry (SpO2)"},
	{Temp, "Temp", Vital, "°C", "Cel", "Temperature"},
	{SBP, "SBP", Vital, "mm Hg", "mm[Hg]", "Systolic blood pressure"},
	{MAP, "MAP", Vital, "mm Hg", "mm[Hg]", "Mean arterial pressure"},
	{DBP, "DBP", Vital, "mm Hg", "mm[Hg]", "Diastolic blood pressure"},
	{Resp, "Resp", Vital, "breaths/min", "/min", "Respiratory rate"},
	{EtCO2, "EtCO2", Vital, "mm Hg", "mm[Hg]", "End-tidal carbon dioxide"},
	{BaseExcess, "BaseExcess", Lab, "mmol/L", "mmol/L", "Base excess"},
	{HCO3, "HCO3", Lab, "mmol/L", "mmol/L", "Bicarbonate"},
	{FiO2, "FiO2", Lab, "fraction", "1", "Fraction of inspired oxygen (0.21 = room air)"},
	{PH, "pH", Lab, "pH", "[pH]", "Arterial pH"},
	{PaCO2, "PaCO2", Lab, "mm Hg", "mm[Hg]", "Arterial partial pressure of carbon dioxide"},
	{SaO2, "SaO2", Lab, "%", "%", "Arterial oxygen saturation"},
	{AST, "AST", Lab, "IU/L", "U/L", "Aspartate transaminase"},
	{BUN, "BUN", Lab, "mg/dL", "mg/dL", "Blood urea nitrogen"},
	{Alkalinephos, "Alkalinephos", Lab, "IU/L", "U/L", "Alkaline phosphatase"},
	{Calcium, "Calcium", Lab, "mg/dL", "mg/dL", "Calcium (ionized and total mixed)"},
	{Chloride, "Chloride", Lab, "mmol/L", "mmol/L", "Chloride"},
	{Creatinine, "Creatinine", Lab, "mg/dL", "mg/dL", "Creatinine"},
	{BilirubinDirect, "Bilirubin_direct", Lab, "mg/dL", "mg/dL", "Direct bilirubin"},
	{Glucose, "Glucose", Lab, "mg/dL", "mg/dL", "Serum glucose"},
	{Lactate, "Lactate", Lab, "mmol/L", "mmol/L", "Lactic acid"},
	{Magnesium, "Magnesium", Lab, "mg/dL", "mg/dL", "Magnesium"},
	{Phosphate, "Phosphate", Lab, "mg/dL", "mg/dL", "Phosphate"},
	{Potassium, "Potassium", Lab, "mmol/L", "mmol/L", "Potassium"},
	{BilirubinTotal, "Bilirubin_total", Lab, "mg/dL", "mg/dL", "Total bilirubin"},
	{TroponinI, "TroponinI", Lab, "ng/mL", "ng/mL", "Troponin I"},
	{Hct, "Hct", Lab, "%", "%", "Hematocrit"},
	{Hgb, "Hgb", Lab, "g/dL", "g/dL", "Hemoglobin"},
	{PTT, "PTT", Lab, "s", "s", "Partial thromboplastin time"},
	{WBC, "WBC", Lab, "10^3/µL", "10*3/uL", "Leukocyte count"},
	{Fibrinogen, "Fibrinogen", Lab, "mg/dL", "mg/dL", "Fibrinogen"},
	{Platelets, "Platelets", Lab, "10^3/µL", "10*3/uL", "Platelet count"},
	{Age, "Age", Demographic, "years", "a", "Age (100 for 90 or older)"},
	{Gender, "Gender", Demographic, "code", "1", "Gender (0 female, 1 male)"},
	{Unit1, "Unit1", Demographic, "flag", "1", "Administrative ICU identifier: medical ICU"},
	{Unit2, "Unit2", Demographic, "flag", "1", "Administrative ICU identifier: surgical ICU"},
	{HospAdmTime, "HospAdmTime", Demographic, "h", "h", "Hours between hospital admission and ICU admission"},
	{ICULOS, "ICULOS", Demographic, "h", "h", "ICU length of stay in hours (1 at the first row)"},
}

// Name returns the canonical name of the variable at i, or "" if i is out of
// range.
func (i Index) Name() string {
	if i < 0 || int(i) >= NumVariables {
		return ""
	}
	return Variables[i].Name
}

// String returns the canonical name of the variable.
func (i Index) String() string { return i.Name() }

// Lookup returns the index of the variable with the given canonical name.
func Lookup(name string) (Index, bool) {
	for _, v := range Variables {
		if v.Name == name {
			return v.Index, true
		}
	}
	return 0, false
}

// Values holds one hour of measurements, indexed by [Index]. NaN means not
// measured in that hour.
type Values [NumVariables]float64

// Missing returns a Values with every variable missing (NaN).
func Missing() Values {
	var v Values
	for i := range v {
		v[i] = nan
	}
	return v
}
