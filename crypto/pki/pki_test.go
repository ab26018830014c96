package pki

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIssuedCertificateVerifiesAgainstCAOnly(t *testing.T) {
	ca, err := NewCA("Test CA", CAValidity)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("uk-freiburg.example", []net.IP{net.ParseIP("127.0.0.1")}, LeafValidity)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, name := range []string{"uk-freiburg.example", "127.0.0.1"} {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("verify for %s: %v", name, err)
		}
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool}); err == nil {
		t.Error("certificate verified for a name it was not issued for")
	}
	other, _ := NewCA("Other CA", CAValidity)
	otherPool := x509.NewCertPool()
	otherPool.AddCert(other.Cert)
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{DNSName: "uk-freiburg.example", Roots: otherPool}); err == nil {
		t.Error("certificate verified against a foreign CA")
	}
	if got := leaf.Cert.NotAfter.Sub(leaf.Cert.NotBefore); got > LeafValidity+time.Hour {
		t.Errorf("leaf validity %v exceeds %v", got, LeafValidity)
	}
}

func TestPEMFilesRoundTripWithPrivateKeyMode(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewCA("Test CA", CAValidity)
	cp, kp := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	if err := WriteCertPEM(cp, ca.Cert); err != nil {
		t.Fatal(err)
	}
	if err := WriteKeyPEM(kp, ca.Key); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(kp); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	if err := WriteKeyPEM(kp, ca.Key); err == nil {
		t.Error("overwrote an existing key file")
	}
	loaded, err := LoadCA(cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) || !loaded.Key.Equal(ca.Key) {
		t.Error("loaded CA differs")
	}
	if _, err := LoadCertPool(cp); err != nil {
		t.Error(err)
	}
}

func TestLoadCARefusesAKeyOfAnotherCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, _ := NewCA("Test CA", CAValidity)
	other, _ := NewCA("Other CA", CAValidity)
	leaf, _ := ca.Issue("uk-freiburg.example", nil, LeafValidity)
	write := func(name string, cert *x509.Certificate) (certPath, keyPath string) {
		cp, kp := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		if err := WriteCertPEM(cp, cert); err != nil {
			t.Fatal(err)
		}
		return cp, kp
	}
	cp, kp := write("mixed", ca.Cert)
	if err := WriteKeyPEM(kp, other.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(cp, kp); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("CA certificate with another CA's key: got %v, want ErrKeyMismatch", err)
	}
	cp, kp = write("leaf", leaf.Cert)
	if err := WriteKeyPEM(kp, leaf.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(cp, kp); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("leaf certificate with its own key: got %v, want ErrKeyMismatch", err)
	}
}
