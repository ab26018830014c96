package fhirapi

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

// HandlerConfig configures the FHIR endpoint.
type HandlerConfig struct {
	// Token is the bearer token senders must present. It must not be empty.
	Token string
	// Sink receives the mapped measurements. It must not be nil.
	Sink Sink
	// Now returns the current time (for the future-time check); time.Now
	// if nil.
	Now func() time.Time
	// Logger receives one line per request with counts, never values;
	// slog.Default() if nil.
	Logger *slog.Logger
}

// Handler is the FHIR endpoint. Mount it at the FHIR base with
// http.StripPrefix so that it sees "/Observation" and "/".
type Handler struct {
	tokenHash [32]byte
	sink      Sink
	now       func() time.Time
	log       *slog.Logger
}

// NewHandler returns the FHIR endpoint. It fails if the token is empty or
// the sink is nil.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Token == "" {
		return nil, errors.New("fhirapi: empty bearer token")
	}
	if cfg.Sink == nil {
		return nil, errors.New("fhirapi: nil sink")
	}
	h := &Handler{tokenHash: sha256.Sum256([]byte(cfg.Token)), sink: cfg.Sink, now: cfg.Now, log: cfg.Logger}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h, nil
}

// authorized compares the bearer token in constant time. Hashing first
// makes the comparison independent of the presented token's length.
func (h *Handler) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(auth) <= len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return false
	}
	got := sha256.Sum256([]byte(auth[len(prefix):]))
	return subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) == 1
}

// capabilityStatement describes the endpoint (FHIR R4 §3.1.0.13
// "capabilities"): Observation create, transaction and batch, JSON only,
// bearer tokens.
var capabilityStatement = map[string]any{
	"resourceType": "CapabilityStatement",
	"status":       "active",
	"date":         "2026-11-29",
	"kind":         "instance",
	"software":     map[string]any{"name": "medicus sepsis bot"},
	"implementation": map[string]any{
		"description": "Receives vital signs and laboratory Observations for sepsis early warning",
	},
	"fhirVersion": "4.0.1",
	"format":      []string{"application/fhir+json"},
	"rest": []any{map[string]any{
		"mode": "server",
		"security": map[string]any{
			"description": "Authorization: Bearer <token> is required for every interaction but capabilities",
		},
		"resource": []any{map[string]any{
			"type":        "Observation",
			"interaction": []any{map[string]any{"code": "create"}},
		}},
		"interaction": []any{map[string]any{"code": "transaction"}, map[string]any{"code": "batch"}},
	}},
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The capabilities interaction is open, as FHIR clients probe it
	// before authenticating; it reveals nothing about patients.
	if r.URL.Path == "/metadata" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		writeJSON(w, http.StatusOK, capabilityStatement)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="medicus-sepsisbot"`)
		writeError(w, http.StatusUnauthorized, "login", "a valid bearer token is required")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	var limit int64
	allow := http.MethodPost
	var status, id string
	switch {
	case path == "":
		limit = fhirobs.MaxBundleBytes
	case path == "/Observation" || strings.HasPrefix(path, "/Observation/"):
		limit = fhirobs.MaxObservationBytes
		url := strings.TrimPrefix(path, "/")
		if r.URL.RawQuery != "" {
			url += "?" + r.URL.RawQuery
		}
		var ok bool
		if status, id, ok = observationRequest(r.Method, url); !ok {
			allow = "POST, PUT"
			if path != "/Observation" {
				allow = http.MethodPut
			}
		}
	default:
		writeError(w, http.StatusNotFound, "not-supported", "only GET [base]/metadata, POST or PUT [base]/Observation and POST [base] are supported")
		return
	}
	if status == "" && (path != "" || r.Method != http.MethodPost) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "not-supported", "method not supported here; allowed: "+allow)
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || (mt != "application/fhir+json" && mt != "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "not-supported", "the body must be application/fhir+json")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "too-costly", fmt.Sprintf("the body exceeds %d bytes", limit))
			return
		}
		writeError(w, http.StatusBadRequest, "structure", "could not read the body")
		return
	}
	if path == "" {
		h.bundle(w, r, body)
	} else {
		h.create(w, r, body, status, id)
	}
}

// observationRequest checks the method and URL of a request that stores an
// Observation: create (POST Observation, also conditional with a query)
// or update (PUT Observation/<id>, or conditional with a query). It
// returns the HTTP status to report and the logical id to name. The
// endpoint keeps no resources, so create and update mean the same to it:
// the values are taken, and taking them twice changes nothing.
func observationRequest(method, url string) (status, id string, ok bool) {
	url = strings.TrimPrefix(url, "/")
	rest, query := url, false
	if i := strings.IndexByte(url, '?'); i >= 0 {
		rest, query = url[:i], true
	}
	switch {
	case method == http.MethodPost && rest == "Observation":
		return "201 Created", newID(), true
	case method == http.MethodPut && rest == "Observation" && query:
		return "200 OK", newID(), true
	case method == http.MethodPut && strings.HasPrefix(rest, "Observation/") && fhirobs.ValidPseudonym(strings.TrimPrefix(rest, "Observation/")):
		// ValidPseudonym checks the FHIR id syntax, [A-Za-z0-9-.]{1,64}.
		return "200 OK", strings.TrimPrefix(rest, "Observation/"), true
	}
	return "", "", false
}

// newID returns a random logical id for a created Observation. The
// endpoint keeps no resources; the id only names the creation in answers.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// create handles POST [base]/Observation and PUT [base]/Observation/<id>.
func (h *Handler) create(w http.ResponseWriter, r *http.Request, body []byte, status, id string) {
	o, err := fhirobs.DecodeObservation(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "structure", err.Error())
		return
	}
	rep := fhirobs.Map(o, h.now())
	if err := h.sink.Ingest(r.Context(), rep.Measurements); err != nil {
		h.log.Error("fhir create: sink failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "transient", "the observation could not be stored; retry")
		return
	}
	h.log.Info("fhir create", "measurements", len(rep.Measurements), "ignored", len(rep.Issues))
	w.Header().Set("Location", "Observation/"+id+"/_history/1")
	oo := issuesOutcome(rep.Issues, "Observation")
	if oo == nil {
		oo = outcome(OutcomeIssue{Severity: "information", Code: "informational", Diagnostics: fmt.Sprintf("accepted %d measurements", len(rep.Measurements))})
	}
	code := http.StatusCreated
	if strings.HasPrefix(status, "200") {
		code = http.StatusOK
	}
	writeJSON(w, code, oo)
}

// entryResult is the outcome of one Bundle entry.
type entryResult struct {
	status  string // "201 Created", "200 OK" or an error status
	id      string // logical id named in the location
	rep     fhirobs.Report
	failure *OutcomeIssue
}

// bundle handles POST [base] with a transaction or batch Bundle
// (FHIR R4 §3.1.0.11). A transaction is all or nothing: an entry that is
// not a well-formed Observation create or update fails the whole Bundle and nothing
// is stored. In a batch such an entry fails alone. Values that cannot be
// used never fail an entry; they are reported in its outcome.
func (h *Handler) bundle(w http.ResponseWriter, r *http.Request, body []byte) {
	b, err := fhirobs.DecodeBundle(body)
	if err != nil {
		status := http.StatusBadRequest
		code := "structure"
		if errors.Is(err, fhirobs.ErrTooLarge) {
			status, code = http.StatusRequestEntityTooLarge, "too-costly"
		}
		writeError(w, status, code, err.Error())
		return
	}
	if b.Type != "transaction" && b.Type != "batch" {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("Bundle.type must be transaction or batch, not %q", b.Type))
		return
	}
	now := h.now()
	results := make([]entryResult, len(b.Entry))
	var all []fhirobs.Measurement
	for i, e := range b.Entry {
		res := &results[i]
		expr := fmt.Sprintf("Bundle.entry[%d]", i)
		var status, id string
		ok := false
		if e.Request != nil {
			status, id, ok = observationRequest(e.Request.Method, e.Request.URL)
		}
		if !ok {
			res.status = "400 Bad Request"
			res.failure = &OutcomeIssue{Severity: "error", Code: "not-supported", Diagnostics: "only POST Observation and PUT Observation/<id> entries are supported", Expression: []string{expr + ".request"}}
			continue
		}
		o, err := fhirobs.DecodeObservation(e.Resource)
		if err != nil {
			res.status = "400 Bad Request"
			res.failure = &OutcomeIssue{Severity: "error", Code: "structure", Diagnostics: err.Error(), Expression: []string{expr + ".resource"}}
			continue
		}
		res.status, res.id = status, id
		res.rep = fhirobs.Map(o, now)
		all = append(all, res.rep.Measurements...)
	}
	if b.Type == "transaction" {
		for _, res := range results {
			if res.failure != nil {
				writeJSON(w, http.StatusBadRequest, outcome(*res.failure))
				return
			}
		}
	}
	if err := h.sink.Ingest(r.Context(), all); err != nil {
		h.log.Error("fhir bundle: sink failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "transient", "the observations could not be stored; retry")
		return
	}
	resp := fhirobs.Bundle{ResourceType: "Bundle", Type: b.Type + "-response"}
	ignored := 0
	for i, res := range results {
		br := &fhirobs.BundleResponse{Status: res.status}
		var oo *OperationOutcome
		if res.failure != nil {
			oo = outcome(*res.failure)
		} else {
			br.Location = "Observation/" + res.id + "/_history/1"
			oo = issuesOutcome(res.rep.Issues, fmt.Sprintf("Bundle.entry[%d].resource", i))
			ignored += len(res.rep.Issues)
		}
		if oo != nil {
			raw, err := json.Marshal(oo)
			if err != nil {
				writeError(w, http.StatusInternalServerError, "exception", "could not encode the answer")
				return
			}
			br.Outcome = raw
		}
		resp.Entry = append(resp.Entry, fhirobs.BundleEntry{Response: br})
	}
	h.log.Info("fhir bundle", "type", b.Type, "entries", len(b.Entry), "measurements", len(all), "ignored", ignored)
	writeJSON(w, http.StatusOK, resp)
}
