// Package federation connects homeservers: mutually authenticated TLS 1.3
// between servers whose certificates a federation CA issued (Trust), the
// identity of a peer taken from its certificate and nothing else
// (PeerName), an HTTP client for calling named peers (Client), and a
// durable, ordered outbound queue per destination that retries with capped
// exponential backoff and jitter until the peer acknowledges (Sender).
//
// What the servers say to each other (room events from a room's hub,
// submissions to the hub, key package claims, device messages, media) is
// defined in package proto and docs/federation.md and implemented by the
// homeserver (package server).
package federation

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"github.com/medicus-health/medicus/crypto/pki"
)

// Errors of peer verification.
var (
	// ErrNotAllowed means the peer's name is not on the allow-list, or is
	// blocked.
	ErrNotAllowed = errors.New("federation: peer not allowed")
	// ErrRevoked means the peer's certificate is on the CRL.
	ErrRevoked = errors.New("federation: certificate revoked")
	// ErrBadPeerCertificate means the peer's certificate does not name
	// exactly one server.
	ErrBadPeerCertificate = errors.New("federation: certificate must name exactly one server")
)

// Trust decides which peers a homeserver talks to: certificates chaining to
// the federation CA, not revoked, naming a server on the allow-list and not
// blocked.
type Trust struct {
	ca      *x509.Certificate
	roots   *x509.CertPool
	crlPath string

	mu      sync.RWMutex
	allowed map[string]bool
	blocked map[string]bool
	revoked map[string]bool // serial numbers, decimal
	// generation counts changes of the lists, so that clients drop
	// connections made under an earlier state (see Client.Open).
	generation uint64
}

// TrustConfig are the files and lists a Trust is made of.
type TrustConfig struct {
	CAFile  string   // the federation CA certificate (PEM)
	CRLFile string   // optional CRL signed by the CA
	Allowed []string // peer server names
	Blocked []string // server names refused even if allowed
}

// NewTrust loads the CA and the CRL.
func NewTrust(c TrustConfig) (*Trust, error) {
	ca, err := pki.LoadCertificate(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("federation CA: %w", err)
	}
	if !ca.IsCA {
		return nil, fmt.Errorf("federation CA %s is not a CA certificate", c.CAFile)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	t := &Trust{ca: ca, roots: roots, crlPath: c.CRLFile}
	t.SetPeers(c.Allowed, c.Blocked)
	if err := t.ReloadCRL(); err != nil {
		return nil, err
	}
	return t, nil
}

// SetPeers replaces the allow-list and the block list.
func (t *Trust) SetPeers(allowed, blocked []string) {
	a, b := map[string]bool{}, map[string]bool{}
	for _, n := range allowed {
		a[n] = true
	}
	for _, n := range blocked {
		b[n] = true
	}
	t.mu.Lock()
	t.allowed, t.blocked = a, b
	t.generation++
	t.mu.Unlock()
}

// Generation changes whenever the allow-list, block list or CRL changes.
func (t *Trust) Generation() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.generation
}

// ReloadCRL reads the CRL file again (after `medicus pki revoke`). A
// configured CRL that cannot be read or verified is an error and leaves the
// revocations known so far in force: a lost crl.pem must not un-revoke
// anything.
func (t *Trust) ReloadCRL() error {
	revoked := map[string]bool{}
	if t.crlPath != "" {
		crl, err := pki.LoadCRL(t.crlPath, t.ca)
		if err != nil {
			return fmt.Errorf("federation CRL: %w", err)
		}
		for _, e := range crl.RevokedCertificateEntries {
			revoked[e.SerialNumber.String()] = true
		}
	}
	t.mu.Lock()
	t.revoked = revoked
	t.generation++
	t.mu.Unlock()
	return nil
}

// Allowed reports whether name is a peer this server talks to.
func (t *Trust) Allowed(name string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.allowed[name] && !t.blocked[name]
}

// Peers returns the allowed peer names, sorted.
func (t *Trust) Peers() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []string
	for n := range t.allowed {
		if !t.blocked[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// check verifies a peer's verified chain: not revoked, one DNS name, on the
// allow-list. It returns the peer's server name.
func (t *Trust) check(cs tls.ConnectionState) (string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return "", errors.New("federation: peer presented no verified certificate")
	}
	leaf := cs.PeerCertificates[0]
	t.mu.RLock()
	revoked := t.revoked[leaf.SerialNumber.String()]
	t.mu.RUnlock()
	if revoked {
		return "", fmt.Errorf("%w: serial %s", ErrRevoked, leaf.SerialNumber)
	}
	if len(leaf.DNSNames) != 1 {
		return "", ErrBadPeerCertificate
	}
	name := leaf.DNSNames[0]
	if !t.Allowed(name) {
		return "", fmt.Errorf("%w: %s", ErrNotAllowed, name)
	}
	return name, nil
}

// ServerTLS returns the TLS configuration of the federation listener:
// TLS 1.3 only, a client certificate from the federation CA required and
// checked against the CRL and the allow-list during the handshake.
func (t *Trust) ServerTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    t.roots,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := t.check(cs)
			return err
		},
	}
}

// ClientTLS returns the TLS configuration for calling peer: TLS 1.3 only,
// the peer's certificate must be for exactly that name, from the CA, not
// revoked and allowed.
func (t *Trust) ClientTLS(cert tls.Certificate, peer string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      t.roots,
		ServerName:   peer,
		VerifyConnection: func(cs tls.ConnectionState) error {
			name, err := t.check(cs)
			if err == nil && name != peer {
				err = fmt.Errorf("%w: expected %s, got %s", ErrNotAllowed, peer, name)
			}
			return err
		},
	}
}

// PeerName returns the server name of the peer that made a federation
// request: the DNS name of its verified client certificate — never a
// header or a body field. ok is false for requests without one.
func (t *Trust) PeerName(r *http.Request) (string, bool) {
	if r.TLS == nil {
		return "", false
	}
	name, err := t.check(*r.TLS)
	return name, err == nil
}
