// Package fhirobs maps FHIR R4 Observations to the sepsis bot's canonical
// variables.
//
// The canonical variables are the PhysioNet/CinC Challenge 2019 column names
// (HR, O2Sat, Temp, …, Platelets) in the challenge's units: beats/min, %, °C,
// mm[Hg], mg/dL for most chemistry, mmol/L for lactate, a fraction for FiO2,
// 10*3/uL for WBC and platelets. An Observation is recognised by its LOINC
// code; its UCUM unit is checked and converted to the canonical unit, and the
// converted value must lie in a plausible physiological range, which catches
// most unit mix-ups. Anything that cannot be used — an unknown code, an
// unsupported unit, an implausible value, a cancelled or erroneous
// Observation, a missing subject or time — is returned as an Issue wrapping
// one of the sentinel errors (ErrUnknownCode, ErrUnit, …) and ignored; the
// mapping never fails as a whole because of one bad value.
//
// Decoding is strict and bounded: DecodeObservation and DecodeBundle refuse
// input larger than their limits, JSON that is not an R4 Observation or
// Bundle (unknown elements, wrong types, trailing data), and Observations with
// modifier extensions, which a receiver that does not understand them must
// not process (FHIR R4 §2.4.1.1 "Modifier Extensions").
//
// Patients are identified only by a pseudonym: the id of the Observation's
// subject reference ("Patient/bed-07") or the value of its subject
// identifier. The mapping to real identities stays in the hospital's systems.
package fhirobs
