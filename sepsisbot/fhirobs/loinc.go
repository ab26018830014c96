package fhirobs

// LOINCSystem is the code system URI of LOINC in FHIR Codings.
const LOINCSystem = "http://loinc.org"

// loincCode maps one LOINC code to a canonical variable. rank orders codes
// when an Observation carries several known LOINC codings: the lowest rank
// wins, so the pulse-oximetry code 59408-5 (O2Sat) beats the arterial
// saturation code 2708-6 (SaO2) that the FHIR vital-signs profile requires
// beside it. units, if set, replaces the variable's accepted units because
// the code measures a related analyte (urea rather than urea nitrogen).
type loincCode struct {
	variable string
	rank     int
	units    map[string]linear
}

// loincCodes is the mapping table. The first code of each variable is the
// one Encode uses.
var loincCodes = map[string]loincCode{
	"8867-4":  {variable: "HR"},                                                               // Heart rate
	"59408-5": {variable: "O2Sat"},                                                            // Oxygen saturation in Arterial blood by Pulse oximetry
	"8310-5":  {variable: "Temp"},                                                             // Body temperature
	"8331-1":  {variable: "Temp"},                                                             // Oral temperature
	"8328-7":  {variable: "Temp"},                                                             // Axillary temperature
	"8480-6":  {variable: "SBP"},                                                              // Systolic blood pressure
	"76215-3": {variable: "SBP"},                                                              // Invasive Systolic blood pressure
	"8478-0":  {variable: "MAP"},                                                              // Mean blood pressure
	"76214-6": {variable: "MAP"},                                                              // Invasive Mean blood pressure
	"8462-4":  {variable: "DBP"},                                                              // Diastolic blood pressure
	"76213-8": {variable: "DBP"},                                                              // Invasive Diastolic blood pressure
	"9279-1":  {variable: "Resp"},                                                             // Respiratory rate
	"19889-5": {variable: "EtCO2"},                                                            // Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration
	"1925-7":  {variable: "BaseExcess"},                                                       // Base excess in Arterial blood by calculation
	"11555-0": {variable: "BaseExcess"},                                                       // Base excess in Blood by calculation
	"1960-4":  {variable: "HCO3"},                                                             // Bicarbonate [Moles/volume] in Arterial blood
	"1959-6":  {variable: "HCO3"},                                                             // Bicarbonate [Moles/volume] in Blood
	"1963-8":  {variable: "HCO3"},                                                             // Bicarbonate [Moles/volume] in Serum or Plasma
	"3150-0":  {variable: "FiO2"},                                                             // Inhaled oxygen concentration
	"19994-3": {variable: "FiO2"},                                                             // Oxygen/Gas total [Volume Fraction] in Inhaled gas
	"2744-1":  {variable: "pH"},                                                               // pH of Arterial blood
	"11558-4": {variable: "pH"},                                                               // pH of Blood
	"2019-8":  {variable: "PaCO2"},                                                            // Carbon dioxide [Partial pressure] in Arterial blood
	"2708-6":  {variable: "SaO2", rank: 1},                                                    // Oxygen saturation in Arterial blood
	"1920-8":  {variable: "AST"},                                                              // Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma
	"3094-0":  {variable: "BUN"},                                                              // Urea nitrogen [Mass/volume] in Serum or Plasma
	"6299-2":  {variable: "BUN"},                                                              // Urea nitrogen [Mass/volume] in Blood
	"3091-6":  {variable: "BUN", units: map[string]linear{"mg/dl": {factor: bunPerUreaMass}}}, // Urea [Mass/volume] in Serum or Plasma
	"22664-7": {variable: "BUN", units: map[string]linear{"mmol/l": {factor: bunMgPerMmol}}},  // Urea [Moles/volume] in Serum or Plasma
	"6768-6":  {variable: "Alkalinephos"},                                                     // Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma
	"17861-6": {variable: "Calcium"},                                                          // Calcium [Mass/volume] in Serum or Plasma
	"2000-8":  {variable: "Calcium"},                                                          // Calcium [Moles/volume] in Serum or Plasma
	"1994-3":  {variable: "Calcium"},                                                          // Calcium.ionized [Moles/volume] in Blood (PhysioNet mixes ionized and total)
	"2075-0":  {variable: "Chloride"},                                                         // Chloride [Moles/volume] in Serum or Plasma
	"2069-3":  {variable: "Chloride"},                                                         // Chloride [Moles/volume] in Blood
	"2160-0":  {variable: "Creatinine"},                                                       // Creatinine [Mass/volume] in Serum or Plasma
	"14682-9": {variable: "Creatinine"},                                                       // Creatinine [Moles/volume] in Serum or Plasma
	"1968-7":  {variable: "Bilirubin_direct"},                                                 // Bilirubin.direct [Mass/volume] in Serum or Plasma
	"14629-0": {variable: "Bilirubin_direct"},                                                 // Bilirubin.direct [Moles/volume] in Serum or Plasma
	"2345-7":  {variable: "Glucose"},                                                          // Glucose [Mass/volume] in Serum or Plasma
	"2339-0":  {variable: "Glucose"},                                                          // Glucose [Mass/volume] in Blood
	"15074-8": {variable: "Glucose"},                                                          // Glucose [Moles/volume] in Blood
	"14749-6": {variable: "Glucose"},                                                          // Glucose [Moles/volume] in Serum or Plasma
	"2524-7":  {variable: "Lactate"},                                                          // Lactate [Moles/volume] in Serum or Plasma
	"32693-4": {variable: "Lactate"},                                                          // Lactate [Moles/volume] in Blood
	"2518-9":  {variable: "Lactate"},                                                          // Lactate [Moles/volume] in Arterial blood
	"19123-9": {variable: "Magnesium"},                                                        // Magnesium [Mass/volume] in Serum or Plasma
	"2601-3":  {variable: "Magnesium"},                                                        // Magnesium [Moles/volume] in Serum or Plasma
	"2777-1":  {variable: "Phosphate"},                                                        // Phosphate [Mass/volume] in Serum or Plasma
	"14879-1": {variable: "Phosphate"},                                                        // Phosphate [Moles/volume] in Serum or Plasma
	"2823-3":  {variable: "Potassium"},                                                        // Potassium [Moles/volume] in Serum or Plasma
	"6298-4":  {variable: "Potassium"},                                                        // Potassium [Moles/volume] in Blood
	"1975-2":  {variable: "Bilirubin_total"},                                                  // Bilirubin.total [Mass/volume] in Serum or Plasma
	"14631-6": {variable: "Bilirubin_total"},                                                  // Bilirubin.total [Moles/volume] in Serum or Plasma
	"10839-9": {variable: "TroponinI"},                                                        // Troponin I.cardiac [Mass/volume] in Serum or Plasma
	"42757-5": {variable: "TroponinI"},                                                        // Troponin I.cardiac [Mass/volume] in Blood
	"89579-7": {variable: "TroponinI"},                                                        // Troponin I.cardiac [Mass/volume] in Serum or Plasma by High sensitivity method
	"4544-3":  {variable: "Hct"},                                                              // Hematocrit [Volume Fraction] of Blood by Automated count
	"20570-8": {variable: "Hct"},                                                              // Hematocrit [Volume Fraction] of Blood
	"718-7":   {variable: "Hgb"},                                                              // Hemoglobin [Mass/volume] in Blood
	"59260-0": {variable: "Hgb"},                                                              // Hemoglobin [Moles/volume] in Blood
	"3173-2":  {variable: "PTT"},                                                              // aPTT in Blood by Coagulation assay
	"14979-9": {variable: "PTT"},                                                              // aPTT in Platelet poor plasma by Coagulation assay
	"6690-2":  {variable: "WBC"},                                                              // Leukocytes [#/volume] in Blood by Automated count
	"26464-8": {variable: "WBC"},                                                              // Leukocytes [#/volume] in Blood
	"3255-7":  {variable: "Fibrinogen"},                                                       // Fibrinogen [Mass/volume] in Platelet poor plasma by Coagulation assay
	"777-3":   {variable: "Platelets"},                                                        // Platelets [#/volume] in Blood by Automated count
	"26515-7": {variable: "Platelets"},                                                        // Platelets [#/volume] in Blood
	"30525-0": {variable: "Age"},                                                              // Age
	"46098-0": {variable: "Gender"},                                                           // Sex (valueCodeableConcept)
}

// loincBloodPressurePanel is the vital-signs blood pressure panel, whose
// systolic and diastolic values come as components.
const loincBloodPressurePanel = "85354-9"

// encodeCodes lists, per variable, the LOINC code and display Encode uses.
var encodeCodes = map[string][2]string{
	"HR":               {"8867-4", "Heart rate"},
	"O2Sat":            {"59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"},
	"Temp":             {"8310-5", "Body temperature"},
	"SBP":              {"8480-6", "Systolic blood pressure"},
	"MAP":              {"8478-0", "Mean blood pressure"},
	"DBP":              {"8462-4", "Diastolic blood pressure"},
	"Resp":             {"9279-1", "Respiratory rate"},
	"EtCO2":            {"19889-5", "Carbon dioxide [Partial pressure] in Exhaled gas --at end expiration"},
	"BaseExcess":       {"1925-7", "Base excess in Arterial blood by calculation"},
	"HCO3":             {"1960-4", "Bicarbonate [Moles/volume] in Arterial blood"},
	"FiO2":             {"3150-0", "Inhaled oxygen concentration"},
	"pH":               {"2744-1", "pH of Arterial blood"},
	"PaCO2":            {"2019-8", "Carbon dioxide [Partial pressure] in Arterial blood"},
	"SaO2":             {"2708-6", "Oxygen saturation in Arterial blood"},
	"AST":              {"1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma"},
	"BUN":              {"3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma"},
	"Alkalinephos":     {"6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma"},
	"Calcium":          {"17861-6", "Calcium [Mass/volume] in Serum or Plasma"},
	"Chloride":         {"2075-0", "Chloride [Moles/volume] in Serum or Plasma"},
	"Creatinine":       {"2160-0", "Creatinine [Mass/volume] in Serum or Plasma"},
	"Bilirubin_direct": {"1968-7", "Bilirubin.direct [Mass/volume] in Serum or Plasma"},
	"Glucose":          {"2345-7", "Glucose [Mass/volume] in Serum or Plasma"},
	"Lactate":          {"2524-7", "Lactate [Moles/volume] in Serum or Plasma"},
	"Magnesium":        {"19123-9", "Magnesium [Mass/volume] in Serum or Plasma"},
	"Phosphate":        {"2777-1", "Phosphate [Mass/volume] in Serum or Plasma"},
	"Potassium":        {"2823-3", "Potassium [Moles/volume] in Serum or Plasma"},
	"Bilirubin_total":  {"1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma"},
	"TroponinI":        {"10839-9", "Troponin I.cardiac [Mass/volume] in Serum or Plasma"},
	"Hct":              {"4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count"},
	"Hgb":              {"718-7", "Hemoglobin [Mass/volume] in Blood"},
	"PTT":              {"3173-2", "aPTT in Blood by Coagulation assay"},
	"WBC":              {"6690-2", "Leukocytes [#/volume] in Blood by Automated count"},
	"Fibrinogen":       {"3255-7", "Fibrinogen [Mass/volume] in Platelet poor plasma by Coagulation assay"},
	"Platelets":        {"777-3", "Platelets [#/volume] in Blood by Automated count"},
	"Age":              {"30525-0", "Age"},
}

// Variables returns the names of the clinical variables that Encode and the
// mapping support, in PhysioNet column order, followed by Age.
func Variables() []string {
	return []string{"HR", "O2Sat", "Temp", "SBP", "MAP", "DBP", "Resp", "EtCO2", "BaseExcess", "HCO3", "FiO2",
		"pH", "PaCO2", "SaO2", "AST", "BUN", "Alkalinephos", "Calcium", "Chloride", "Creatinine", "Bilirubin_direct",
		"Glucose", "Lactate", "Magnesium", "Phosphate", "Potassium", "Bilirubin_total", "TroponinI", "Hct", "Hgb",
		"PTT", "WBC", "Fibrinogen", "Platelets", "Age"}
}

// Lookup returns the canonical variable a LOINC code maps to.
func Lookup(loinc string) (variable string, ok bool) {
	c, ok := loincCodes[loinc]
	return c.variable, ok
}
