package fhirapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

// ErrForeignLink means a server's next link points to another origin than
// the configured base; the poller refuses to follow it (and to send its
// token there).
var ErrForeignLink = errors.New("fhirapi: next link to another origin")

// PollerConfig configures a Poller.
type PollerConfig struct {
	// Base is the hospital FHIR server's base URL, e.g.
	// "https://fhir.hospital.example/r4".
	Base string
	// Client makes the requests; it carries the TLS configuration
	// (hospital CA, client certificate). http.DefaultClient if nil.
	Client *http.Client
	// Token, if set, is sent as a bearer token.
	Token string
	// CursorFile persists the cursor between runs. Required.
	CursorFile string
	// Lookback is how far back the first poll reaches when there is no
	// cursor yet; 24 hours if zero.
	Lookback time.Duration
	// Overlap is subtracted from the cursor in every query, so resources
	// committed late with an earlier lastUpdated are not missed; their
	// re-delivery is harmless because measurements are idempotent.
	// 2 minutes if zero.
	Overlap time.Duration
	// Count is the page size asked for (_count); 200 if zero.
	Count int
	// MaxPages bounds the pages read per poll; 100 if zero.
	MaxPages int
	// Sink receives the measurements. Required.
	Sink Sink
	// Now returns the current time; time.Now if nil.
	Now func() time.Time
	// Logger receives counts per poll, never values; slog.Default() if nil.
	Logger *slog.Logger
}

// Poller fetches new Observations from a hospital FHIR server.
type Poller struct {
	cfg    PollerConfig
	base   *url.URL
	cursor time.Time
}

// maxPageBytes bounds one searchset page.
const maxPageBytes = fhirobs.MaxBundleBytes

// cursorState is the JSON of the cursor file.
type cursorState struct {
	LastUpdated time.Time `json:"last_updated"`
}

// NewPoller validates the configuration and loads the cursor file if it
// exists.
func NewPoller(cfg PollerConfig) (*Poller, error) {
	base, err := url.Parse(strings.TrimSuffix(cfg.Base, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("fhirapi: poller base %q is not an http(s) URL", cfg.Base)
	}
	if cfg.CursorFile == "" || cfg.Sink == nil {
		return nil, errors.New("fhirapi: poller needs a cursor file and a sink")
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Lookback == 0 {
		cfg.Lookback = 24 * time.Hour
	}
	if cfg.Overlap == 0 {
		cfg.Overlap = 2 * time.Minute
	}
	if cfg.Count == 0 {
		cfg.Count = 200
	}
	if cfg.MaxPages == 0 {
		cfg.MaxPages = 100
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Poller{cfg: cfg, base: base}
	raw, err := os.ReadFile(cfg.CursorFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		p.cursor = cfg.Now().Add(-cfg.Lookback)
	case err != nil:
		return nil, fmt.Errorf("fhirapi: read cursor: %w", err)
	default:
		var st cursorState
		if err := json.Unmarshal(raw, &st); err != nil || st.LastUpdated.IsZero() {
			return nil, fmt.Errorf("fhirapi: cursor file %s is corrupt", cfg.CursorFile)
		}
		p.cursor = st.LastUpdated
	}
	return p, nil
}

// Cursor returns the lastUpdated time up to which Observations have been
// read.
func (p *Poller) Cursor() time.Time { return p.cursor }

// PollResult counts what one poll did.
type PollResult struct {
	Pages        int
	Measurements int
	Issues       []fhirobs.Issue
}

// Poll reads every page of Observations updated after the cursor (less the
// overlap), hands their measurements to the sink page by page, and then
// advances and persists the cursor to the greatest meta.lastUpdated seen.
// On any error the cursor stays where it was, so the next poll repeats the
// work. Poll must not be called concurrently with itself or Run.
func (p *Poller) Poll(ctx context.Context) (PollResult, error) {
	var res PollResult
	q := url.Values{}
	q.Set("_lastUpdated", "gt"+p.cursor.Add(-p.cfg.Overlap).UTC().Format(time.RFC3339Nano))
	q.Set("_sort", "_lastUpdated")
	q.Set("_count", strconv.Itoa(p.cfg.Count))
	next := p.base.String() + "/Observation?" + q.Encode()
	newest := p.cursor
	for next != "" {
		if res.Pages >= p.cfg.MaxPages {
			p.cfg.Logger.Warn("fhir poll: page limit reached; continuing at the next poll", "pages", res.Pages)
			break
		}
		b, err := p.page(ctx, next)
		if err != nil {
			return res, err
		}
		res.Pages++
		rep := fhirobs.MapBundle(b, p.cfg.Now())
		if err := p.cfg.Sink.Ingest(ctx, rep.Measurements); err != nil {
			return res, fmt.Errorf("fhir poll: sink: %w", err)
		}
		res.Measurements += len(rep.Measurements)
		res.Issues = append(res.Issues, rep.Issues...)
		if t := newestUpdate(b); t.After(newest) {
			newest = t
		}
		next = b.Next()
		if next != "" {
			if err := p.sameOrigin(next); err != nil {
				return res, err
			}
		}
	}
	if newest.After(p.cursor) {
		if err := p.saveCursor(newest); err != nil {
			return res, err
		}
		p.cursor = newest
	}
	p.cfg.Logger.Info("fhir poll", "pages", res.Pages, "measurements", res.Measurements, "ignored", len(res.Issues))
	return res, nil
}

// Run polls every interval until ctx is cancelled; errors are logged and
// the next poll retries. It returns ctx.Err().
func (p *Poller) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.cfg.Logger.Warn("fhir poll failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// sameOrigin checks that a link has the base's scheme and host.
func (p *Poller) sameOrigin(link string) error {
	u, err := url.Parse(link)
	if err != nil || u.Scheme != p.base.Scheme || u.Host != p.base.Host {
		return fmt.Errorf("%w: %q", ErrForeignLink, link)
	}
	return nil
}

// page fetches and decodes one searchset page.
func (p *Poller) page(ctx context.Context, link string) (*fhirobs.Bundle, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return nil, fmt.Errorf("fhir poll: %w", err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if p.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.Token)
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fhir poll: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPageBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fhir poll: read page: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fhir poll: server answered %s", resp.Status)
	}
	b, err := fhirobs.DecodeBundle(body)
	if err != nil {
		return nil, fmt.Errorf("fhir poll: %w", err)
	}
	if b.Type != "searchset" {
		return nil, fmt.Errorf("fhir poll: %w: Bundle.type %q, want searchset", fhirobs.ErrMalformed, b.Type)
	}
	return b, nil
}

// newestUpdate returns the greatest meta.lastUpdated of a page's entries.
func newestUpdate(b *fhirobs.Bundle) time.Time {
	var newest time.Time
	for _, e := range b.Entry {
		var r struct {
			Meta struct {
				LastUpdated string `json:"lastUpdated"`
			} `json:"meta"`
		}
		if json.Unmarshal(e.Resource, &r) != nil || r.Meta.LastUpdated == "" {
			continue
		}
		if t, err := fhirobs.ParseDateTime(r.Meta.LastUpdated); err == nil && t.After(newest) {
			newest = t
		}
	}
	return newest
}

// saveCursor writes the cursor file atomically: a synced temporary file
// renamed over the old one.
func (p *Poller) saveCursor(t time.Time) error {
	raw, err := json.Marshal(cursorState{LastUpdated: t.UTC()})
	if err != nil {
		return err
	}
	dir := filepath.Dir(p.cfg.CursorFile)
	f, err := os.CreateTemp(dir, ".cursor-*")
	if err != nil {
		return fmt.Errorf("fhirapi: save cursor: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, bytes.NewReader(raw)); err != nil {
		f.Close()
		return fmt.Errorf("fhirapi: save cursor: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fhirapi: save cursor: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("fhirapi: save cursor: %w", err)
	}
	if err := os.Rename(f.Name(), p.cfg.CursorFile); err != nil {
		return fmt.Errorf("fhirapi: save cursor: %w", err)
	}
	return nil
}
