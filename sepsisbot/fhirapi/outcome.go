package fhirapi

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

// OperationOutcome is a FHIR R4 OperationOutcome, the body of every error
// answer and of answers that report ignored values.
type OperationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []OutcomeIssue `json:"issue"`
}

// OutcomeIssue is one OperationOutcome.issue. Severity is fatal, error,
// warning or information; Code is from the R4 IssueType value set.
type OutcomeIssue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

func outcome(issues ...OutcomeIssue) *OperationOutcome {
	return &OperationOutcome{ResourceType: "OperationOutcome", Issue: issues}
}

// issuesOutcome turns the mapping issues of a request into an
// OperationOutcome: unknown codes are information (the bot does not use
// them), other ignored values are warnings. It returns nil for no issues.
func issuesOutcome(issues []fhirobs.Issue, expression string) *OperationOutcome {
	if len(issues) == 0 {
		return nil
	}
	oo := outcome()
	for _, is := range issues {
		sev, code := "warning", "value"
		switch {
		case errors.Is(is, fhirobs.ErrUnknownCode):
			sev, code = "information", "not-supported"
		case errors.Is(is, fhirobs.ErrUnit), errors.Is(is, fhirobs.ErrImplausible):
			code = "value"
		case errors.Is(is, fhirobs.ErrModifierExtension):
			code = "extension"
		case errors.Is(is, fhirobs.ErrSubject), errors.Is(is, fhirobs.ErrTime), errors.Is(is, fhirobs.ErrNoValue):
			code = "required"
		case errors.Is(is, fhirobs.ErrStatus):
			code = "business-rule"
		}
		oi := OutcomeIssue{Severity: sev, Code: code, Diagnostics: "ignored: " + is.Error()}
		if expression != "" {
			oi.Expression = []string{expression}
		}
		oo.Issue = append(oo.Issue, oi)
	}
	return oo
}

// writeJSON writes a FHIR JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with an OperationOutcome of one error issue.
func writeError(w http.ResponseWriter, status int, code, diagnostics string) {
	writeJSON(w, status, outcome(OutcomeIssue{Severity: "error", Code: code, Diagnostics: diagnostics}))
}
