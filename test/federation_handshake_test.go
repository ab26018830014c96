package test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-health/medicus/crypto/pki"
)

// craftCert issues a certificate for name from ca, valid from notBefore to
// notAfter (an expired one when both are past).
func craftCert(t *testing.T, ca *pki.CA, name string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestFederationRefusesPeersAtTheHandshake dials the federation port of a
// running homeserver process with client certificates that must not get in:
// from another CA, expired, revoked, for a name not on the allow-list. Each
// is refused during the TLS handshake, before any request; a valid peer
// certificate gets an answer.
func TestFederationRefusesPeersAtTheHandshake(t *testing.T) {
	f := newFederation(t, freiburg, heidelberg)
	ca, err := pki.LoadFederationCA(f.caDir)
	if err != nil {
		t.Fatal(err)
	}
	// A stolen Heidelberg certificate, revoked before the server starts.
	stolenDir := filepath.Join(t.TempDir(), "stolen")
	if _, err := ca.IssueFederation(heidelberg, stolenDir, pki.LeafValidity); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Revoke(f.caDir, filepath.Join(stolenDir, pki.FederationCertFile)); err != nil {
		t.Fatal(err)
	}
	f.start()
	other, _ := pki.NewCA("Some other CA", pki.CAValidity)
	now := time.Now()
	valid := craftCert(t, ca, heidelberg, now.Add(-time.Hour), now.Add(time.Hour))
	stolenCert, err := tls.LoadX509KeyPair(filepath.Join(stolenDir, pki.FederationCertFile), filepath.Join(stolenDir, pki.FederationKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dial := func(cert tls.Certificate) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", f.fedAddr[freiburg], &tls.Config{
			MinVersion: tls.VersionTLS13, RootCAs: roots, ServerName: freiburg, Certificates: []tls.Certificate{cert},
		})
		if err != nil {
			return err
		}
		defer conn.Close()
		// In TLS 1.3 the server checks the client certificate after the
		// client's side of the handshake is done: the refusal arrives as
		// an alert on the first read.
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "GET /fed/v1/none HTTP/1.1\r\nHost: "+freiburg+"\r\n\r\n"); err != nil {
			return err
		}
		_, err = http.ReadResponse(bufio.NewReader(conn), nil)
		return err
	}
	if err := dial(valid); err != nil {
		t.Fatalf("a valid peer certificate was refused: %v", err)
	}
	for name, cert := range map[string]tls.Certificate{
		"another CA":   craftCert(t, other, heidelberg, now.Add(-time.Hour), now.Add(time.Hour)),
		"expired":      craftCert(t, ca, heidelberg, now.Add(-48*time.Hour), now.Add(-24*time.Hour)),
		"revoked":      stolenCert,
		"not allowed":  craftCert(t, ca, "rogue-clinic.test", now.Add(-time.Hour), now.Add(time.Hour)),
		"another name": craftCert(t, ca, stuttgart, now.Add(-time.Hour), now.Add(time.Hour)),
	} {
		err := dial(cert)
		if err == nil {
			t.Errorf("%s: the server answered", name)
			continue
		}
		if !strings.Contains(err.Error(), "tls: ") && !strings.Contains(err.Error(), "remote error") {
			t.Errorf("%s: refused, but not by TLS: %v", name, err)
		}
	}
}
