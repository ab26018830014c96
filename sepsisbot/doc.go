// Package sepsisbot is the root of medicus's sepsis early-warning bot: an
// ordinary (end-to-end encrypted) room member that reads ICU vitals and
// labs, computes rule scores and a learned risk, and posts explained alerts
// into ICU rooms. Its subpackages each do one job:
//
//   - physionet: the PhysioNet 2019 file format and the canonical variable
//     names and units used everywhere in sepsisbot.
//   - score: qSOFA, SIRS, NEWS2 and the computable SOFA components.
//   - features: a streaming per-patient feature vector, hour by hour.
//   - model: gradient-boosted trees trained in Go; Default() is the
//     committed model; Risk explains each score by the measurements behind
//     it.
//   - evaluate: the challenge's normalized utility, AUROC and AUPRC, and
//     alert-burden figures; evaluate/benchmark runs the model and rule
//     baselines over stays and cross-validates.
//   - ingest, hl7, alerting: FHIR and HL7 v2 ingestion and the alert policy.
package sepsisbot
