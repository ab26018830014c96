package demo

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/crypto/pki"
	"github.com/medicus-health/medicus/sepsisbot/bot"
	"github.com/medicus-health/medicus/sepsisbot/features"
	"github.com/medicus-health/medicus/sepsisbot/model"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
	"github.com/medicus-health/medicus/sepsisbot/replay"
)

// ICUSecrets are strings of the ICU scenario that must never appear in a
// homeserver's files: the patients' pseudonyms start with "stay-".
var ICUSecrets = []string{"stay-p0", "stay-synthetic", "ICU 3 on call"}

// ICU plays the sepsis early-warning scenario: the doctor opens an ICU
// room and an on-call room and invites the nurse and the sepsis bot; the
// bot (started in-process, with its own encrypted client session) receives
// ICU stays replayed over FHIR — PhysioNet 2019 stays from dataDir, or a
// synthetic deteriorating patient when dataDir is "" or missing — and
// posts an encrypted alert, which the nurse reads and acknowledges.
func (sc *Scenario) ICU(ctx context.Context, doctor, nurse, botAccount Account, dataDir string) error {
	fmt.Fprintf(sc.Out, "\n== ICU early warning: %s opens the ICU room, %s watches it, %s is the bot ==\n", doctor.UserID, nurse.UserID, botAccount.UserID)
	doc, err := sc.login(ctx, "ICU doctor", doctor)
	if err != nil {
		return err
	}
	defer doc.Close()
	nur, err := sc.login(ctx, "ICU nurse", nurse)
	if err != nil {
		return err
	}
	defer nur.Close()
	icu, err := doc.CreateRoom(ctx, "ICU 3")
	if err != nil {
		return err
	}
	onCall, err := doc.CreateRoom(ctx, "ICU 3 on call")
	if err != nil {
		return err
	}

	dir := filepath.Join(sc.Dir, "sepsis-bot")
	b, fhirCA, token, err := startBot(ctx, dir, botAccount, icu, onCall)
	if err != nil {
		return err
	}
	defer b.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()
	fmt.Fprintf(sc.Out, "  sepsis bot             logged in as %s; FHIR endpoint https://%s/fhir\n", botAccount.UserID, b.FHIRAddr())
	for _, inv := range []struct{ room, user string }{{icu, nurse.UserID}, {icu, botAccount.UserID}, {onCall, botAccount.UserID}} {
		if err := doc.Invite(ctx, inv.room, inv.user); err != nil {
			return fmt.Errorf("invite %s: %w", inv.user, err)
		}
	}
	fmt.Fprintf(sc.Out, "  ICU doctor             created the ICU room %s and invited the nurse and the bot\n", icu)

	stays, hours, source := icuStays(dataDir)
	fmt.Fprintf(sc.Out, "  replay                 streams %s as FHIR Observations, %d hours\n", source, hours)
	roots := x509.NewCertPool()
	roots.AddCert(fhirCA)
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	st, err := replay.Run(ctx, replay.Config{Base: "https://" + b.FHIRAddr() + "/fhir", Token: token, Client: hc,
		Speed: float64(hours) * 3600 / 4, Logger: slog.New(slog.DiscardHandler)}, stays)
	if err != nil {
		return err
	}
	fmt.Fprintf(sc.Out, "  replay                 sent %d Observations in %d transaction Bundles\n", st.Observations, st.Bundles)

	m, alert, err := sc.awaitAlert(ctx, nur, icu)
	if err != nil {
		return err
	}
	fmt.Fprintf(sc.Out, "  ICU nurse              sees  #%d %s: 🚨 %s\n", m.Seq, m.Sender, alert.Summary)
	fmt.Fprintf(sc.Out, "                               risk %.1f%% (%s)%s\n", 100*alert.Risk, alert.Trend, scoreLine(alert))
	for _, c := range alert.Top {
		fmt.Fprintf(sc.Out, "                               why: %s %.4g %s at %s\n", c.Variable, c.Value, c.Unit, c.Time.Time().Format("Jan 2 15:04"))
	}
	fmt.Fprintf(sc.Out, "                               data as of %s\n", alert.DataTime.Time().Format("Jan 2 15:04 MST"))
	if _, err := nur.AckAlert(ctx, icu, m.Seq, "seen; lactate repeated, cultures taken"); err != nil {
		return err
	}
	if err := awaitAck(ctx, filepath.Join(dir, "data", "audit.db")); err != nil {
		return err
	}
	fmt.Fprintf(sc.Out, "  sepsis bot             recorded the nurse's acknowledgement in its audit log (no escalation to the on-call room)\n")
	return nil
}

// startBot writes the bot's files (password, FHIR token, a FHIR server
// certificate from a demo CA) and creates the bot.
func startBot(ctx context.Context, dir string, a Account, icu, onCall string) (*bot.Bot, *x509.Certificate, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, "", err
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	token := hex.EncodeToString(raw[:])
	files := map[string][]byte{"ca.pem": a.CA, "bot.password": []byte(a.Password + "\n"), "fhir.token": []byte(token + "\n")}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, nil, "", err
		}
	}
	ca, err := pki.NewCA("ICU integration CA (demo)", 24*time.Hour)
	if err != nil {
		return nil, nil, "", err
	}
	leaf, err := ca.Issue("localhost", []net.IP{net.IPv4(127, 0, 0, 1)}, 24*time.Hour)
	if err != nil {
		return nil, nil, "", err
	}
	if err := pki.WriteCertPEM(filepath.Join(dir, "fhir.crt"), leaf.Cert); err != nil {
		return nil, nil, "", err
	}
	if err := pki.WriteKeyPEM(filepath.Join(dir, "fhir.key"), leaf.Key); err != nil {
		return nil, nil, "", err
	}
	cfg := bot.Config{
		Homeserver: a.ServerURL, CAFile: filepath.Join(dir, "ca.pem"), User: a.UserID, PasswordFile: filepath.Join(dir, "bot.password"),
		ProfileDir: filepath.Join(dir, "profile"), StateKeyFile: filepath.Join(dir, "state.key"), DataDir: filepath.Join(dir, "data"),
		ICURoom: icu, EscalationRoom: onCall, EscalateAfter: 10 * time.Minute,
		FHIRListen: "127.0.0.1:0", FHIRCertFile: filepath.Join(dir, "fhir.crt"), FHIRKeyFile: filepath.Join(dir, "fhir.key"),
		FHIRTokenFile: filepath.Join(dir, "fhir.token"),
	}
	b, err := bot.New(ctx, cfg, bot.Options{Logger: slog.New(slog.DiscardHandler), TickInterval: 200 * time.Millisecond})
	if err != nil {
		return nil, nil, "", err
	}
	return b, ca.Cert, token, nil
}

// icuStays picks what to replay: from dataDir, the septic stay among the
// first 400 whose risk reaches the model's threshold soonest, cut two
// hours after that, with two other stays of the same length; otherwise a
// synthetic patient deteriorating over 24 hours.
func icuStays(dataDir string) ([]*physionet.Stay, int, string) {
	if stays, hours, ok := physionetStays(dataDir); ok {
		names := make([]string, len(stays))
		for i, s := range stays {
			names[i] = s.ID
		}
		return stays, hours, "PhysioNet 2019 stays " + strings.Join(names, ", ")
	}
	// The synthetic patient deteriorates over a day, or longer if the
	// model needs more to reach its threshold.
	s := syntheticStay(24)
	if m, err := model.Default(); err == nil {
		for _, hours := range []int{24, 36, 48} {
			if s = syntheticStay(hours); reachesThreshold(m, s) {
				break
			}
		}
	}
	return []*physionet.Stay{s}, len(s.Rows), "a synthetic deteriorating patient"
}

// reachesThreshold reports whether the model's risk for the stay reaches
// its threshold at some hour.
func reachesThreshold(m *model.Model, s *physionet.Stay) bool {
	fp := features.NewPatient()
	for _, r := range s.Rows {
		fp.Add(features.Hour{Values: r.Values})
		if risk, _ := m.Risk(fp); risk >= m.Threshold {
			return true
		}
	}
	return false
}

func physionetStays(dataDir string) ([]*physionet.Stay, int, bool) {
	if dataDir == "" {
		return nil, 0, false
	}
	files, err := physionet.Files(dataDir)
	if err != nil || len(files) == 0 {
		return nil, 0, false
	}
	m, err := model.Default()
	if err != nil {
		return nil, 0, false
	}
	var best *physionet.Stay
	bestHour := math.MaxInt
	var others []*physionet.Stay
	for _, f := range files[:min(400, len(files))] {
		s, err := physionet.ParseFile(f)
		if err != nil {
			continue
		}
		if !s.Septic() {
			if len(others) < 2 && len(s.Rows) >= 24 {
				others = append(others, s)
			}
			continue
		}
		fp := features.NewPatient()
		for t, r := range s.Rows {
			if t >= bestHour {
				break
			}
			fp.Add(features.Hour{Values: r.Values})
			if risk, _ := m.Risk(fp); risk >= m.Threshold && t >= 6 {
				best, bestHour = s, t
				break
			}
		}
	}
	if best == nil || len(others) < 2 {
		return nil, 0, false
	}
	hours := bestHour + 3
	cut := func(s *physionet.Stay) *physionet.Stay {
		return &physionet.Stay{ID: s.ID, Rows: s.Rows[:min(hours, len(s.Rows))]}
	}
	return []*physionet.Stay{cut(best), cut(others[0]), cut(others[1])}, hours, true
}

// syntheticStay is a patient whose vital signs and laboratory values move
// from normal to septic over the given hours.
func syntheticStay(hours int) *physionet.Stay {
	s := &physionet.Stay{ID: "synthetic01"}
	lerp := func(from, to float64, h int) float64 { return from + (to-from)*float64(h)/float64(hours-1) }
	for h := range hours {
		v := physionet.Missing()
		v[physionet.HR], v[physionet.Resp], v[physionet.Temp] = lerp(84, 131, h), lerp(15, 32, h), lerp(36.9, 39.3, h)
		v[physionet.SBP], v[physionet.MAP], v[physionet.DBP], v[physionet.O2Sat] = lerp(127, 83, h), lerp(88, 57, h), lerp(68, 44, h), lerp(98, 88, h)
		if h%6 == 0 {
			v[physionet.Lactate], v[physionet.WBC], v[physionet.Creatinine], v[physionet.Platelets] = lerp(1, 5.1, h), lerp(8, 21, h), lerp(0.9, 2.4, h), lerp(250, 90, h)
		}
		if h == 0 {
			v[physionet.Age], v[physionet.Gender] = 67, 1
		}
		s.Rows = append(s.Rows, physionet.Row{Values: v})
	}
	return s
}

// awaitAlert syncs p until an alert arrives in room.
func (sc *Scenario) awaitAlert(ctx context.Context, p *person, room string) (client.Message, *content.Alert, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		msgs, err := p.Sync(ctx)
		if err != nil {
			return client.Message{}, nil, fmt.Errorf("%s syncs: %w", p.name, err)
		}
		for _, m := range msgs {
			if m.Room != room || m.Type != client.TypeContent {
				continue
			}
			if c, err := m.Decode(); err == nil {
				if a, ok := c.Body.(*content.Alert); ok {
					return m, a, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return client.Message{}, nil, fmt.Errorf("%s saw no alert: %w", p.name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func scoreLine(a *content.Alert) string {
	var parts []string
	for _, s := range []struct {
		name string
		v    *int
	}{{"qSOFA", a.Scores.QSOFA}, {"SIRS", a.Scores.SIRS}, {"NEWS2", a.Scores.NEWS2}} {
		if s.v != nil {
			parts = append(parts, fmt.Sprintf("%s %d", s.name, *s.v))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

// awaitAck waits until the bot's audit log holds an acknowledgement.
func awaitAck(ctx context.Context, auditPath string) error {
	db, err := sql.Open("sqlite", "file:"+auditPath+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM acks`).Scan(&n); err == nil && n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("the bot recorded no acknowledgement within 30 s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
