package test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/crypto/pki"
	"github.com/medicus-health/medicus/internal/demo"
	"github.com/medicus-health/medicus/sepsisbot/bot"
	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
	"github.com/medicus-health/medicus/sepsisbot/hl7"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// sepsisPatient is the pseudonym of the deteriorating patient; it must
// never appear in the homeserver's files.
const sepsisPatient = "icu3-bed07-ps4711"

// TestSepsisBotAlertsAcknowledgementAndEscalation runs a homeserver, a
// doctor, a nurse, an on-call doctor and the sepsis bot (in-process, with
// its own client session as a bot user). Vital signs pushed over FHIR and
// laboratory results over HL7 v2 MLLP make the bot post an encrypted alert
// into the ICU room; the nurse decrypts it; nobody acknowledges in time, so
// it escalates to the on-call room; the nurse then acknowledges it, and the
// bot's audit log records the escalation and the acknowledgement. The
// homeserver's files hold neither the pseudonym nor the bed.
func TestSepsisBotAlertsAcknowledgementAndEscalation(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	doctorID, nurseID, oncallID := hs.addUser("dr.weber", "doctor"), hs.addUser("pfl.schulz", "nurse"), hs.addUser("dr.bereitschaft", "doctor")
	botID := hs.addUser("sepsis-bot", "bot")
	hs.start()
	ctx := ctxT(t)
	doctor, nurse, oncall := newDevice(t, hs, doctorID), newDevice(t, hs, nurseID), newDevice(t, hs, oncallID)

	// The bot, with a FHIR endpoint under a certificate of its own CA.
	dir := t.TempDir()
	fhirCA := writeBotFiles(t, dir)
	icu, err := doctor.CreateRoom(ctx, "ICU 3")
	if err != nil {
		t.Fatal(err)
	}
	onCallRoom, err := doctor.CreateRoom(ctx, "ICU 3 on call")
	if err != nil {
		t.Fatal(err)
	}
	cfg := bot.Config{
		Homeserver: "https://" + hs.addr, CAFile: filepath.Join(hs.dir, "ca.pem"), User: botID,
		PasswordFile: filepath.Join(dir, "bot.password"), ProfileDir: filepath.Join(dir, "profile"),
		StateKeyFile: filepath.Join(dir, "state.key"), DataDir: filepath.Join(dir, "data"),
		ICURoom: icu, EscalationRoom: onCallRoom, EscalateAfter: 3 * time.Second, TimeZone: "UTC",
		Threshold:  0, // the model's own
		FHIRListen: "127.0.0.1:0", FHIRCertFile: filepath.Join(dir, "fhir.crt"), FHIRKeyFile: filepath.Join(dir, "fhir.key"),
		FHIRTokenFile: filepath.Join(dir, "fhir.token"), MLLPListen: "127.0.0.1:0",
	}
	b, err := bot.New(ctx, cfg, bot.Options{Logger: slog.New(slog.DiscardHandler), TickInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bot: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("bot did not stop")
		}
		b.Close()
	})

	// The doctor invites the nurse and the bot into the ICU room, and the
	// on-call doctor and the bot into the on-call room.
	for _, inv := range []struct{ room, user string }{{icu, nurseID}, {icu, botID}, {onCallRoom, oncallID}, {onCallRoom, botID}} {
		if err := doctor.Invite(ctx, inv.room, inv.user); err != nil {
			t.Fatalf("invite %s: %v", inv.user, err)
		}
	}

	// 30 hours of a patient becoming septic, hour by hour: vital signs over
	// FHIR and, every six hours, laboratory results over HL7 v2 (which also
	// name the bed).
	start := time.Now().Add(-31 * time.Hour).Truncate(time.Hour)
	lab, err := net.Dial("tcp", b.MLLPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	labReader := bufio.NewReader(lab)
	fhirClient := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: fhirCA}}}
	const hours = 30
	for h := range hours {
		if h%6 == 0 {
			sendLabs(t, ctx, lab, labReader, start, h, hours)
		}
		postVitals(t, fhirClient, "https://"+b.FHIRAddr()+"/fhir", start, h, hours)
	}

	// The nurse receives the encrypted alert in the ICU room.
	alertMsg, alert := waitForAlert(t, nurse, icu, 1)
	if alert.Patient != sepsisPatient || alert.Bed != "ICU3/07" || alert.Risk <= 0 || alert.Scores.NEWS2 == nil || len(alert.Top) == 0 {
		t.Fatalf("alert %+v", alert)
	}
	if got := alert.DataTime.Time(); got.Before(start) || got.After(time.Now()) {
		t.Fatalf("alert data time %v", got)
	}

	// Nobody acknowledges within three seconds: the on-call doctor gets it.
	_, esc := waitForAlert(t, oncall, onCallRoom, 2)
	// (The escalated alert is normally this one; with another model the
	// risk may dip and a second episode open, so only the patient is
	// compared.)
	if esc.Patient != sepsisPatient || esc.Bed != "ICU3/07" || esc.Level != 2 {
		t.Fatalf("escalation %+v of alert %+v", esc, alert)
	}

	// The nurse acknowledges; the bot records it.
	if _, err := nurse.AckAlert(ctx, icu, alertMsg.Seq, "lactate repeated, fluids started"); err != nil {
		t.Fatal(err)
	}
	audit, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.DataDir, "audit.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer audit.Close()
	waitFor(t, "the acknowledgement in the audit log", func() bool {
		var n int
		return audit.QueryRow(`SELECT COUNT(*) FROM acks WHERE by_user = ?`, nurseID).Scan(&n) == nil && n == 1
	})
	var escalations int
	if err := audit.QueryRow(`SELECT COUNT(*) FROM escalations WHERE from_room = ? AND to_room = ?`, icu, onCallRoom).Scan(&escalations); err != nil || escalations != 1 {
		t.Fatalf("%d escalations audited, %v", escalations, err)
	}

	for _, marker := range []string{sepsisPatient, "ICU3/07", "Lactate"} {
		hs.assertNoPlaintext([]byte(marker))
	}
}

// writeBotFiles writes the bot's password, FHIR token and a FHIR server
// certificate for 127.0.0.1 from a new CA, whose pool it returns.
func writeBotFiles(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	for name, text := range map[string]string{"bot.password": testPassword, "fhir.token": "icu3-fhir-token"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, err := pki.NewCA("ICU integration CA", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("localhost", []net.IP{net.IPv4(127, 0, 0, 1)}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCertPEM(filepath.Join(dir, "fhir.crt"), leaf.Cert); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKeyPEM(filepath.Join(dir, "fhir.key"), leaf.Key); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// deteriorate interpolates from a stable value at hour 0 to a septic one
// at the last hour.
func deteriorate(from, to float64, h, hours int) float64 {
	return from + (to-from)*float64(h)/float64(hours-1)
}

// postVitals posts the vital signs of hour h as one transaction Bundle.
func postVitals(t *testing.T, hc *http.Client, base string, start time.Time, h, hours int) {
	t.Helper()
	at := start.Add(time.Duration(h)*time.Hour + 15*time.Minute)
	var obs []*fhirobs.Observation
	for _, v := range []struct {
		name     string
		from, to float64
	}{{"HR", 84, 131}, {"Resp", 15, 32}, {"Temp", 36.9, 39.3}, {"SBP", 127, 83}, {"MAP", 88, 57}, {"DBP", 68, 44}, {"O2Sat", 98, 88}} {
		o, err := fhirobs.Encode("", fhirobs.Measurement{Patient: sepsisPatient, Variable: v.name, Value: deteriorate(v.from, v.to, h, hours), Time: at})
		if err != nil {
			t.Fatal(err)
		}
		obs = append(obs, o)
	}
	tx, err := fhirobs.NewTransaction(obs)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(tx)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer icu3-fhir-token")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("hour %d: FHIR answered %s", h, resp.Status)
	}
}

// sendLabs sends the blood gas and chemistry of hour h as an ORU^R01.
func sendLabs(t *testing.T, ctx context.Context, conn net.Conn, r *bufio.Reader, start time.Time, h, hours int) {
	t.Helper()
	ts := start.Add(time.Duration(h)*time.Hour+40*time.Minute).UTC().Format("20060102150405") + "+0000"
	msg := strings.Join([]string{
		`MSH|^~\&|LAB|UKF|SEPSISBOT|ICU3|` + ts + `||ORU^R01^ORU_R01|LAB` + fmt.Sprint(h) + `|P|2.5`,
		`PID|1||` + sepsisPatient + `^^^UKF^PI`,
		`PV1|1|I|ICU3^07`,
		`OBR|1|||LAB^Labor^L|||` + ts,
		fmt.Sprintf(`OBX|1|NM|2524-7^Lactate^LN||%.1f|mmol/L|||||F`, deteriorate(1.0, 5.1, h, hours)),
		fmt.Sprintf(`OBX|2|NM|6690-2^Leukocytes^LN||%.1f|10*3/uL|||||F`, deteriorate(8, 21, h, hours)),
		fmt.Sprintf(`OBX|3|NM|14682-9^Creatinine^LN||%.0f|umol/L|||||F`, deteriorate(80, 210, h, hours)),
		fmt.Sprintf(`OBX|4|NM|777-3^Platelets^LN||%.0f|10*3/uL|||||F`, deteriorate(250, 90, h, hours)),
	}, "\r") + "\r"
	ack, err := hl7.Send(ctx, conn, r, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ack, []byte("MSA|AA|LAB"+fmt.Sprint(h))) {
		t.Fatalf("hour %d: acknowledgement %q", h, ack)
	}
}

// waitForAlert syncs d until an alert of the given level arrives in room.
func waitForAlert(t *testing.T, d *device, room string, level int) (client.Message, *content.Alert) {
	t.Helper()
	var found client.Message
	var alert *content.Alert
	waitFor(t, fmt.Sprintf("a level %d alert for %s", level, d.user), func() bool {
		for _, m := range d.sync() {
			if m.Room != room || m.Type != client.TypeContent {
				continue
			}
			cm, err := m.Decode()
			if err != nil {
				continue
			}
			if a, ok := cm.Body.(*content.Alert); ok && a.Level == level {
				found, alert = m, a
				return true
			}
		}
		return false
	})
	return found, alert
}

// waitFor polls cond until it holds, failing after two minutes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // polling interval of a condition, not a synchronisation
	}
}

// TestICUDemoScenario plays the ICU scenario of `medicus demo` against a
// real homeserver, with a synthetic patient and, when set A is present,
// with replayed PhysioNet stays.
func TestICUDemoScenario(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.test", nil)
	doctorID, nurseID, botID := hs.addUser("dr.weber", "doctor"), hs.addUser("pfl.schulz", "nurse"), hs.addUser("sepsis-bot", "bot")
	hs.start()
	ca, err := os.ReadFile(filepath.Join(hs.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	account := func(user string) demo.Account {
		return demo.Account{UserID: user, Password: testPassword, ServerURL: "https://" + hs.addr, CA: ca}
	}
	dataDir, _ := physionet.DataDir()
	var out bytes.Buffer
	sc := &demo.Scenario{Dir: t.TempDir(), Out: &out}
	if err := sc.ICU(ctxT(t), account(doctorID), account(nurseID), account(botID), dataDir); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{"ICU nurse              sees", "risk", "recorded the nurse's acknowledgement"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	for _, s := range demo.ICUSecrets {
		hs.assertNoPlaintext([]byte(s))
	}
}

// TestSepsisBotRunCommand starts `medicus sepsisbot run --config FILE` as a
// process, checks that its FHIR endpoint takes observations, and stops it
// with SIGTERM.
func TestSepsisBotRunCommand(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	doctorID, botID := hs.addUser("dr.weber", "doctor"), hs.addUser("sepsis-bot", "bot")
	hs.start()
	doctor := newDevice(t, hs, doctorID)
	icu, err := doctor.CreateRoom(ctxT(t), "ICU 3")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	roots := writeBotFiles(t, dir)
	fhirAddr, mllpAddr := freeAddr(t), freeAddr(t)
	config := strings.NewReplacer(
		`"https://uk-freiburg.example:8448"`, `"https://`+hs.addr+`"`,
		`"ca.pem"`, `"`+filepath.Join(hs.dir, "ca.pem")+`"`,
		`"@sepsis-bot:uk-freiburg.example"`, `"`+botID+`"`,
		`"!replace-with-the-icu-room:uk-freiburg.example"`, `"`+icu+`"`,
		`escalation_room = "!replace-with-the-on-call-room:uk-freiburg.example"`, ``,
		`escalate_after = "30m"`, `escalate_after = "0s"`,
		`"0.0.0.0:8443"`, `"`+fhirAddr+`"`,
		`"0.0.0.0:2575"`, `"`+mllpAddr+`"`,
	).Replace(bot.ExampleConfig)
	configPath := filepath.Join(dir, "sepsisbot.toml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(medicusBin, "sepsisbot", "run", "--config", configPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	waited := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	defer func() {
		cmd.Process.Kill() // no-op after a clean exit
		<-waited
	}()

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	waitFor(t, "the bot's FHIR endpoint", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("sepsisbot run exited: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := hc.Get("https://" + fhirAddr + "/fhir/metadata")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	postVitals(t, hc, "https://"+fhirAddr+"/fhir", start, 0, 2)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("sepsisbot run: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("sepsisbot run did not stop on SIGTERM\n%s", stderr.String())
	}
	// The measurements were stored durably before the endpoint answered.
	// (Read-write: the bot has stopped, and a read-only open of a WAL file
	// fails when its -shm file is gone.)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "data", "patients.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM measurements WHERE patient = ?`, sepsisPatient).Scan(&n); err != nil || n != 7 {
		t.Fatalf("%d measurements stored, %v", n, err)
	}
}
