package content

// FHIR R4 samples used by the tests and as fuzz seeds.
const (
	observationLactate = `{
  "resourceType": "Observation",
  "id": "lactate-1",
  "status": "final",
  "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
  "code": {"coding": [{"system": "http://loinc.org", "code": "2524-7", "display": "Lactate [Moles/volume] in Serum or Plasma"}], "text": "Lactate"},
  "subject": {"reference": "Patient/pseudo-4711"},
  "effectiveDateTime": "2026-11-28T22:14:00+01:00",
  "issued": "2026-11-28T22:31:05.120+01:00",
  "valueQuantity": {"value": 4.20, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
  "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H"}]}],
  "referenceRange": [{"low": {"value": 0.5, "unit": "mmol/L"}, "high": {"value": 2.2, "unit": "mmol/L"}}]
}`

	diagnosticReportCBC = `{
  "resourceType": "DiagnosticReport",
  "status": "final",
  "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2", "display": "CBC panel"}]},
  "subject": {"reference": "urn:uuid:0b7e4c52-8d0a-4c1e-9a39-2f1f0c6a1e11"},
  "effectiveDateTime": "2026-11-28",
  "issued": "2026-11-28T08:00:00Z",
  "result": [{"reference": "Observation/hb-1"}, {"reference": "https://fhir.uk-freiburg.example/r4/Observation/wbc-1/_history/2"}],
  "conclusion": "Leukocytosis."
}`

	consentDraft = `{
  "resourceType": "Consent",
  "status": "proposed",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
  "patient": {"reference": "Patient/pseudo-4711", "display": "Patient 4711"},
  "dateTime": "2026-11-29T09:00:00+01:00",
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
}`

	consentActive = `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/pseudo-4711"},"dateTime":"2026-11-29T09:12:00+01:00","policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]}}`

	questionnaireConsent = `{
  "resourceType": "Questionnaire",
  "status": "active",
  "title": "Consent to share imaging with the tumour board",
  "item": [
    {"linkId": "1", "text": "I agree that my CT images are shown to the tumour board.", "type": "boolean", "required": true},
    {"linkId": "2", "text": "Why not?", "type": "choice", "enableWhen": [{"question": "1", "operator": "=", "answerBoolean": false}],
     "answerOption": [{"valueString": "privacy"}, {"valueCoding": {"system": "http://example.org/reasons", "code": "other"}}]}
  ]
}`

	questionnaireResponseYes = `{
  "resourceType": "QuestionnaireResponse",
  "status": "completed",
  "authored": "2026-11-29T09:12:00+01:00",
  "item": [{"linkId": "1", "answer": [{"valueBoolean": true}]}]
}`
)
