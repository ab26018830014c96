package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/crypto/pki"
	"github.com/medicus-health/medicus/server"
)

// maxFederationDays bounds --days: federation certificates are meant to be
// short-lived and renewed, so a revoked key stops mattering soon anyway.
const maxFederationDays = 397

func pkiCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "pki", Short: "Run a federation CA: issue, renew, revoke and inspect homeserver certificates"}
	cmd.AddCommand(pkiInitCmd(), pkiIssueCmd(), pkiRenewCmd(), pkiRevokeCmd(), pkiShowCmd())
	return cmd
}

func pkiInitCmd() *cobra.Command {
	var dir, name string
	cmd := &cobra.Command{
		Use:   "init --dir CA_DIR --name \"Region Health Federation CA\"",
		Short: "Create a federation CA (ECDSA P-256) with an empty revocation list",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" || strings.TrimSpace(name) == "" {
				return errors.New("--dir and --name are required")
			}
			if pki.FederationCAExists(dir) {
				return fmt.Errorf("%s already holds a federation CA; refusing to overwrite it", dir)
			}
			ca, err := pki.InitFederationCA(dir, name)
			if err != nil {
				return fmt.Errorf("create federation CA: %w", err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "federation CA %q created, valid until %s\n", ca.Cert.Subject.CommonName, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
			fmt.Fprintf(w, "  certificate (give to every homeserver): %s\n", filepath.Join(dir, pki.CACertFile))
			fmt.Fprintf(w, "  revocation list (give to every homeserver): %s\n", filepath.Join(dir, pki.CRLFile))
			fmt.Fprintf(w, "  PRIVATE KEY: %s\n", filepath.Join(dir, pki.CAKeyFile))
			fmt.Fprintln(w, "Keep the private key offline (an encrypted USB stick in a safe, not a server); it is needed only to issue, renew and revoke.")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to create the CA in")
	cmd.Flags().StringVar(&name, "name", "", "the CA's name, e.g. \"Region Health Federation CA\"")
	return cmd
}

// pkiLeafFlags are the flags shared by issue and renew.
type pkiLeafFlags struct {
	ca, name, out string
	days          int
}

func (f *pkiLeafFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.ca, "ca", "", "the federation CA directory (from pki init)")
	cmd.Flags().StringVar(&f.name, "name", "", "the homeserver's server name, e.g. uk-freiburg.example")
	cmd.Flags().StringVar(&f.out, "out", "", "directory for federation.pem and federation-key.pem")
	cmd.Flags().IntVar(&f.days, "days", 90, fmt.Sprintf("validity in days (1 to %d)", maxFederationDays))
}

// load checks the flags and loads the CA.
func (f *pkiLeafFlags) load() (*pki.CA, error) {
	if f.ca == "" || f.name == "" || f.out == "" {
		return nil, errors.New("--ca, --name and --out are required")
	}
	if !server.ValidServerName(f.name) {
		return nil, fmt.Errorf("--name %q is not a server name: use a lower-case DNS name such as uk-freiburg.example", f.name)
	}
	if f.days < 1 || f.days > maxFederationDays {
		return nil, fmt.Errorf("--days %d: must be between 1 and %d", f.days, maxFederationDays)
	}
	ca, err := pki.LoadFederationCA(f.ca)
	if err != nil {
		return nil, fmt.Errorf("load federation CA from %s: %w", f.ca, err)
	}
	return ca, nil
}

func (f *pkiLeafFlags) validity() time.Duration { return time.Duration(f.days) * 24 * time.Hour }

func pkiIssueCmd() *cobra.Command {
	var f pkiLeafFlags
	cmd := &cobra.Command{
		Use:   "issue --ca CA_DIR --name SERVER_NAME --out DIR [--days 90]",
		Short: "Issue a homeserver's federation certificate (its only DNS name is the server name)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := f.load()
			if err != nil {
				return err
			}
			cert, err := ca.IssueNewFederation(f.name, f.out, f.validity())
			if errors.Is(err, pki.ErrFederationCertExists) {
				return fmt.Errorf("%w (use `medicus pki renew` to replace it)", err)
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "issued federation certificate for %s, serial %s, valid until %s\n", f.name, cert.SerialNumber, cert.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintf(w, "  %s\n  %s (private key)\n", filepath.Join(f.out, pki.FederationCertFile), filepath.Join(f.out, pki.FederationKeyFile))
			fmt.Fprintf(w, "Configure the homeserver with --federation-cert-dir %s --federation-ca %s --federation-crl %s\n",
				f.out, filepath.Join(f.ca, pki.CACertFile), filepath.Join(f.ca, pki.CRLFile))
			fmt.Fprintf(w, "Renew before it expires: medicus pki renew --ca %s --name %s --out %s\n", f.ca, f.name, f.out)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func pkiRenewCmd() *cobra.Command {
	var f pkiLeafFlags
	cmd := &cobra.Command{
		Use:   "renew --ca CA_DIR --name SERVER_NAME --out DIR [--days 90]",
		Short: "Re-issue a homeserver's federation certificate with a new key, replacing the files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ca, err := f.load()
			if err != nil {
				return err
			}
			old, cert, err := ca.RenewFederation(f.name, f.out, f.validity())
			if errors.Is(err, pki.ErrNoFederationCert) {
				return fmt.Errorf("%w (use `medicus pki issue` first)", err)
			}
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "renewed federation certificate for %s, serial %s\n", f.name, cert.SerialNumber)
			fmt.Fprintf(w, "  new expiry: %s\n", cert.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintf(w, "  old certificate (serial %s) stays valid until %s; revoke it with `medicus pki revoke` if its key was exposed\n",
				old.SerialNumber, old.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintln(w, "Restart the homeserver to present the new certificate.")
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func pkiRevokeCmd() *cobra.Command {
	var caDir, certFile string
	cmd := &cobra.Command{
		Use:   "revoke --ca CA_DIR --cert FILE",
		Short: "Revoke a federation certificate: add it to CA_DIR/crl.pem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if caDir == "" || certFile == "" {
				return errors.New("--ca and --cert are required")
			}
			ca, err := pki.LoadFederationCA(caDir)
			if err != nil {
				return fmt.Errorf("load federation CA from %s: %w", caDir, err)
			}
			cert, err := pki.LoadCertificate(certFile)
			if err != nil {
				return fmt.Errorf("read %s: %w", certFile, err)
			}
			if cert.IsCA {
				return fmt.Errorf("%s is a CA certificate; only homeserver certificates are revoked", certFile)
			}
			if at, ok, err := ca.RevokedAt(caDir, cert); err != nil {
				return err
			} else if ok {
				return fmt.Errorf("%s (serial %s) was already revoked on %s", certFile, cert.SerialNumber, at.UTC().Format(time.RFC3339))
			}
			if _, err := ca.Revoke(caDir, certFile); err != nil {
				return fmt.Errorf("revoke %s: %w", certFile, err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "revoked %s (serial %s)\n", certName(cert), cert.SerialNumber)
			fmt.Fprintf(w, "Copy %s to every homeserver; they refuse the certificate once they reload the list.\n", filepath.Join(caDir, pki.CRLFile))
			return nil
		},
	}
	cmd.Flags().StringVar(&caDir, "ca", "", "the federation CA directory (from pki init)")
	cmd.Flags().StringVar(&certFile, "cert", "", "the certificate to revoke (PEM)")
	return cmd
}

// certInfo is what `medicus pki show` prints.
type certInfo struct {
	Name              string    `json:"name"`
	DNSNames          []string  `json:"dns_names"`
	Serial            string    `json:"serial"`
	NotBefore         time.Time `json:"not_before"`
	NotAfter          time.Time `json:"not_after"`
	Issuer            string    `json:"issuer"`
	IsCA              bool      `json:"is_ca"`
	SHA256Fingerprint string    `json:"sha256_fingerprint"`
	// Status is set with --ca: "valid", or why a peer would refuse it.
	Status string `json:"status,omitempty"`
}

func certName(c *x509.Certificate) string {
	if len(c.DNSNames) == 1 {
		return c.DNSNames[0]
	}
	return c.Subject.CommonName
}

func pkiShowCmd() *cobra.Command {
	var certFile, caDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show --cert FILE [--ca CA_DIR] [--json]",
		Short: "Print a certificate's name, serial number, validity and issuer (and, with --ca, whether it is valid, expired or revoked)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if certFile == "" {
				return errors.New("--cert is required")
			}
			cert, err := pki.LoadCertificate(certFile)
			if err != nil {
				return fmt.Errorf("read %s: %w", certFile, err)
			}
			sum := sha256.Sum256(cert.Raw)
			info := certInfo{
				Name: certName(cert), DNSNames: cert.DNSNames, Serial: cert.SerialNumber.String(),
				NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), Issuer: cert.Issuer.CommonName,
				IsCA: cert.IsCA, SHA256Fingerprint: hex.EncodeToString(sum[:]),
			}
			if caDir != "" {
				if info.Status, err = federationStatus(cert, caDir); err != nil {
					return err
				}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			printCertInfo(cmd.OutOrStdout(), info)
			return nil
		},
	}
	cmd.Flags().StringVar(&certFile, "cert", "", "the certificate file (PEM)")
	cmd.Flags().StringVar(&caDir, "ca", "", "also check the certificate against this CA directory and its revocation list")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// federationStatus says whether a peer trusting the CA in caDir would
// accept cert now.
func federationStatus(cert *x509.Certificate, caDir string) (string, error) {
	caCert, err := pki.LoadCertificate(filepath.Join(caDir, pki.CACertFile))
	if err != nil {
		return "", fmt.Errorf("read federation CA: %w", err)
	}
	crl, err := pki.LoadCRL(filepath.Join(caDir, pki.CRLFile), caCert)
	if err != nil {
		return "", err
	}
	switch err := pki.CheckFederationCertificate(cert, caCert, crl, time.Now()); {
	case err == nil:
		return "valid", nil
	case errors.Is(err, pki.ErrForeignCertificate):
		return "not issued by " + caCert.Subject.CommonName, nil
	default:
		return strings.TrimPrefix(err.Error(), "pki: "), nil
	}
}

func printCertInfo(w io.Writer, info certInfo) {
	fmt.Fprintf(w, "name:        %s\n", info.Name)
	if len(info.DNSNames) != 1 || info.DNSNames[0] != info.Name {
		fmt.Fprintf(w, "dns names:   %s\n", strings.Join(info.DNSNames, ", "))
	}
	fmt.Fprintf(w, "serial:      %s\n", info.Serial)
	fmt.Fprintf(w, "valid from:  %s\n", info.NotBefore.Format(time.RFC3339))
	left := time.Until(info.NotAfter)
	if left > 0 {
		fmt.Fprintf(w, "valid until: %s (%d days left)\n", info.NotAfter.Format(time.RFC3339), int((left+12*time.Hour)/(24*time.Hour)))
	} else {
		fmt.Fprintf(w, "valid until: %s (EXPIRED)\n", info.NotAfter.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "issuer:      %s\n", info.Issuer)
	if info.IsCA {
		fmt.Fprintln(w, "type:        CA certificate")
	}
	fmt.Fprintf(w, "sha256:      %s\n", info.SHA256Fingerprint)
	if info.Status != "" {
		fmt.Fprintf(w, "status:      %s\n", info.Status)
	}
}
