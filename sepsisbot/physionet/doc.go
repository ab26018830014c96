// Package physionet reads ICU stays in the format of the PhysioNet/Computing
// in Cardiology Challenge 2019 (pipe-separated .psv files, one row per hour,
// 40 variables and SepsisLabel, "NaN" for missing) and defines the canonical
// variable names and units used across sepsisbot.
//
// The parser is strict and bounded: the header must be exactly the
// challenge's, every row must have 41 fields, and inputs larger than
// [Limits] are refused with [ErrTooLarge] or [ErrTooManyRows].
//
// The table [Variables] documents each variable's canonical name, unit and
// UCUM code; ingesters that map FHIR or HL7 observations onto the model's
// inputs convert into these units.
package physionet
