// Package test holds the end-to-end tests of medicus: they build the medicus
// binary, start real homeservers as child processes on loopback ports with
// real TLS certificates and SQLite files, and drive them over HTTPS and
// WebSocket through the client/api package.
package test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/crypto/pki"
)

var medicusBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "medicus-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	medicusBin = filepath.Join(dir, "medicus")
	build := exec.Command("go", "build", "-race", "-o", medicusBin, "../cmd/medicus")
	if os.Getenv("MEDICUS_E2E_NO_RACE") != "" {
		build = exec.Command("go", "build", "-o", medicusBin, "../cmd/medicus")
	}
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build medicus:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// homeserver is a medicus homeserver running as a child process.
type homeserver struct {
	t      testing.TB
	dir    string
	name   string
	addr   string
	roots  *x509.CertPool
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *bytes.Buffer
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func medicus(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(medicusBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("medicus %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newHomeserver initialises a homeserver directory; edit tweaks its config
// file before the first start (nil for none).
func newHomeserver(t testing.TB, name string, edit func(config string) string) *homeserver {
	t.Helper()
	return newHomeserverWith(t, name, nil, edit)
}

// newHomeserverWith is newHomeserver with further `server init` arguments.
func newHomeserverWith(t testing.TB, name string, initArgs []string, edit func(config string) string) *homeserver {
	t.Helper()
	hs := &homeserver{t: t, dir: filepath.Join(t.TempDir(), name), name: name, addr: freeAddr(t)}
	out := medicus(t, "", append([]string{"server", "init", "--dir", hs.dir, "--name", name, "--listen", hs.addr}, initArgs...)...)
	if !strings.Contains(out, filepath.Join(hs.dir, "ca.pem")) {
		t.Fatalf("server init did not print the ca.pem path:\n%s", out)
	}
	if edit != nil {
		path := filepath.Join(hs.dir, "medicus.toml")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(edit(string(b))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	roots, err := pki.LoadCertPool(filepath.Join(hs.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	hs.roots = roots
	return hs
}

const testPassword = "correct-horse-battery"

func (hs *homeserver) addUser(local, role string) string {
	hs.t.Helper()
	medicus(hs.t, testPassword+"\n", "admin", "user", "add", "--dir", hs.dir, local, "--role", role)
	return "@" + local + ":" + hs.name
}

// start runs the server and waits until it answers /v1/health.
func (hs *homeserver) start() {
	t := hs.t
	t.Helper()
	hs.stderr = &bytes.Buffer{}
	args := []string{"server", "run", "--dir", hs.dir}
	if p := os.Getenv("MEDICUS_E2E_CPUPROFILE"); p != "" {
		args = append(args, "--cpu-profile", p)
	}
	hs.cmd = exec.Command(medicusBin, args...)
	hs.cmd.Stderr = hs.stderr
	if err := hs.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hs.exited = make(chan struct{})
	go func() { hs.cmd.Wait(); close(hs.exited) }()
	t.Cleanup(func() { hs.stop(syscall.SIGTERM) })
	c := hs.client()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Health(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-hs.exited:
			t.Fatalf("homeserver exited during start-up: %s", hs.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("homeserver not healthy after 30s: %v\n%s", err, hs.stderr)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a readiness probe, not a synchronisation
	}
}

// stop sends sig and waits for the process to exit.
func (hs *homeserver) stop(sig syscall.Signal) {
	if hs.cmd == nil || hs.cmd.Process == nil {
		return
	}
	select {
	case <-hs.exited:
		return
	default:
	}
	hs.cmd.Process.Signal(sig)
	select {
	case <-hs.exited:
	case <-time.After(30 * time.Second):
		hs.cmd.Process.Kill()
		<-hs.exited
		hs.t.Errorf("homeserver did not exit within 30s of %v", sig)
	}
}

func (hs *homeserver) client() *api.Client {
	c, err := api.New("https://"+hs.addr, hs.roots)
	if err != nil {
		hs.t.Fatal(err)
	}
	return c
}

func (hs *homeserver) login(user string) *api.Client {
	hs.t.Helper()
	c := hs.client()
	if _, err := c.Login(context.Background(), user, testPassword, "e2e"); err != nil {
		hs.t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// assertNoPlaintext fails if any file of the homeserver directory (database,
// WAL, media) contains marker.
func (hs *homeserver) assertNoPlaintext(marker []byte) {
	hs.t.Helper()
	checked := 0
	filepath.WalkDir(hs.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			hs.t.Fatal(err)
		}
		checked++
		if bytes.Contains(b, marker) {
			hs.t.Errorf("server file %s contains the plaintext marker %q", path, marker)
		}
		return nil
	})
	if checked < 3 {
		hs.t.Errorf("only %d files checked for plaintext; expected database, WAL and more", checked)
	}
}

// setConfig replaces old by new in a config file's text, failing the test if
// old is not there (so a changed default cannot silently void a test).
func setConfig(t testing.TB, cfg, old, new string) string {
	t.Helper()
	if !strings.Contains(cfg, old) {
		t.Fatalf("config file lacks %q", old)
	}
	return strings.Replace(cfg, old, new, 1)
}

// sealer encrypts test payloads client-side as a real client would, so the
// server only ever sees ciphertext.
type sealer struct{ aead cipher.AEAD }

func newSealer(t *testing.T) sealer {
	key := make([]byte, 32)
	rand.Read(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := cipher.NewGCM(b)
	return sealer{g}
}

func (s sealer) seal(plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, nil)
}

func (s sealer) open(t *testing.T, ct []byte) []byte {
	t.Helper()
	n := s.aead.NonceSize()
	if len(ct) < n {
		t.Fatalf("ciphertext of %d bytes too short", len(ct))
	}
	pt, err := s.aead.Open(nil, ct[:n], ct[n:], nil)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return pt
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// peakRSS returns the homeserver process's peak resident memory (VmHWM),
// or 0 where /proc is not available.
func (hs *homeserver) peakRSS() int64 {
	if hs.cmd == nil || hs.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", hs.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}
