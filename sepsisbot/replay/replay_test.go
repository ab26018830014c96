package replay

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/features"
	"github.com/medicus-health/medicus/sepsisbot/fhirapi"
	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
	"github.com/medicus-health/medicus/sepsisbot/ingest"
	"github.com/medicus-health/medicus/sepsisbot/model"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

var quiet = slog.New(slog.DiscardHandler)

// threeHours is a small stay in PSV form: HR, SBP and Resp every hour, a
// blood gas with an artefact FiO2 of 40 (a percentage in a fraction
// column) in hour 1, and labs in hour 2.
func threeHours(t *testing.T) *physionet.Stay {
	t.Helper()
	row := func(set map[physionet.Index]string, label string) string {
		f := make([]string, physionet.NumVariables+1)
		for i := range f {
			f[i] = "NaN"
		}
		f[physionet.Age], f[physionet.Gender], f[physionet.HospAdmTime] = "71.5", "0", "-2.5"
		for i, v := range set {
			f[i] = v
		}
		f[physionet.NumVariables] = label
		return strings.Join(f, "|")
	}
	src := physionet.Header + "\n" +
		row(map[physionet.Index]string{physionet.HR: "96", physionet.SBP: "118", physionet.Resp: "18", physionet.ICULOS: "1"}, "0") + "\n" +
		row(map[physionet.Index]string{physionet.HR: "104", physionet.Resp: "23", physionet.FiO2: "40", physionet.PH: "7.31", physionet.ICULOS: "2"}, "0") + "\n" +
		row(map[physionet.Index]string{physionet.HR: "112", physionet.SBP: "97", physionet.Lactate: "3.4", physionet.WBC: "16.2", physionet.ICULOS: "3"}, "0") + "\n"
	st, err := physionet.Parse(strings.NewReader(src), physionet.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	st.ID = "p999001"
	return st
}

// bot starts the bot's real FHIR endpoint over TLS with a real Store.
func bot(t *testing.T) (*httptest.Server, *ingest.Store) {
	t.Helper()
	store := ingest.NewStore(ingest.StoreConfig{Logger: quiet})
	h, err := fhirapi.NewHandler(fhirapi.HandlerConfig{Token: "replay-token", Sink: store, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", h))
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv, store
}

// fakeTime is a clock that moves only when Sleep is called.
type fakeTime struct {
	now    time.Time
	sleeps []time.Duration
	onWait func()
}

func (f *fakeTime) Now() time.Time { return f.now }
func (f *fakeTime) Sleep(_ context.Context, d time.Duration) error {
	if f.onWait != nil {
		f.onWait()
	}
	f.sleeps = append(f.sleeps, d)
	f.now = f.now.Add(d)
	return nil
}

func TestReplaySendsEachHourAsATransaction(t *testing.T) {
	srv, store := bot(t)
	stay := threeHours(t)
	// The bot checks data times against the real clock.
	clk := &fakeTime{now: time.Now()}
	start := clk.now.Truncate(time.Hour).Add(-5 * time.Hour)
	st, err := Run(context.Background(), Config{Base: srv.URL + "/fhir", Token: "replay-token", Client: srv.Client(),
		Speed: 60, Start: start, Now: clk.Now, Sleep: clk.Sleep, Logger: quiet}, []*physionet.Stay{stay})
	if err != nil {
		t.Fatal(err)
	}
	// 3 + 2 vitals + FiO2 + pH + 4 in hour 2 + Age and Gender.
	if st != (Stats{Stays: 1, Hours: 3, Bundles: 3, Observations: 13, Ignored: 1}) {
		t.Fatalf("stats %+v", st)
	}
	if len(clk.sleeps) != 2 || clk.sleeps[0] != time.Minute || clk.sleeps[1] != time.Minute {
		t.Fatalf("sleeps %v, want a minute between hours at speed 60", clk.sleeps)
	}
	p, ok := store.Patient("stay-p999001")
	if !ok || len(p.Hours) != 3 || p.Age != 71.5 || p.Gender != 0 {
		t.Fatalf("patient %+v", p)
	}
	for i, row := range stay.Rows {
		h := p.Hours[i]
		if !h.Start.Equal(start.Add(time.Duration(i) * time.Hour)) {
			t.Fatalf("hour %d starts %v", i, h.Start)
		}
		for _, v := range physionet.Variables {
			if v.Kind == physionet.Demographic {
				continue
			}
			got, ok := h.Values[v.Name]
			want := row.Values[v.Index]
			if v.Name == "FiO2" && want == 40 {
				if ok {
					t.Fatal("the FiO2 artefact was stored")
				}
				continue
			}
			if math.IsNaN(want) != !ok || (ok && got.Value != want) {
				t.Errorf("hour %d %s = %v (%v), want %v", i, v.Name, got.Value, ok, want)
			}
		}
	}
}

func TestReplayStopsOnARejectedBundle(t *testing.T) {
	srv, _ := bot(t)
	_, err := Run(context.Background(), Config{Base: srv.URL + "/fhir", Token: "wrong", Client: srv.Client(), Speed: 1e9, Logger: quiet},
		[]*physionet.Stay{threeHours(t)})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
}

func TestDefaultStartKeepsDataTimesInThePast(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 17, 0, 0, time.UTC)
	for _, speed := range []float64{1, 2, 60, 3600, 1e9} {
		const hours = 48
		start := DefaultStart(now, hours, speed)
		for h := range hours {
			data := start.Add(time.Duration(h)*time.Hour + 30*time.Minute)
			sent := now.Add(time.Duration(float64(h) * float64(time.Hour) / speed))
			if data.After(sent) {
				t.Fatalf("speed %v hour %d: data time %v after it is sent %v", speed, h, data, sent)
			}
		}
		if speed == 1 && now.Sub(start) > 2*time.Hour {
			t.Fatalf("at real time the data lag %v", now.Sub(start))
		}
	}
}

// TestReplayedStaysGiveTheModelTheSameInputsAsTheFiles replays real stays
// through FHIR into the bot's patient state and checks, after every hour,
// that the model's risk equals the risk computed straight from the PSV
// rows: the FHIR mapping, unit handling and hourly aggregation lose
// nothing the model uses.
func TestReplayedStaysGiveTheModelTheSameInputsAsTheFiles(t *testing.T) {
	dir, looked := physionet.DataDir()
	if dir == "" {
		t.Skipf("PhysioNet 2019 set A not found (looked at %s; set MEDICUS_PHYSIONET_DIR)", looked)
	}
	files, err := physionet.Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Default()
	if err != nil {
		t.Fatal(err)
	}
	// The first stays whose values all pass the bot's plausibility checks.
	var stays []*physionet.Stay
	for _, f := range files {
		if len(stays) == 8 {
			break
		}
		s, err := physionet.ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if allPlausible(t, s) {
			stays = append(stays, s)
		}
	}
	srv, store := bot(t)
	scorer := ingest.ModelScorer{Model: m}
	compared := 0
	check := func(hours int) {
		for _, s := range stays {
			n := min(hours, len(s.Rows))
			// The bot assesses a patient when data arrive, so compare
			// after hours with a clinical value.
			if !hasClinical(s.Rows[n-1].Values) {
				continue
			}
			p, _ := store.Patient(Pseudonym(s))
			got, err := scorer.Assess(p)
			if err != nil {
				t.Fatal(err)
			}
			want := directRisk(m, s, n)
			if got.Risk != want {
				t.Fatalf("stay %s after %d hours: risk %v through FHIR, %v from the file", s.ID, n, got.Risk, want)
			}
			compared++
		}
	}
	clk := &fakeTime{now: time.Now()}
	hour := 0
	clk.onWait = func() { hour++; check(hour) }
	if _, err := Run(context.Background(), Config{Base: srv.URL + "/fhir", Token: "replay-token", Client: srv.Client(),
		Speed: 3600, Now: clk.Now, Sleep: clk.Sleep, Logger: quiet}, stays); err != nil {
		t.Fatal(err)
	}
	check(math.MaxInt)
	t.Logf("compared %d risks of %d stays", compared, len(stays))
}

func allPlausible(t *testing.T, s *physionet.Stay) bool {
	now := time.Now()
	for i := range s.Rows {
		obs, err := HourObservations(s, i, now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range obs {
			if r := fhirobs.Map(o, now); len(r.Issues) > 0 {
				return false
			}
		}
	}
	return true
}

// directRisk is the risk after the first n rows computed from the file the
// way the bot sees them: the stay begins with the first hour that has a
// clinical value, demographics come in that hour, and the administrative
// columns are absent.
func directRisk(m *model.Model, s *physionet.Stay, n int) float64 {
	fp := features.NewPatient()
	for i := range n {
		v := s.Rows[i].Values
		if fp.Hours() == 0 && !hasClinical(v) {
			continue
		}
		for _, idx := range []physionet.Index{physionet.Unit1, physionet.Unit2, physionet.HospAdmTime, physionet.ICULOS} {
			v[idx] = math.NaN()
		}
		if fp.Hours() > 0 {
			v[physionet.Age], v[physionet.Gender] = math.NaN(), math.NaN()
		} else {
			v[physionet.Age], v[physionet.Gender] = s.Rows[0].Values[physionet.Age], s.Rows[0].Values[physionet.Gender]
		}
		fp.Add(features.Hour{Values: v})
	}
	risk, _ := m.Risk(fp)
	return risk
}

func hasClinical(v physionet.Values) bool {
	for _, idx := range replayed {
		if !math.IsNaN(v[idx]) {
			return true
		}
	}
	return false
}

// flakySink fails its first calls, as a bot whose database is busy.
type flakySink struct {
	failures int
	store    *ingest.Store
}

func (f *flakySink) Ingest(ctx context.Context, ms []fhirobs.Measurement) error {
	if f.failures > 0 {
		f.failures--
		return errors.New("database is locked")
	}
	return f.store.Ingest(ctx, ms)
}

func TestReplayRetriesWhenTheBotIsUnavailable(t *testing.T) {
	sink := &flakySink{failures: 2, store: ingest.NewStore(ingest.StoreConfig{Logger: quiet})}
	h, err := fhirapi.NewHandler(fhirapi.HandlerConfig{Token: "replay-token", Sink: sink, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	clk := &fakeTime{now: time.Now()}
	st, err := Run(context.Background(), Config{Base: srv.URL, Token: "replay-token", Client: srv.Client(), Speed: 1e9, Now: clk.Now, Sleep: clk.Sleep, Logger: quiet},
		[]*physionet.Stay{threeHours(t)})
	if err != nil || st.Bundles != 3 {
		t.Fatalf("stats %+v, err %v", st, err)
	}
	if len(clk.sleeps) < 2 || clk.sleeps[0] != 500*time.Millisecond || clk.sleeps[1] != time.Second {
		t.Fatalf("sleeps %v, want backoff 0.5 s then 1 s", clk.sleeps)
	}
	if p, _ := sink.store.Patient("stay-p999001"); len(p.Hours) != 3 {
		t.Fatalf("patient %+v", p)
	}
}
