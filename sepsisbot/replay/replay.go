// Package replay streams PhysioNet 2019 ICU stays into a running sepsis bot
// as FHIR R4 Observations, hour by hour, for demonstrations and tests.
//
// Each stay becomes a patient with the pseudonym "stay-<file name>". Row t
// of a stay becomes the Observations of hour t — one per measured variable,
// with its LOINC code and UCUM unit (fhirobs.Encode), effective half past
// the hour — sent as one transaction Bundle per stay and hour to
// POST [base]. Age and sex are sent with the first hour. Hours are paced at
// Config.Speed times real time.
package replay

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// Pseudonym returns the patient pseudonym replay uses for a stay.
func Pseudonym(stay *physionet.Stay) string { return "stay-" + stay.ID }

// replayed lists the PhysioNet variables sent as Observations: the 34
// clinical variables; the demographics go with the first hour.
var replayed = func() []physionet.Index {
	var out []physionet.Index
	for _, v := range physionet.Variables {
		if v.Kind != physionet.Demographic {
			out = append(out, v.Index)
		}
	}
	return out
}()

// HourObservations returns the Observations of row t of a stay, measured at
// the given time. The first row also carries Age and Gender.
func HourObservations(stay *physionet.Stay, t int, at time.Time) ([]*fhirobs.Observation, error) {
	if t < 0 || t >= len(stay.Rows) {
		return nil, fmt.Errorf("replay: stay %s has no row %d", stay.ID, t)
	}
	row := stay.Rows[t].Values
	idx := replayed
	if t == 0 {
		idx = append(append([]physionet.Index{}, idx...), physionet.Age, physionet.Gender)
	}
	var obs []*fhirobs.Observation
	for _, i := range idx {
		v := row[i]
		if math.IsNaN(v) {
			continue
		}
		o, err := fhirobs.Encode("", fhirobs.Measurement{Patient: Pseudonym(stay), Variable: physionet.Variables[i].Name, Value: v, Time: at})
		if err != nil {
			return nil, fmt.Errorf("replay: stay %s row %d: %w", stay.ID, t, err)
		}
		obs = append(obs, o)
	}
	return obs, nil
}

// Config configures a Replayer.
type Config struct {
	// Base is the bot's FHIR base URL, e.g. "https://bot.icu.example:8443/fhir".
	Base string
	// Token is the bearer token of the bot's FHIR endpoint.
	Token string
	// Client sends the requests (carrying the TLS trust); http.DefaultClient
	// if nil.
	Client *http.Client
	// Speed is how many times faster than real time the hours are sent: 1
	// is real time, 3600 one hour per second. Required, > 0.
	Speed float64
	// Start is the data time of hour 0 (whole hours recommended). If zero,
	// it is chosen so that no data time is ever in the future when it is
	// sent, and at Speed 1 the data are current.
	Start time.Time
	// Now tells the time; time.Now if nil. Sleep waits between hours;
	// a context-aware timer if nil.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives progress; slog.Default() if nil.
	Logger *slog.Logger
}

// Stats counts what a replay sent.
type Stats struct {
	Stays, Hours, Bundles, Observations int
	// Ignored counts Observations the bot reported as not used (unknown
	// code, implausible value, …).
	Ignored int
}

// ErrRejected means the bot refused a Bundle with a client error; the
// replay stops.
var ErrRejected = errors.New("replay: bundle rejected")

// Run sends the stays hour by hour: hour t of every stay that has one,
// then waits 1/Speed hours, then hour t+1. It stops at the first error or
// when ctx is cancelled.
func Run(ctx context.Context, cfg Config, stays []*physionet.Stay) (Stats, error) {
	if !(cfg.Speed > 0) {
		return Stats{}, fmt.Errorf("replay: speed %v must be positive", cfg.Speed)
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hours := 0
	for _, s := range stays {
		hours = max(hours, len(s.Rows))
	}
	began := cfg.Now()
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart(began, hours, cfg.Speed)
	}
	st := Stats{Stays: len(stays)}
	step := time.Duration(float64(time.Hour) / cfg.Speed)
	for t := range hours {
		if wait := began.Add(time.Duration(t) * step).Sub(cfg.Now()); wait > 0 {
			if err := cfg.Sleep(ctx, wait); err != nil {
				return st, err
			}
		}
		at := cfg.Start.Add(time.Duration(t)*time.Hour + 30*time.Minute)
		for _, s := range stays {
			if t >= len(s.Rows) {
				continue
			}
			obs, err := HourObservations(s, t, at)
			if err != nil {
				return st, err
			}
			if len(obs) == 0 {
				continue
			}
			ignored, err := post(ctx, cfg, obs)
			if err != nil {
				return st, fmt.Errorf("replay: stay %s hour %d: %w", s.ID, t, err)
			}
			st.Bundles++
			st.Observations += len(obs)
			st.Ignored += ignored
		}
		st.Hours++
		cfg.Logger.Info("replay: hour sent", "hour", t, "data_time", at.Format(time.RFC3339), "observations", st.Observations)
	}
	return st, nil
}

// DefaultStart returns the data time of hour 0 for a replay of the given
// number of hours beginning now: whole hours, early enough that hour t's
// data (at Start + t h + 30 min) are never later than the time they are
// sent (now + t/speed hours).
func DefaultStart(now time.Time, hours int, speed float64) time.Time {
	lag := math.Ceil(float64(hours) * (1 - 1/speed))
	return now.Truncate(time.Hour).Add(-time.Duration(lag+1) * time.Hour)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxAttempts bounds the tries of one Bundle when the bot answers 503 or
// the connection fails.
const maxAttempts = 5

// post sends one transaction Bundle and returns how many of its entries
// reported ignored values. It retries transient failures with backoff.
func post(ctx context.Context, cfg Config, obs []*fhirobs.Observation) (int, error) {
	b, err := fhirobs.NewTransaction(obs)
	if err != nil {
		return 0, err
	}
	body, err := json.Marshal(b)
	if err != nil {
		return 0, err
	}
	url := strings.TrimSuffix(cfg.Base, "/")
	backoff := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ignored, retry, err := postOnce(ctx, cfg, url, body)
		if err == nil || !retry || attempt == maxAttempts {
			return ignored, err
		}
		cfg.Logger.Warn("replay: retrying", "attempt", attempt, "err", err)
		if err := cfg.Sleep(ctx, backoff); err != nil {
			return 0, err
		}
		backoff *= 2
	}
}

// postOnce makes one request; retry reports whether the failure is
// transient.
func postOnce(ctx context.Context, cfg Config, url string, body []byte) (ignored int, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := cfg.Client.Do(req)
	if err != nil {
		// A certificate the client does not trust will not become
		// trusted by retrying.
		var untrusted *tls.CertificateVerificationError
		return 0, ctx.Err() == nil && !errors.As(err, &untrusted), err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, fhirobs.MaxBundleBytes+1))
	if err != nil {
		return 0, true, err
	}
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode >= 500:
		return 0, true, fmt.Errorf("bot answered %s", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return 0, false, fmt.Errorf("%w: %s: %s", ErrRejected, resp.Status, diagnostics(raw))
	}
	rb, err := fhirobs.DecodeBundle(raw)
	if err != nil || rb.Type != "transaction-response" {
		return 0, false, fmt.Errorf("replay: answer is not a transaction-response: %v", err)
	}
	for _, e := range rb.Entry {
		if e.Response != nil && len(e.Response.Outcome) > 0 {
			ignored++
		}
	}
	return ignored, false, nil
}

// diagnostics extracts the first issue's diagnostics of an
// OperationOutcome, or a prefix of the body.
func diagnostics(raw []byte) string {
	var oo struct {
		Issue []struct {
			Code        string `json:"code"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(raw, &oo) == nil && len(oo.Issue) > 0 {
		return oo.Issue[0].Code + ": " + oo.Issue[0].Diagnostics
	}
	if len(raw) > 200 {
		raw = raw[:200]
	}
	return string(raw)
}
