package fhirapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

// hospitalFHIR is a test double of a hospital's FHIR server: it stores
// Observations with their lastUpdated and answers searches by
// _lastUpdated=gt… with _count paging through next links, as HAPI FHIR does.
type hospitalFHIR struct {
	t       *testing.T
	mu      sync.Mutex
	obs     []stored
	queries []string // the _lastUpdated parameter of every first-page search
	nextURL func(r *http.Request, offset int) string
	fail    bool
}

type stored struct {
	updated time.Time
	json    string
}

func (h *hospitalFHIR) add(updated time.Time, code, unit string, value float64, patient string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := fmt.Sprintf("obs-%d", len(h.obs)+1)
	raw := strings.Replace(observationJSON(code, unit, value, patient, at.Format(time.RFC3339)),
		`"resourceType":"Observation",`,
		`"resourceType":"Observation","id":"`+id+`","meta":{"versionId":"1","lastUpdated":"`+updated.Format("2006-01-02T15:04:05.000-07:00")+`"},`, 1)
	h.obs = append(h.obs, stored{updated, raw})
}

func (h *hospitalFHIR) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer hospital-token" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if h.fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if r.URL.Path != "/r4/Observation" || r.Method != http.MethodGet {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	lu := q.Get("_lastUpdated")
	if !strings.HasPrefix(lu, "gt") || q.Get("_sort") != "_lastUpdated" {
		h.t.Errorf("unexpected search %s", r.URL.RawQuery)
	}
	since, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(lu, "gt"))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	count, _ := strconv.Atoi(q.Get("_count"))
	offset, _ := strconv.Atoi(q.Get("_getpagesoffset"))
	if offset == 0 {
		h.queries = append(h.queries, lu)
	}
	var match []stored
	for _, o := range h.obs {
		if o.updated.After(since) {
			match = append(match, o)
		}
	}
	sort.Slice(match, func(i, j int) bool { return match[i].updated.Before(match[j].updated) })
	end := min(offset+count, len(match))
	var entries []string
	for _, o := range match[offset:end] {
		entries = append(entries, `{"fullUrl":"https://`+r.Host+`/r4/Observation/x","resource":`+o.json+`,"search":{"mode":"match"}}`)
	}
	links := `[{"relation":"self","url":"https://` + r.Host + r.URL.RequestURI() + `"}`
	if end < len(match) {
		next := h.nextURL(r, end)
		links += `,{"relation":"next","url":"` + next + `"}`
	}
	links += "]"
	w.Header().Set("Content-Type", "application/fhir+json")
	fmt.Fprintf(w, `{"resourceType":"Bundle","type":"searchset","total":%d,"link":%s,"entry":[%s]}`, len(match), links, strings.Join(entries, ","))
}

func sameHostNext(r *http.Request, offset int) string {
	q := r.URL.Query()
	q.Set("_getpagesoffset", strconv.Itoa(offset))
	return "https://" + r.Host + r.URL.Path + "?" + q.Encode()
}

func newHospital(t *testing.T) (*hospitalFHIR, *httptest.Server) {
	h := &hospitalFHIR{t: t, nextURL: sameHostNext}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return h, srv
}

func newTestPoller(t *testing.T, srv *httptest.Server, cursorFile string, sink Sink, now time.Time) *Poller {
	t.Helper()
	p, err := NewPoller(PollerConfig{
		Base: srv.URL + "/r4/", Client: srv.Client(), Token: "hospital-token", CursorFile: cursorFile,
		Count: 2, Sink: sink, Logger: quiet, Now: func() time.Time { return now }, Overlap: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPollerPagesThroughNewObservationsAndPersistsItsCursor(t *testing.T) {
	h, srv := newHospital(t)
	now := testNow
	t0 := now.Add(-3 * time.Hour)
	h.add(now.Add(-30*time.Hour), "8867-4", "/min", 70, "bed-01", now.Add(-30*time.Hour)) // before the lookback
	h.add(t0, "8867-4", "/min", 101, "bed-01", t0)
	h.add(t0.Add(10*time.Minute), "8310-5", "[degF]", 101.3, "bed-01", t0)
	h.add(t0.Add(20*time.Minute), "2524-7", "mmol/L", 3.2, "bed-02", t0)
	h.add(t0.Add(30*time.Minute), "8302-2", "cm", 170, "bed-02", t0)
	h.add(t0.Add(40*time.Minute), "777-3", "10*3/uL", 95, "bed-02", t0)

	cursorFile := filepath.Join(t.TempDir(), "fhir-cursor.json")
	sink := &recordingSink{}
	p := newTestPoller(t, srv, cursorFile, sink, now)
	res, err := p.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Pages != 3 || res.Measurements != 4 || len(res.Issues) != 1 || !errors.Is(res.Issues[0], fhirobs.ErrUnknownCode) {
		t.Fatalf("result %+v", res)
	}
	got := sink.all()
	if len(got) != 4 || got[1].Variable != "Temp" || got[1].Value < 38.49 || got[1].Value > 38.51 || got[3].Variable != "Platelets" {
		t.Fatalf("measurements %+v", got)
	}
	want := t0.Add(40 * time.Minute)
	if !p.Cursor().Equal(want) {
		t.Fatalf("cursor %v, want %v", p.Cursor(), want)
	}

	// A new poller (a restart) continues from the persisted cursor, less
	// the overlap: it sees what is new and, again, the last Observation
	// within the overlap.
	h.add(t0.Add(90*time.Minute), "9279-1", "/min", 31, "bed-01", t0.Add(85*time.Minute))
	sink2 := &recordingSink{}
	p2 := newTestPoller(t, srv, cursorFile, sink2, now)
	if !p2.Cursor().Equal(want) {
		t.Fatalf("reloaded cursor %v, want %v", p2.Cursor(), want)
	}
	if _, err := p2.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink2.all(); len(got) != 2 || got[0].Variable != "Platelets" || got[1].Variable != "Resp" {
		t.Fatalf("second poll got %+v", got)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queries) != 2 || h.queries[1] != "gt"+want.Add(-time.Minute).UTC().Format(time.RFC3339Nano) {
		t.Fatalf("queries %v", h.queries)
	}
	if h.queries[0] != "gt"+now.Add(-24*time.Hour-time.Minute).UTC().Format(time.RFC3339Nano) {
		t.Fatalf("first query %q does not start at the lookback", h.queries[0])
	}
}

func TestPollerRefusesNextLinksToAnotherOrigin(t *testing.T) {
	h, srv := newHospital(t)
	h.nextURL = func(*http.Request, int) string { return "https://attacker.example/steal" }
	for i := range 3 {
		h.add(testNow.Add(-time.Duration(i+1)*time.Minute), "8867-4", "/min", 90, "bed-01", testNow.Add(-time.Hour))
	}
	cursorFile := filepath.Join(t.TempDir(), "cursor.json")
	p := newTestPoller(t, srv, cursorFile, &recordingSink{}, testNow)
	before := p.Cursor()
	if _, err := p.Poll(context.Background()); !errors.Is(err, ErrForeignLink) {
		t.Fatalf("err = %v, want ErrForeignLink", err)
	}
	if !p.Cursor().Equal(before) {
		t.Fatal("cursor advanced after a failed poll")
	}
	if _, err := os.Stat(cursorFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cursor file written after a failed poll: %v", err)
	}
}

func TestPollerKeepsItsCursorWhenTheServerOrSinkFails(t *testing.T) {
	h, srv := newHospital(t)
	h.add(testNow.Add(-time.Minute), "8867-4", "/min", 90, "bed-01", testNow.Add(-time.Hour))
	cursorFile := filepath.Join(t.TempDir(), "cursor.json")

	h.fail = true
	p := newTestPoller(t, srv, cursorFile, &recordingSink{}, testNow)
	before := p.Cursor()
	if _, err := p.Poll(context.Background()); err == nil {
		t.Fatal("poll succeeded against a failing server")
	}
	h.mu.Lock()
	h.fail = false
	h.mu.Unlock()

	p = newTestPoller(t, srv, cursorFile, &recordingSink{err: errors.New("store down")}, testNow)
	if _, err := p.Poll(context.Background()); err == nil || !p.Cursor().Equal(before) {
		t.Fatalf("err %v, cursor %v (was %v)", err, p.Cursor(), before)
	}

	sink := &recordingSink{}
	p = newTestPoller(t, srv, cursorFile, sink, testNow)
	if _, err := p.Poll(context.Background()); err != nil || len(sink.all()) != 1 {
		t.Fatalf("retry: err %v, got %+v", err, sink.all())
	}
}

func TestPollerRefusesAWrongToken(t *testing.T) {
	_, srv := newHospital(t)
	p, err := NewPoller(PollerConfig{Base: srv.URL + "/r4", Client: srv.Client(), Token: "wrong", CursorFile: filepath.Join(t.TempDir(), "c"), Sink: &recordingSink{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Poll(context.Background()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
}

func TestNewPollerRefusesACorruptCursor(t *testing.T) {
	f := filepath.Join(t.TempDir(), "cursor.json")
	if err := os.WriteFile(f, []byte(`{"last_updated":`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewPoller(PollerConfig{Base: "https://fhir.example/r4", CursorFile: f, Sink: &recordingSink{}})
	if err == nil {
		t.Fatal("accepted a corrupt cursor file")
	}
}
