// Package bot runs the sepsis early-warning bot: an ordinary, end-to-end
// encrypted member of ICU rooms that receives vital signs and laboratory
// results over FHIR and HL7 v2, assesses every patient with the learned
// model and the rule scores, and posts alerts, escalations and daily
// summaries into its rooms, taking acknowledgements from them.
//
// It wires the sepsisbot packages together: fhirapi (FHIR endpoint and
// poller) and hl7 (MLLP listener) feed an ingest.Store; an ingest.Monitor
// assesses changed patients with an ingest.ModelScorer and hands the
// assessments to an alerting.Engine, whose AlertSink sends content.Alert
// messages through the bot's client.Session. Acknowledgements (content
// AlertAck messages) come back through Session.Follow.
package bot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the bot's configuration file (TOML). Paths are relative to the
// file's directory.
type Config struct {
	// Homeserver is the bot's homeserver URL; CAFile the PEM file of the CA
	// its certificate chains to.
	Homeserver string `toml:"homeserver"`
	CAFile     string `toml:"ca_file"`
	// User is the bot's user ID (role bot). PasswordFile holds its password
	// for the first login; afterwards the profile's session is reused.
	User         string `toml:"user"`
	PasswordFile string `toml:"password_file"`
	// ProfileDir holds the bot's encrypted client state; StateKeyFile is
	// the age key file that locks it (created if missing).
	ProfileDir   string `toml:"profile_dir"`
	StateKeyFile string `toml:"state_key_file"`
	// DataDir holds the patient state and the audit log (SQLite).
	DataDir string `toml:"data_dir"`

	// ICURoom receives alerts; EscalationRoom receives alerts left
	// unacknowledged for EscalateAfter (0 disables escalation).
	ICURoom        string        `toml:"icu_room"`
	EscalationRoom string        `toml:"escalation_room"`
	EscalateAfter  time.Duration `toml:"escalate_after"`
	// SummaryTime is the time of day of the daily summary, "HH:MM" in
	// TimeZone.
	SummaryTime string `toml:"summary_time"`
	// TimeZone is the IANA zone of the summary time and of HL7 timestamps
	// without an offset.
	TimeZone string `toml:"time_zone"`

	// ModelFile is a model trained by `medicus sepsisbot train`; empty for
	// the built-in model. Threshold overrides the model's alert threshold
	// (0 keeps it); sites tune it to their alert burden.
	ModelFile string  `toml:"model_file"`
	Threshold float64 `toml:"threshold"`

	// FHIRListen is the address of the FHIR endpoint (base path /fhir),
	// served with TLS from FHIRCertFile and FHIRKeyFile; FHIRTokenFile holds
	// the bearer token senders present. Empty FHIRListen disables it.
	FHIRListen    string `toml:"fhir_listen"`
	FHIRCertFile  string `toml:"fhir_cert_file"`
	FHIRKeyFile   string `toml:"fhir_key_file"`
	FHIRTokenFile string `toml:"fhir_token_file"`
	// MLLPListen is the address of the HL7 v2 MLLP listener (plain TCP
	// inside the hospital network, or TLS with MLLPTLS using the FHIR
	// certificate). Empty disables it.
	MLLPListen string `toml:"mllp_listen"`
	MLLPTLS    bool   `toml:"mllp_tls"`
	// PollBase, if set, is a hospital FHIR server polled every PollInterval
	// for new Observations, with the bearer token in PollTokenFile and the
	// CA in PollCAFile (system roots if empty).
	PollBase      string        `toml:"poll_base"`
	PollTokenFile string        `toml:"poll_token_file"`
	PollCAFile    string        `toml:"poll_ca_file"`
	PollInterval  time.Duration `toml:"poll_interval"`
}

// LoadConfig reads a configuration file, makes its paths absolute and
// checks it.
func LoadConfig(path string) (Config, error) {
	var c Config
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return c, fmt.Errorf("bot: read config: %w", err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return c, fmt.Errorf("bot: config %s: unknown keys %v", path, un)
	}
	c.resolve(filepath.Dir(path))
	return c, c.Check()
}

// resolve makes relative paths relative to dir.
func (c *Config) resolve(dir string) {
	for _, p := range []*string{&c.CAFile, &c.PasswordFile, &c.ProfileDir, &c.StateKeyFile, &c.DataDir, &c.ModelFile,
		&c.FHIRCertFile, &c.FHIRKeyFile, &c.FHIRTokenFile, &c.PollTokenFile, &c.PollCAFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// Check reports what is missing or inconsistent.
func (c *Config) Check() error {
	var errs []error
	need := func(v, name string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is required", name))
		}
	}
	need(c.Homeserver, "homeserver")
	need(c.CAFile, "ca_file")
	need(c.User, "user")
	need(c.ProfileDir, "profile_dir")
	need(c.StateKeyFile, "state_key_file")
	need(c.DataDir, "data_dir")
	need(c.ICURoom, "icu_room")
	if c.EscalateAfter > 0 {
		need(c.EscalationRoom, "escalation_room (escalate_after is set)")
	}
	if c.FHIRListen != "" || c.MLLPTLS {
		need(c.FHIRCertFile, "fhir_cert_file")
		need(c.FHIRKeyFile, "fhir_key_file")
	}
	if c.FHIRListen != "" {
		need(c.FHIRTokenFile, "fhir_token_file")
	}
	if c.FHIRListen == "" && c.MLLPListen == "" && c.PollBase == "" {
		errs = append(errs, errors.New("no input: set fhir_listen, mllp_listen or poll_base"))
	}
	if c.PollBase != "" {
		need(c.PollTokenFile, "poll_token_file")
	}
	if _, err := c.summaryOffset(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.location(); err != nil {
		errs = append(errs, err)
	}
	if c.Threshold < 0 || c.Threshold > 1 {
		errs = append(errs, fmt.Errorf("threshold %v is not in [0, 1]", c.Threshold))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bot: config: %w", err)
	}
	return nil
}

func (c *Config) summaryOffset() (time.Duration, error) {
	if c.SummaryTime == "" {
		return 7 * time.Hour, nil
	}
	t, err := time.Parse("15:04", c.SummaryTime)
	if err != nil {
		return 0, fmt.Errorf("summary_time %q is not HH:MM", c.SummaryTime)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

func (c *Config) location() (*time.Location, error) {
	if c.TimeZone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("time_zone %q: %v", c.TimeZone, err)
	}
	return loc, nil
}

// readSecret reads a one-line secret file.
func readSecret(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("bot: read %s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("bot: %s file %s is empty", what, path)
	}
	return s, nil
}
