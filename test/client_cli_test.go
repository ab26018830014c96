package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cliUser drives `medicus client` for one profile.
type cliUser struct {
	t       *testing.T
	profile string
	keyFile string
}

func newCLIUser(t *testing.T, hs *homeserver, user string) *cliUser {
	dir := t.TempDir()
	u := &cliUser{t: t, profile: filepath.Join(dir, "profile"), keyFile: filepath.Join(dir, "state.key")}
	lines := u.run(testPassword+"\n", "login", "--server", "https://"+hs.addr, "--ca", filepath.Join(hs.dir, "ca.pem"), "--user", user)
	if len(lines) != 1 || lines[0]["user_id"] != user {
		t.Fatalf("login printed %v", lines)
	}
	return u
}

// run runs a client subcommand with --json and returns its JSON lines.
func (u *cliUser) run(stdin string, args ...string) []map[string]any {
	u.t.Helper()
	out, err := u.exec(stdin, args...)
	if err != nil {
		u.t.Fatalf("medicus client %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			u.t.Fatalf("medicus client %s printed a non-JSON line %q", strings.Join(args, " "), l)
		}
		lines = append(lines, m)
	}
	return lines
}

func (u *cliUser) exec(stdin string, args ...string) (string, error) {
	full := append([]string{"client", "--profile", u.profile, "--key-file", u.keyFile, "--json"}, args...)
	cmd := exec.Command(medicusBin, full...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestClientCommand(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	aliceID, paulID := hs.addUser("alice", "doctor"), hs.addUser("paul", "patient")
	hs.start()
	alice, paul := newCLIUser(t, hs, aliceID), newCLIUser(t, hs, paulID)

	room := alice.run("", "room", "create", "--name", "Follow-up")[0]["room_id"].(string)
	alice.run("", "invite", room, paulID)
	joined := paul.run("", "sync")
	if !hasLine(joined, func(m map[string]any) bool { return m["type"] == "joined" && m["room"] == room }) {
		t.Fatalf("paul's sync after the invite: %v", joined)
	}
	alice.run("", "send", room, "How is the wound today? PLAINTEXT-CLI")
	alice.run("", "send-fhir", room, "testdata/observation-lactate.json")
	got := paul.run("", "sync")
	var types []string
	for _, m := range got {
		if c, ok := m["content"].(map[string]any); ok {
			types = append(types, c["type"].(string))
		}
	}
	if strings.Join(types, ",") != "text,fhir" {
		t.Fatalf("paul received %v", got)
	}
	hist := paul.run("", "history", room)
	if !hasLine(hist, func(m map[string]any) bool {
		c, _ := m["content"].(map[string]any)
		b, _ := c["body"].(map[string]any)
		return b != nil && strings.Contains(b["md"].(string), "PLAINTEXT-CLI")
	}) {
		t.Errorf("history lacks the text: %v", hist)
	}
	va, vp := alice.run("", "verify", paulID)[0], paul.run("", "verify", aliceID)[0]
	if va["safety_number"] == nil || va["safety_number"] != vp["safety_number"] {
		t.Errorf("safety numbers differ: %v vs %v", va, vp)
	}
	if devs := paul.run("", "devices"); len(devs) != 1 {
		t.Errorf("devices: %v", devs)
	}
	// Human output without --json.
	cmd := exec.Command(medicusBin, "client", "--profile", paul.profile, "--key-file", paul.keyFile, "history", room)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PLAINTEXT-CLI") || !strings.Contains(string(out), "Lactate") {
		t.Errorf("human history: %v\n%s", err, out)
	}
	// Errors are clear and exit non-zero.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"send", "!nosuchroomxxxxxxxxxx:uk-freiburg.example", "x"}, "not a member"},
		{[]string{"invite", room, aliceID}, "M_FORBIDDEN"},
		{[]string{"send-fhir", room, "testdata/observation-invalid.json"}, "invalid"},
		{[]string{"ack", room, "x"}, "message number"},
	} {
		out, err := paul.exec("", c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%v: err %v, output %q, want it to mention %q", c.args, err, out, c.want)
		}
	}
	if out, err := exec.Command(medicusBin, "client", "--profile", paul.profile, "--key-file", alice.keyFile, "rooms").CombinedOutput(); err == nil || !strings.Contains(string(out), "wrong passphrase or key file") {
		t.Errorf("the wrong key file opened the profile: %v %s", err, out)
	}
	hs.assertNoPlaintext([]byte("PLAINTEXT-CLI"))
}

func hasLine(lines []map[string]any, f func(map[string]any) bool) bool {
	for _, l := range lines {
		if f(l) {
			return true
		}
	}
	return false
}

// TestClientCallCommands: `medicus client answer` in one process, `call` in
// another, through a real homeserver; both reach connected, media flows,
// and `hangup` from a third process ends the call on both sides.
func TestClientCallCommands(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	aliceID, bobID := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	alice, bob := newCLIUser(t, hs, aliceID), newCLIUser(t, hs, bobID)
	room := alice.run("", "room", "create", "--name", "Consult")[0]["room_id"].(string)
	alice.run("", "invite", room, bobID)
	bob.run("", "sync")

	answer := bob.start("answer", "--from", aliceID)
	placed := alice.start("call", room, bobID, "--synthetic")
	for _, p := range []*cliProcess{answer, placed} {
		p.waitFor(t, func(m map[string]any) bool { return m["event"] == "connected" })
		p.waitFor(t, func(m map[string]any) bool {
			s, _ := m["stats"].(map[string]any)
			n, _ := s["packets_received"].(float64)
			return m["event"] == "stats" && n >= 50
		})
	}
	out, err := exec.Command(medicusBin, "client", "--profile", alice.profile, "hangup").CombinedOutput()
	if err != nil {
		t.Fatalf("hangup: %v\n%s", err, out)
	}
	for _, p := range []*cliProcess{answer, placed} {
		p.waitFor(t, func(m map[string]any) bool { return m["event"] == "ended" && m["reason"] == "user_hangup" })
		if err := p.wait(); err != nil {
			t.Errorf("%s exited with %v", p.name, err)
		}
	}
}

// cliProcess is a long-running `medicus client` command whose JSON lines
// are collected.
type cliProcess struct {
	name  string
	cmd   *exec.Cmd
	lines chan map[string]any
	done  chan error
}

func (u *cliUser) start(args ...string) *cliProcess {
	u.t.Helper()
	full := append([]string{"client", "--profile", u.profile, "--key-file", u.keyFile, "--json"}, args...)
	cmd := exec.Command(medicusBin, full...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		u.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	p := &cliProcess{name: strings.Join(args, " "), cmd: cmd, lines: make(chan map[string]any, 1024), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				p.lines <- m
			}
		}
		close(p.lines)
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		p.done <- err
	}()
	u.t.Cleanup(func() { cmd.Process.Kill() })
	return p
}

func (p *cliProcess) waitFor(t *testing.T, want func(map[string]any) bool) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case m, ok := <-p.lines:
			if !ok {
				t.Fatalf("%s ended before the expected line: %v", p.name, <-p.done)
			}
			if want(m) {
				return
			}
		case <-deadline:
			t.Fatalf("%s: expected line not printed within 60s", p.name)
		}
	}
}

func (p *cliProcess) wait() error {
	for range p.lines {
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("did not exit within 30s")
	}
}
