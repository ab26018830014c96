package pki

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func initTestFederationCA(t *testing.T) (*CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "federation-ca")
	ca, err := InitFederationCA(dir, "Test Region Health Federation CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

func crlSerials(t *testing.T, dir string, ca *CA) []string {
	t.Helper()
	crl, err := LoadCRL(filepath.Join(dir, CRLFile), ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range crl.RevokedCertificateEntries {
		out = append(out, e.SerialNumber.String())
	}
	slices.Sort(out)
	return out
}

func TestInitFederationCAWritesOfflineKeyAndEmptyCRL(t *testing.T) {
	ca, dir := initTestFederationCA(t)
	if !FederationCAExists(dir) {
		t.Error("FederationCAExists is false after InitFederationCA")
	}
	if FederationCAExists(t.TempDir()) {
		t.Error("FederationCAExists is true for an empty directory")
	}
	if st, err := os.Stat(filepath.Join(dir, CAKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("CA key file: %v, mode %v; want mode 0600", err, st.Mode().Perm())
	}
	loaded, err := LoadFederationCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Cert.Equal(ca.Cert) || !loaded.Key.Equal(ca.Key) || !loaded.Cert.IsCA {
		t.Error("LoadFederationCA did not return the CA that InitFederationCA created")
	}
	if loaded.Cert.Subject.CommonName != "Test Region Health Federation CA" {
		t.Errorf("CA name %q", loaded.Cert.Subject.CommonName)
	}
	if got := crlSerials(t, dir, ca); len(got) != 0 {
		t.Errorf("new CA's CRL lists %v", got)
	}
	if _, err := InitFederationCA(dir, "Second CA"); err == nil {
		t.Error("InitFederationCA overwrote an existing CA")
	}
	again, err := LoadFederationCA(dir)
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Errorf("the CA changed after a refused second init: %v", err)
	}
}

func TestIssueFederationNamesOnlyTheServer(t *testing.T) {
	ca, _ := initTestFederationCA(t)
	out := filepath.Join(t.TempDir(), "uk-freiburg")
	cert, err := ca.IssueNewFederation("uk-freiburg.test", out, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cert.DNSNames, []string{"uk-freiburg.test"}) || len(cert.IPAddresses) != 0 || len(cert.URIs) != 0 || len(cert.EmailAddresses) != 0 {
		t.Errorf("names: DNS %v IP %v URI %v email %v; want only DNS uk-freiburg.test", cert.DNSNames, cert.IPAddresses, cert.URIs, cert.EmailAddresses)
	}
	if cert.IsCA {
		t.Error("server certificate is a CA")
	}
	if got := time.Until(cert.NotAfter); got > 30*24*time.Hour || got < 29*24*time.Hour {
		t.Errorf("certificate valid for %v more, want about 30 days", got)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: "uk-freiburg.test", Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(out, FederationCertFile), filepath.Join(out, FederationKeyFile))
	if err != nil {
		t.Fatalf("written certificate and key do not form a pair: %v", err)
	}
	if !pair.Leaf.Equal(cert) {
		t.Error("file holds another certificate than the one returned")
	}
	if st, _ := os.Stat(filepath.Join(out, FederationKeyFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}

	_, err = ca.IssueNewFederation("uk-freiburg.test", out, 30*24*time.Hour)
	if !errors.Is(err, ErrFederationCertExists) {
		t.Errorf("second issue into the same directory: %v, want ErrFederationCertExists", err)
	}
	if again, _ := LoadCertificate(filepath.Join(out, FederationCertFile)); !again.Equal(cert) {
		t.Error("a refused issue replaced the certificate")
	}
}

func TestRenewFederationReplacesCertificateAndKey(t *testing.T) {
	ca, _ := initTestFederationCA(t)
	out := t.TempDir()
	first, err := ca.IssueNewFederation("uk-heidelberg.test", out, 10*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	firstPair, _ := tls.LoadX509KeyPair(filepath.Join(out, FederationCertFile), filepath.Join(out, FederationKeyFile))

	old, renewed, err := ca.RenewFederation("uk-heidelberg.test", out, 90*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !old.Equal(first) {
		t.Error("RenewFederation returned another old certificate")
	}
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Error("renewed certificate kept the serial number")
	}
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Errorf("renewed expiry %v is not after the old %v", renewed.NotAfter, first.NotAfter)
	}
	if !slices.Equal(renewed.DNSNames, []string{"uk-heidelberg.test"}) {
		t.Errorf("renewed names %v", renewed.DNSNames)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(out, FederationCertFile), filepath.Join(out, FederationKeyFile))
	if err != nil {
		t.Fatalf("renewed files do not form a pair: %v", err)
	}
	if !pair.Leaf.Equal(renewed) {
		t.Error("files do not hold the renewed certificate")
	}
	if pair.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(firstPair.Leaf.PublicKey) {
		t.Error("renewal kept the old key")
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 2 {
		t.Errorf("renewal left %d files in the output directory, want 2", len(entries))
	}
}

func TestRenewFederationRefusesWhatItShouldNotReplace(t *testing.T) {
	ca, _ := initTestFederationCA(t)
	other, _ := initTestFederationCA(t)
	mine := t.TempDir()
	if _, err := ca.IssueNewFederation("uk-freiburg.test", mine, LeafValidity); err != nil {
		t.Fatal(err)
	}
	foreign := t.TempDir()
	if _, err := other.IssueNewFederation("uk-freiburg.test", foreign, LeafValidity); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, server, dir string
		want              error
	}{
		{"no certificate yet", "uk-freiburg.test", t.TempDir(), ErrNoFederationCert},
		{"certificate of another server", "klinikum-stuttgart.test", mine, ErrWrongServer},
		{"certificate of another CA", "uk-freiburg.test", foreign, ErrForeignCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadFile(filepath.Join(tc.dir, FederationCertFile))
			_, _, err := ca.RenewFederation(tc.server, tc.dir, LeafValidity)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			after, _ := os.ReadFile(filepath.Join(tc.dir, FederationCertFile))
			if string(before) != string(after) {
				t.Error("a refused renewal changed the certificate file")
			}
		})
	}
}

func TestRevokeAddsToCRLThatSurvivesReload(t *testing.T) {
	ca, dir := initTestFederationCA(t)
	certs := map[string]*x509.Certificate{}
	files := map[string]string{}
	for _, n := range []string{"uk-freiburg.test", "uk-heidelberg.test", "klinikum-stuttgart.test"} {
		out := filepath.Join(t.TempDir(), n)
		c, err := ca.IssueNewFederation(n, out, LeafValidity)
		if err != nil {
			t.Fatal(err)
		}
		certs[n], files[n] = c, filepath.Join(out, FederationCertFile)
	}
	revoked, err := ca.Revoke(dir, files["uk-heidelberg.test"])
	if err != nil {
		t.Fatal(err)
	}
	if !revoked.Equal(certs["uk-heidelberg.test"]) {
		t.Error("Revoke returned another certificate")
	}
	// A CA loaded again from the directory (the operator's next command)
	// adds to the same list.
	reloaded, err := LoadFederationCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reloaded.Revoke(dir, files["klinikum-stuttgart.test"]); err != nil {
		t.Fatal(err)
	}
	want := []string{certs["uk-heidelberg.test"].SerialNumber.String(), certs["klinikum-stuttgart.test"].SerialNumber.String()}
	slices.Sort(want)
	if got := crlSerials(t, dir, ca); !slices.Equal(got, want) {
		t.Errorf("CRL serials %v, want %v", got, want)
	}
	for n, c := range certs {
		at, ok, err := ca.RevokedAt(dir, c)
		if err != nil {
			t.Fatal(err)
		}
		if ok != (n != "uk-freiburg.test") {
			t.Errorf("RevokedAt(%s) = %v", n, ok)
		}
		if ok && (at.IsZero() || at.After(time.Now())) {
			t.Errorf("revocation time of %s is %v", n, at)
		}
	}
}

func TestRevokeRefusesCertificateOfAnotherCA(t *testing.T) {
	ca, dir := initTestFederationCA(t)
	other, _ := initTestFederationCA(t)
	out := t.TempDir()
	if _, err := other.IssueNewFederation("uk-freiburg.test", out, LeafValidity); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Revoke(dir, filepath.Join(out, FederationCertFile)); err == nil {
		t.Error("revoked a certificate this CA did not issue")
	}
	if got := crlSerials(t, dir, ca); len(got) != 0 {
		t.Errorf("CRL lists %v after a refused revocation", got)
	}
	if _, err := ca.Revoke(dir, filepath.Join(out, FederationKeyFile)); err == nil {
		t.Error("revoked a key file as if it were a certificate")
	}
}

func TestLoadCRLRefusesCRLOfAnotherCA(t *testing.T) {
	ca, dir := initTestFederationCA(t)
	other, otherDir := initTestFederationCA(t)
	if _, err := LoadCRL(filepath.Join(otherDir, CRLFile), ca.Cert); err == nil {
		t.Error("LoadCRL accepted a CRL signed by another CA")
	}
	if _, err := LoadCRL(filepath.Join(dir, CRLFile), other.Cert); err == nil {
		t.Error("LoadCRL accepted this CA's CRL for another CA")
	}
	if _, err := LoadCRL(filepath.Join(dir, CRLFile), ca.Cert); err != nil {
		t.Errorf("LoadCRL refused the CA's own CRL: %v", err)
	}
}

func TestLoadCRLRejectsMissingAndMalformedFiles(t *testing.T) {
	ca, dir := initTestFederationCA(t)
	if _, err := LoadCRL(filepath.Join(dir, "absent.pem"), ca.Cert); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing CRL: %v, want os.ErrNotExist", err)
	}
	for name, data := range map[string]string{
		"empty":          "",
		"certificate":    mustRead(t, filepath.Join(dir, CACertFile)),
		"corrupt body":   "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
		"not PEM at all": "hello",
	} {
		path := filepath.Join(t.TempDir(), "crl.pem")
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCRL(path, ca.Cert); err == nil {
			t.Errorf("%s: LoadCRL accepted it", name)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheckFederationCertificate(t *testing.T) {
	ca, dir := initTestFederationCA(t)
	other, _ := initTestFederationCA(t)
	out := t.TempDir()
	cert, err := ca.IssueNewFederation("uk-freiburg.test", out, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := LoadCRL(filepath.Join(dir, CRLFile), ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := CheckFederationCertificate(cert, ca.Cert, crl, now); err != nil {
		t.Errorf("fresh certificate: %v", err)
	}
	if err := CheckFederationCertificate(cert, ca.Cert, crl, now.Add(31*24*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("after expiry: %v, want ErrExpired", err)
	}
	if err := CheckFederationCertificate(cert, ca.Cert, crl, now.Add(-time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("before validity: %v, want ErrExpired", err)
	}
	if err := CheckFederationCertificate(cert, other.Cert, nil, now); !errors.Is(err, ErrForeignCertificate) {
		t.Errorf("against another CA: %v, want ErrForeignCertificate", err)
	}
	if _, err := ca.Revoke(dir, filepath.Join(out, FederationCertFile)); err != nil {
		t.Fatal(err)
	}
	crl, err = LoadCRL(filepath.Join(dir, CRLFile), ca.Cert)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFederationCertificate(cert, ca.Cert, crl, now); !errors.Is(err, ErrRevoked) {
		t.Errorf("after revocation: %v, want ErrRevoked", err)
	}
}
