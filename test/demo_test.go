package test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/crypto/pki"
)

// TestDemoRunsThreeFederatedHospitals runs the README's first command (as
// the built binary): three hospitals, users of every role, a scripted
// cross-hospital second opinion; it logs in with a printed account and
// checks that Ctrl-C stops it and removes its directory.
func TestDemoRunsThreeFederatedHospitals(t *testing.T) {
	cmd := exec.Command(medicusBin, "demo")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	var dir string
	urls, cas := map[string]string{}, map[string]string{} // server name → URL, CA file
	var current string
	users := map[string][2]string{} // role → user, password
	var seen []string               // what the scripted clients saw
	lines := bufio.NewScanner(stdout)
	urlRE := regexp.MustCompile(`^(\S+) is running at (https://\S+)`)
	userRE := regexp.MustCompile(`^\s*(@\S+)\s+(doctor|nurse|patient|bot|admin)\s+(\S+)$`)
	for lines.Scan() {
		line := lines.Text()
		if m := urlRE.FindStringSubmatch(line); m != nil {
			current = m[1]
			urls[current] = m[2]
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "CA certificate to trust: "); ok {
			cas[current] = v
		}
		if v, ok := strings.CutPrefix(line, "directory: "); ok {
			dir = strings.Fields(v)[0]
		}
		if m := userRE.FindStringSubmatch(line); m != nil {
			users[m[2]] = [2]string{m[1], m[3]}
		}
		if strings.Contains(line, "sees") || strings.Contains(line, "none contains") || strings.Contains(line, "acknowledgement") {
			seen = append(seen, line)
		}
		if strings.Contains(line, "Press Ctrl-C to stop") {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	// The scripted second opinion: the colleague and the patient decrypt
	// the note, the lab result and the image; the server holds no plaintext.
	all := strings.Join(seen, "\n")
	for _, want := range []string{
		"consulted colleague    sees  #8", "Would you escalate antibiotics?",
		"patient                sees  #9 @dr.weber:uk-freiburg.test: 🧪 FHIR Observation Lactate = 4.2 mmol/L",
		"abdomen-ct.png (image/png", "requesting doctor      sees  #11 @dr.yilmaz:uk-heidelberg.test: ↪ Yes: meropenem",
		"none contains the texts above",
		"ICU nurse              sees", "Sepsis risk alert for stay-", "recorded the nurse's acknowledgement",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("the demo's scenario output lacks %q:\n%s", want, all)
		}
	}
	for _, role := range []string{"doctor", "nurse", "patient", "bot", "admin"} {
		if _, ok := users[role]; !ok {
			t.Fatalf("demo printed no %s account", role)
		}
	}
	if len(urls) != 3 || len(cas) != 3 {
		t.Fatalf("demo printed hospitals %v with CAs %v, want three", urls, cas)
	}
	doc := users["doctor"]
	_, server, _ := strings.Cut(doc[0], ":")
	roots, err := pki.LoadCertPool(cas[server])
	if err != nil {
		t.Fatalf("demo CA %q: %v", cas[server], err)
	}
	c, err := api.New(urls[server], roots)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Login(ctx, doc[0], doc[1], "demo-test"); err != nil {
		t.Fatalf("login with the printed doctor account: %v", err)
	}
	if _, err := c.CreateRoom(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	c.CloseIdle()
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo did not exit cleanly on SIGINT: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("demo directory %s still exists after exit (%v)", dir, err)
	}
}
