package fhirapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

const testToken = "s3cr3t-token-for-tests"

var quiet = slog.New(slog.DiscardHandler)

// recordingSink is a real Sink that keeps what it was given.
type recordingSink struct {
	mu    sync.Mutex
	calls [][]fhirobs.Measurement
	err   error
}

func (s *recordingSink) Ingest(_ context.Context, ms []fhirobs.Measurement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.calls = append(s.calls, ms)
	return nil
}

func (s *recordingSink) all() []fhirobs.Measurement {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []fhirobs.Measurement
	for _, c := range s.calls {
		out = append(out, c...)
	}
	return out
}

func observationJSON(code, unit string, value float64, patient, at string) string {
	return `{"resourceType":"Observation","status":"final",` +
		`"code":{"coding":[{"system":"http://loinc.org","code":"` + code + `"}]},` +
		`"subject":{"reference":"Patient/` + patient + `"},"effectiveDateTime":"` + at + `",` +
		`"valueQuantity":{"value":` + strconv.FormatFloat(value, 'g', -1, 64) + `,"unit":"` + unit + `","system":"http://unitsofmeasure.org","code":"` + unit + `"}}`
}

const bpPanel = `{"resourceType":"Observation","status":"final",
 "code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},
 "subject":{"reference":"Patient/bed-03"},"effectiveDateTime":"2026-11-29T10:00:00Z",
 "component":[
  {"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":92,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}},
  {"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":51,"unit":"mmHg","system":"http://unitsofmeasure.org","code":"mm[Hg]"}}]}`

func newTestServer(t *testing.T, sink Sink) *httptest.Server {
	t.Helper()
	h, err := NewHandler(HandlerConfig{Token: testToken, Sink: sink, Now: func() time.Time { return testNow }, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", h))
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, srv *httptest.Server, path, contentType, token, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func decodeOutcome(t *testing.T, body []byte) OperationOutcome {
	t.Helper()
	var oo OperationOutcome
	if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("body is not an OperationOutcome: %s", body)
	}
	return oo
}

func TestCreateObservationStoresTheMeasurement(t *testing.T) {
	sink := &recordingSink{}
	srv := newTestServer(t, sink)
	resp, body := post(t, srv, "/fhir/Observation", "application/fhir+json", testToken,
		observationJSON("8867-4", "/min", 118, "bed-03", "2026-11-29T10:05:00Z"))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "Observation/") || !strings.HasSuffix(loc, "/_history/1") {
		t.Errorf("Location = %q", loc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type = %q", ct)
	}
	got := sink.all()
	if len(got) != 1 || got[0].Patient != "bed-03" || got[0].Variable != "HR" || got[0].Value != 118 {
		t.Fatalf("sink got %+v", got)
	}
}

func TestCreateObservationReportsIgnoredValues(t *testing.T) {
	sink := &recordingSink{}
	srv := newTestServer(t, sink)
	tests := []struct {
		name, body, severity, code string
	}{
		{"unknown code", observationJSON("8302-2", "cm", 180, "bed-03", "2026-11-29T10:05:00Z"), "information", "not-supported"},
		{"wrong unit", observationJSON("8867-4", "mg/dL", 80, "bed-03", "2026-11-29T10:05:00Z"), "warning", "value"},
		{"no usable time", observationJSON("8867-4", "/min", 80, "bed-03", "2026-11-29"), "warning", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, srv, "/fhir/Observation", "application/json", testToken, tt.body)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			oo := decodeOutcome(t, body)
			if oo.Issue[0].Severity != tt.severity || oo.Issue[0].Code != tt.code {
				t.Fatalf("issue = %+v, want %s/%s", oo.Issue[0], tt.severity, tt.code)
			}
		})
	}
	if got := sink.all(); len(got) != 0 {
		t.Fatalf("sink got ignored values: %+v", got)
	}
}

func TestEndpointRefusesBadRequestsWithOperationOutcomes(t *testing.T) {
	sink := &recordingSink{}
	srv := newTestServer(t, sink)
	valid := observationJSON("8867-4", "/min", 80, "bed-03", "2026-11-29T10:05:00Z")
	tests := []struct {
		name, path, contentType, token, body string
		status                               int
		code                                 string
	}{
		{"no token", "/fhir/Observation", "application/fhir+json", "", valid, 401, "login"},
		{"wrong token", "/fhir/Observation", "application/fhir+json", testToken + "x", valid, 401, "login"},
		{"token prefix", "/fhir/Observation", "application/fhir+json", testToken[:5], valid, 401, "login"},
		{"malformed JSON", "/fhir/Observation", "application/fhir+json", testToken, `{"resourceType":"Observation",`, 400, "structure"},
		{"unknown element", "/fhir/Observation", "application/fhir+json", testToken, strings.Replace(valid, `"status"`, `"statsu":"x","status"`, 1), 400, "structure"},
		{"a Patient", "/fhir/Observation", "application/fhir+json", testToken, `{"resourceType":"Patient"}`, 400, "structure"},
		{"XML", "/fhir/Observation", "application/fhir+xml", testToken, `<Observation/>`, 415, "not-supported"},
		{"too large", "/fhir/Observation", "application/fhir+json", testToken, strings.Repeat(" ", fhirobs.MaxObservationBytes+1) + valid, 413, "too-costly"},
		{"other resource type", "/fhir/Patient", "application/fhir+json", testToken, `{}`, 404, "not-supported"},
		{"document bundle", "/fhir", "application/fhir+json", testToken, `{"resourceType":"Bundle","type":"document"}`, 400, "invalid"},
		{"transaction with a DELETE", "/fhir/", "application/fhir+json", testToken, `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + valid + `,"request":{"method":"DELETE","url":"Observation/1"}}]}`, 400, "not-supported"},
		{"transaction creating a Patient", "/fhir/", "application/fhir+json", testToken, `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + valid + `,"request":{"method":"POST","url":"Patient"}}]}`, 400, "not-supported"},
		{"transaction with a malformed entry", "/fhir/", "application/fhir+json", testToken, `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":` + valid + `,"request":{"method":"POST","url":"Observation"}},{"resource":{"resourceType":"Observation","x":1},"request":{"method":"POST","url":"Observation"}}]}`, 400, "structure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, srv, tt.path, tt.contentType, tt.token, tt.body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if oo := decodeOutcome(t, body); oo.Issue[0].Code != tt.code || oo.Issue[0].Severity != "error" {
				t.Fatalf("issue = %+v, want error %s", oo.Issue[0], tt.code)
			}
			if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	if got := sink.all(); len(got) != 0 {
		t.Fatalf("refused requests reached the sink: %+v", got)
	}
}

func TestGetIsNotAllowed(t *testing.T) {
	srv := newTestServer(t, &recordingSink{})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/fhir/Observation", nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST, PUT" {
		t.Fatalf("status %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func bundleJSON(typ string, resources ...string) string {
	var entries []string
	for _, r := range resources {
		entries = append(entries, `{"fullUrl":"urn:uuid:`+strings.Repeat("0", 8)+`","resource":`+r+`,"request":{"method":"POST","url":"Observation"}}`)
	}
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

func decodeResponseBundle(t *testing.T, body []byte, typ string, n int) *fhirobs.Bundle {
	t.Helper()
	b, err := fhirobs.DecodeBundle(body)
	if err != nil {
		t.Fatalf("answer is not a Bundle: %v: %s", err, body)
	}
	if b.Type != typ || len(b.Entry) != n {
		t.Fatalf("answer type %q with %d entries, want %q with %d", b.Type, len(b.Entry), typ, n)
	}
	return b
}

func TestTransactionStoresAllEntriesAtOnce(t *testing.T) {
	sink := &recordingSink{}
	srv := newTestServer(t, sink)
	body := bundleJSON("transaction", bpPanel,
		observationJSON("8867-4", "/min", 121, "bed-03", "2026-11-29T10:00:00Z"),
		observationJSON("2524-7", "mmol/L", 4.1, "bed-03", "2026-11-29T09:40:00Z"),
		observationJSON("8302-2", "cm", 180, "bed-03", "2026-11-29T09:40:00Z"))
	resp, out := post(t, srv, "/fhir", "application/fhir+json", testToken, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	b := decodeResponseBundle(t, out, "transaction-response", 4)
	for i, e := range b.Entry {
		if e.Response == nil || e.Response.Status != "201 Created" || !strings.HasPrefix(e.Response.Location, "Observation/") {
			t.Errorf("entry %d response = %+v", i, e.Response)
		}
	}
	if len(b.Entry[3].Response.Outcome) == 0 {
		t.Error("the unknown code is not reported in its entry's outcome")
	}
	if len(sink.calls) != 1 || len(sink.calls[0]) != 4 {
		t.Fatalf("sink calls = %+v, want one call with SBP, DBP, HR and Lactate", sink.calls)
	}
}

func TestBatchFailsBadEntriesAlone(t *testing.T) {
	sink := &recordingSink{}
	srv := newTestServer(t, sink)
	body := bundleJSON("batch",
		observationJSON("8867-4", "/min", 121, "bed-03", "2026-11-29T10:00:00Z"),
		`{"resourceType":"Observation","bogus":true}`,
		observationJSON("9279-1", "/min", 28, "bed-03", "2026-11-29T10:00:00Z"))
	resp, out := post(t, srv, "/fhir", "application/fhir+json", testToken, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	b := decodeResponseBundle(t, out, "batch-response", 3)
	if b.Entry[0].Response.Status != "201 Created" || b.Entry[1].Response.Status != "400 Bad Request" || b.Entry[2].Response.Status != "201 Created" {
		t.Fatalf("statuses %s, %s, %s", b.Entry[0].Response.Status, b.Entry[1].Response.Status, b.Entry[2].Response.Status)
	}
	if got := sink.all(); len(got) != 2 || got[0].Variable != "HR" || got[1].Variable != "Resp" {
		t.Fatalf("sink got %+v", got)
	}
}

func TestSinkFailureAnswers503(t *testing.T) {
	sink := &recordingSink{err: errors.New("disk full")}
	srv := newTestServer(t, sink)
	resp, body := post(t, srv, "/fhir", "application/fhir+json", testToken, bundleJSON("transaction", bpPanel))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if oo := decodeOutcome(t, body); oo.Issue[0].Code != "transient" {
		t.Fatalf("issue %+v", oo.Issue[0])
	}
}

func TestNewHandlerRefusesAnEmptyToken(t *testing.T) {
	if _, err := NewHandler(HandlerConfig{Sink: &recordingSink{}}); err == nil {
		t.Fatal("accepted an empty token")
	}
}

func TestMetadataDescribesTheEndpointWithoutAToken(t *testing.T) {
	srv := newTestServer(t, &recordingSink{})
	resp, err := srv.Client().Get(srv.URL + "/fhir/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var cs struct {
		ResourceType string `json:"resourceType"`
		FHIRVersion  string `json:"fhirVersion"`
		Rest         []struct {
			Resource []struct {
				Type string `json:"type"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v", resp.StatusCode, err)
	}
	if cs.ResourceType != "CapabilityStatement" || cs.FHIRVersion != "4.0.1" || cs.Rest[0].Resource[0].Type != "Observation" {
		t.Fatalf("capability statement %+v", cs)
	}
}

func TestUpdatesAndConditionalCreatesAreTaken(t *testing.T) {
	sink := &recordingSink{}
	srv := newTestServer(t, sink)
	obs := observationJSON("8867-4", "/min", 101, "bed-03", "2026-11-29T10:05:00Z")
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/fhir/Observation/hr-0815", strings.NewReader(obs))
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "Observation/hr-0815/_history/1" {
		t.Fatalf("PUT: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	body := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"resource":` + obs + `,"request":{"method":"PUT","url":"Observation?identifier=urn:lab|4711"}},
	  {"resource":` + obs + `,"request":{"method":"POST","url":"Observation","ifNoneExist":"identifier=urn:lab|4712"}},
	  {"resource":` + obs + `,"request":{"method":"PUT","url":"Observation/lab-4713"}}]}`
	resp2, out := post(t, srv, "/fhir", "application/fhir+json", testToken, body)
	if resp2.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp2.StatusCode, out)
	}
	b := decodeResponseBundle(t, out, "transaction-response", 3)
	if b.Entry[0].Response.Status != "200 OK" || b.Entry[1].Response.Status != "201 Created" || b.Entry[2].Response.Location != "Observation/lab-4713/_history/1" {
		t.Fatalf("responses %+v %+v %+v", b.Entry[0].Response, b.Entry[1].Response, b.Entry[2].Response)
	}
	if got := sink.all(); len(got) != 4 {
		t.Fatalf("sink got %d measurements, want 4", len(got))
	}
}
