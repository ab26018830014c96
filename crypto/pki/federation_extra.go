package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Errors of the federation CA operations that operators must tell apart.
var (
	// ErrFederationCertExists means a server certificate is already in the
	// output directory; renewing it is a separate, explicit step.
	ErrFederationCertExists = errors.New("pki: a federation certificate already exists")
	// ErrNoFederationCert means there is no server certificate to renew.
	ErrNoFederationCert = errors.New("pki: no federation certificate to renew")
	// ErrWrongServer means the certificate in the output directory names
	// another server than the one asked for.
	ErrWrongServer = errors.New("pki: certificate names another server")
	// ErrForeignCertificate means a certificate was not issued by the CA.
	ErrForeignCertificate = errors.New("pki: certificate not issued by this CA")
	// ErrExpired means a certificate is outside its validity period.
	ErrExpired = errors.New("pki: certificate expired or not yet valid")
	// ErrRevoked means a certificate's serial number is on the CA's CRL.
	ErrRevoked = errors.New("pki: certificate revoked")
)

// FederationCAExists reports whether dir already holds a federation CA
// (its certificate or its key), so that `medicus pki init` can refuse to
// overwrite one with a clear message.
func FederationCAExists(dir string) bool {
	for _, f := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// IssueNewFederation issues a server certificate into outDir like
// IssueFederation, but refuses (ErrFederationCertExists) when outDir already
// holds one: replacing a certificate is RenewFederation's job.
func (ca *CA) IssueNewFederation(serverName, outDir string, validity time.Duration) (*x509.Certificate, error) {
	for _, f := range []string{FederationCertFile, FederationKeyFile} {
		if _, err := os.Stat(filepath.Join(outDir, f)); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrFederationCertExists, filepath.Join(outDir, f))
		}
	}
	return ca.IssueFederation(serverName, outDir, validity)
}

// RenewFederation re-issues the server certificate in outDir with a new key
// and a new validity period, replacing the files. The certificate there
// must exist (ErrNoFederationCert), name exactly serverName
// (ErrWrongServer) and come from this CA (ErrForeignCertificate), so that
// a typo in a path cannot overwrite another server's certificate. It
// returns the old and the new certificate. The old one is not revoked: it
// stays valid until it expires, so that servers still running with it keep
// federating until they reload.
func (ca *CA) RenewFederation(serverName, outDir string, validity time.Duration) (old, renewed *x509.Certificate, err error) {
	path := filepath.Join(outDir, FederationCertFile)
	old, err = LoadCertificate(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("%w: %s does not exist", ErrNoFederationCert, path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(old.DNSNames) != 1 || old.DNSNames[0] != serverName {
		return nil, nil, fmt.Errorf("%w: %s is for %v, not %s", ErrWrongServer, path, old.DNSNames, serverName)
	}
	if err := old.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrForeignCertificate, path, err)
	}
	renewed, err = ca.IssueFederation(serverName, outDir, validity)
	if err != nil {
		return nil, nil, fmt.Errorf("renew %s: %w", serverName, err)
	}
	return old, renewed, nil
}

// RevokedAt returns when the CA in dir revoked cert according to its CRL
// (dir/crl.pem), and false if it did not.
func (ca *CA) RevokedAt(dir string, cert *x509.Certificate) (time.Time, bool, error) {
	crl, err := LoadCRL(filepath.Join(dir, CRLFile), ca.Cert)
	if err != nil {
		return time.Time{}, false, err
	}
	if e, ok := crlEntry(crl, cert); ok {
		return e.RevocationTime, true, nil
	}
	return time.Time{}, false, nil
}

func crlEntry(crl *x509.RevocationList, cert *x509.Certificate) (x509.RevocationListEntry, bool) {
	if crl == nil {
		return x509.RevocationListEntry{}, false
	}
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return e, true
		}
	}
	return x509.RevocationListEntry{}, false
}

// CheckFederationCertificate tells whether cert is usable for federation at
// time now: issued by caCert (ErrForeignCertificate), within its validity
// period (ErrExpired) and not on crl (ErrRevoked; crl may be nil). It is the
// operator's view of what a peer's handshake would decide, without the
// allow-list.
func CheckFederationCertificate(cert, caCert *x509.Certificate, crl *x509.RevocationList, now time.Time) error {
	if err := cert.CheckSignatureFrom(caCert); err != nil {
		return fmt.Errorf("%w: %v", ErrForeignCertificate, err)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("%w: valid %s to %s", ErrExpired, cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if e, ok := crlEntry(crl, cert); ok {
		return fmt.Errorf("%w on %s", ErrRevoked, e.RevocationTime.UTC().Format(time.RFC3339))
	}
	return nil
}
