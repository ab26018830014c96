package homedir

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/medicus-health/medicus/crypto/pki"
	"github.com/medicus-health/medicus/server"
)

func TestInitThenLoadGivesWorkingConfig(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hs")
	cfg, err := Init(dir, "uk-freiburg.example", "127.0.0.1:0", InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded, cfg) {
		t.Fatalf("Load = %+v\nInit = %+v", loaded, cfg)
	}
	for _, f := range []string{ConfigFile, CAFile, "tls-cert.pem", "tls-key.pem", "medicus.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s missing: %v", f, err)
		}
	}
	if _, err := pki.LoadCertPool(filepath.Join(dir, CAFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, "uk-freiburg.example", "127.0.0.1:0", InitOptions{}); err == nil {
		t.Fatal("second Init of the same directory succeeded")
	}
}

func TestLoadRejectsUnknownKeysAndBadValues(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, "a.example", "127.0.0.1:8443", InitOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ConfigFile)
	orig, _ := os.ReadFile(path)
	os.WriteFile(path, append(append([]byte{}, orig...), "\nmax_mesage_bytes = 5\n"...), 0o600)
	if _, err := Load(dir); err == nil {
		t.Error("misspelt key accepted")
	}
	bad := strings.Replace(string(orig), `server_name = "a.example"`, `server_name = "Not A Name"`, 1)
	if bad == string(orig) {
		t.Fatal("config file has no server_name line to change")
	}
	os.WriteFile(path, []byte(bad), 0o600)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "server_name") {
		t.Errorf("invalid server_name: err = %v", err)
	}
}

// TestConfigFileStatesAndExplainsEveryKey decodes the written file over a
// zero Config (not the defaults), so a key of server.Config missing from the
// file, or written with another value than its default, shows; and it
// checks that a comment line precedes every key.
func TestConfigFileStatesAndExplainsEveryKey(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, "uk-freiburg.example", "127.0.0.1:8443", InitOptions{}); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var got server.Config
	if _, err := toml.Decode(string(text), &got); err != nil {
		t.Fatal(err)
	}
	want := server.DefaultConfig()
	want.ServerName, want.Listen = "uk-freiburg.example", "127.0.0.1:8443"
	want.TLSCertFile, want.TLSKeyFile, want.DatabaseFile, want.MediaDir = certFile, keyFile, dbFile, mediaDir
	typ := reflect.TypeOf(want)
	for i := range typ.NumField() {
		key := typ.Field(i).Tag.Get("toml")
		if key == "" {
			continue
		}
		if g, w := reflect.ValueOf(got).Field(i).Interface(), reflect.ValueOf(want).Field(i).Interface(); !reflect.DeepEqual(g, w) && !(reflect.ValueOf(g).Kind() == reflect.Slice && reflect.ValueOf(g).Len() == 0 && reflect.ValueOf(w).Len() == 0) {
			t.Errorf("key %s: file says %v, want the default %v (add it to configText in homedir.go)", key, g, w)
		}
		m := regexp.MustCompile(`(?m)^#.*\n` + regexp.QuoteMeta(key) + ` = `).Find(text)
		if m == nil && !regexp.MustCompile(`(?m)^#.*\n(\w+ = .*\n)+`+regexp.QuoteMeta(key)+` = `).Match(text) {
			t.Errorf("key %s has no explaining comment before it (or before its group)", key)
		}
	}
}

func TestInitWithOperatorCertificate(t *testing.T) {
	src := t.TempDir()
	ca, err := pki.NewCA("Hospital CA", pki.CAValidity)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := ca.Issue("chat.uk-freiburg.example", nil, pki.LeafValidity)
	other, _ := ca.Issue("chat.uk-freiburg.example", nil, pki.LeafValidity)
	certPath, keyPath, otherKey, caPath := filepath.Join(src, "c.pem"), filepath.Join(src, "k.pem"), filepath.Join(src, "o.pem"), filepath.Join(src, "ca.pem")
	for _, err := range []error{
		pki.WriteCertPEM(certPath, leaf.Cert), pki.WriteKeyPEM(keyPath, leaf.Key),
		pki.WriteKeyPEM(otherKey, other.Key), pki.WriteCertPEM(caPath, ca.Cert),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}

	bad := filepath.Join(t.TempDir(), "bad")
	if _, err := Init(bad, "uk-freiburg.example", "127.0.0.1:8443", InitOptions{TLSCertFile: certPath, TLSKeyFile: otherKey}); err == nil {
		t.Error("Init accepted a key that does not belong to the certificate")
	}
	if _, err := os.Stat(filepath.Join(bad, ConfigFile)); err == nil {
		t.Error("a refused Init wrote a config file")
	}

	dir := filepath.Join(t.TempDir(), "hs")
	cfg, err := Init(dir, "uk-freiburg.example", "127.0.0.1:8443", InitOptions{TLSCertFile: certPath, TLSKeyFile: keyPath, CACertFile: caPath})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
		t.Errorf("copied certificate and key: %v", err)
	}
	if st, err := os.Stat(cfg.TLSKeyFile); err != nil {
		t.Error(err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("copied key file has mode %v, want 0600", st.Mode().Perm())
	}
	got, err := os.ReadFile(filepath.Join(dir, CAFile))
	if want, _ := os.ReadFile(caPath); err != nil || string(got) != string(want) {
		t.Errorf("ca.pem is not the operator's CA certificate (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, caKeyFile)); err == nil {
		t.Error("a local CA key was created although the operator supplied a certificate")
	}
}
