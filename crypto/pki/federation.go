package pki

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// Files of a federation CA directory (medicus pki init) and of an issued
// server certificate (medicus pki issue).
const (
	CACertFile         = "ca.pem"
	CAKeyFile          = "ca-key.pem"
	CRLFile            = "crl.pem"
	revokedFile        = "revoked.json"
	FederationCertFile = "federation.pem"
	FederationKeyFile  = "federation-key.pem"
)

// InitFederationCA creates a federation CA in dir (which must not hold one):
// its certificate, its key (mode 0600; keep it offline) and an empty CRL.
func InitFederationCA(dir, name string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := NewCA(name, CAValidity)
	if err != nil {
		return nil, err
	}
	if err := WriteKeyPEM(filepath.Join(dir, CAKeyFile), ca.Key); err != nil {
		return nil, err
	}
	if err := WriteCertPEM(filepath.Join(dir, CACertFile), ca.Cert); err != nil {
		return nil, err
	}
	if err := ca.writeCRL(dir, nil); err != nil {
		return nil, err
	}
	return ca, nil
}

// LoadFederationCA loads the CA of a directory made by InitFederationCA.
func LoadFederationCA(dir string) (*CA, error) {
	return LoadCA(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
}

// IssueFederation issues a server certificate whose only DNS SAN is the
// server name, valid for validity, and writes it with its key to outDir,
// replacing an earlier one (a renewal). It returns the certificate.
func (ca *CA) IssueFederation(serverName, outDir string, validity time.Duration) (*x509.Certificate, error) {
	leaf, err := ca.Issue(serverName, nil, validity)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return nil, err
	}
	// Write both files beside their targets and rename, so that a server
	// reading them never sees a certificate without its key.
	keyTmp, certTmp := filepath.Join(outDir, ".new-"+FederationKeyFile), filepath.Join(outDir, ".new-"+FederationCertFile)
	os.Remove(keyTmp)
	os.Remove(certTmp)
	if err := WriteKeyPEM(keyTmp, leaf.Key); err != nil {
		return nil, err
	}
	if err := WriteCertPEM(certTmp, leaf.Cert); err != nil {
		return nil, err
	}
	if err := os.Rename(keyTmp, filepath.Join(outDir, FederationKeyFile)); err != nil {
		return nil, err
	}
	if err := os.Rename(certTmp, filepath.Join(outDir, FederationCertFile)); err != nil {
		return nil, err
	}
	return leaf.Cert, nil
}

// revokedEntry is one revoked certificate in the CA's list.
type revokedEntry struct {
	Serial string    `json:"serial"` // decimal
	Name   string    `json:"name"`
	Time   time.Time `json:"time"`
}

func readRevoked(dir string) ([]revokedEntry, error) {
	b, err := os.ReadFile(filepath.Join(dir, revokedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []revokedEntry
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", revokedFile, err)
	}
	return out, nil
}

// Revoke adds the certificate in certFile to the CA's revocation list and
// rewrites the CRL (dir/crl.pem), which homeservers load to refuse it.
func (ca *CA) Revoke(dir, certFile string) (*x509.Certificate, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, fmt.Errorf("%s was not issued by this CA: %w", certFile, err)
	}
	list, err := readRevoked(dir)
	if err != nil {
		return nil, err
	}
	list = append(list, revokedEntry{Serial: cert.SerialNumber.String(), Name: cert.Subject.CommonName, Time: time.Now().UTC()})
	return cert, ca.writeCRL(dir, list)
}

// writeCRL writes the revocation list and the CRL signed by the CA.
func (ca *CA) writeCRL(dir string, list []revokedEntry) error {
	entries := make([]x509.RevocationListEntry, 0, len(list))
	for _, e := range list {
		n, ok := new(big.Int).SetString(e.Serial, 10)
		if !ok {
			return fmt.Errorf("%s: bad serial %q", revokedFile, e.Serial)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: e.Time})
	}
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(now.UnixNano()),
		ThisUpdate:                now,
		NextUpdate:                now.Add(7 * 24 * time.Hour),
	}, ca.Cert, ca.Key)
	if err != nil {
		return fmt.Errorf("create CRL: %w", err)
	}
	js, _ := json.MarshalIndent(list, "", "  ")
	if err := replaceFile(filepath.Join(dir, revokedFile), js, 0o600); err != nil {
		return err
	}
	return replaceFile(filepath.Join(dir, CRLFile), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

func replaceFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	os.Remove(tmp)
	if err := writeNew(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadCRL reads a PEM CRL and checks that issuer signed it.
func LoadCRL(path string, issuer *x509.Certificate) (*x509.RevocationList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CRL: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "X509 CRL" {
		return nil, fmt.Errorf("%s: no PEM CRL", path)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		return nil, fmt.Errorf("%s is not signed by the federation CA: %w", path, err)
	}
	return crl, nil
}

// LoadCertificate reads the first PEM certificate of a file.
func LoadCertificate(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}
