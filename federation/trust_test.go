package federation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-health/medicus/crypto/pki"
)

const (
	freiburg   = "uk-freiburg.test"
	heidelberg = "uk-heidelberg.test"
	stuttgart  = "klinikum-stuttgart.test"
)

// testCA is a federation CA directory made by pki.InitFederationCA.
type testCA struct {
	dir string
	ca  *pki.CA
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "federation-ca")
	ca, err := pki.InitFederationCA(dir, "Test Region Health Federation CA")
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{dir: dir, ca: ca}
}

// issue issues a server certificate the way `medicus pki issue` does and
// returns it with the path of its certificate file.
func (c *testCA) issue(t *testing.T, name string) (tls.Certificate, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	if _, err := c.ca.IssueFederation(name, out, pki.LeafValidity); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(out, pki.FederationCertFile), filepath.Join(out, pki.FederationKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return cert, filepath.Join(out, pki.FederationCertFile)
}

// craft issues a certificate that `medicus pki issue` would never make
// (expired, two names, wrong usage): the template starts as a valid
// federation certificate for name and edit changes it.
func (c *testCA) craft(t *testing.T, name string, edit func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.ca.Cert, &key.PublicKey, c.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// trust returns a Trust of this CA, with its CRL.
func (c *testCA) trust(t *testing.T, allowed, blocked []string) *Trust {
	t.Helper()
	tr, err := NewTrust(TrustConfig{
		CAFile:  filepath.Join(c.dir, pki.CACertFile),
		CRLFile: filepath.Join(c.dir, pki.CRLFile),
		Allowed: allowed,
		Blocked: blocked,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// handshakeResult is what each side of one TLS connection saw.
type handshakeResult struct {
	server, client error
	state          tls.ConnectionState // the server's, after a handshake
}

// handshake connects a TLS client to a TLS server on loopback. The server
// writes "ok" after its handshake and the client reads it: in TLS 1.3 the
// client finishes its handshake before the server has checked the client's
// certificate, so a refusal reaches the client as an alert on that read.
func handshake(t *testing.T, serverCfg, clientCfg *tls.Config) handshakeResult {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type serverSide struct {
		err   error
		state tls.ConnectionState
	}
	done := make(chan serverSide, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- serverSide{err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(conn, serverCfg)
		if err := tc.Handshake(); err != nil {
			done <- serverSide{err: err}
			return
		}
		_, err = tc.Write([]byte("ok"))
		done <- serverSide{err: err, state: tc.ConnectionState()}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(conn, clientCfg)
	cerr := tc.Handshake()
	if cerr == nil {
		buf := make([]byte, 2)
		if _, err := io.ReadFull(tc, buf); err != nil {
			cerr = fmt.Errorf("first read: %w", err)
		} else if string(buf) != "ok" {
			cerr = fmt.Errorf("first read: %q", buf)
		}
	}
	var s serverSide
	select {
	case s = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("server side of the handshake did not finish")
	}
	return handshakeResult{server: s.err, client: cerr, state: s.state}
}

func TestMutualTLS13HandshakeBetweenAllowedPeers(t *testing.T) {
	ca := newTestCA(t)
	frCert, _ := ca.issue(t, freiburg)
	hdCert, _ := ca.issue(t, heidelberg)
	// Freiburg serves; Heidelberg calls it.
	r := handshake(t, ca.trust(t, []string{heidelberg}, nil).ServerTLS(frCert), ca.trust(t, []string{freiburg}, nil).ClientTLS(hdCert, freiburg))
	if r.server != nil || r.client != nil {
		t.Fatalf("handshake failed: server %v, client %v", r.server, r.client)
	}
	if r.state.Version != tls.VersionTLS13 {
		t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(r.state.Version))
	}
	if len(r.state.PeerCertificates) == 0 || r.state.PeerCertificates[0].DNSNames[0] != heidelberg {
		t.Error("server did not see Heidelberg's certificate")
	}
}

// assertRefusedByServer asserts that the server refused the client at the
// handshake with an error matching serverWant, and that the client saw the
// TLS alert named alert.
func assertRefusedByServer(t *testing.T, r handshakeResult, serverWant func(error) bool, alert string) {
	t.Helper()
	assertRefused(t, "server", r.server, serverWant, "client", r.client)
	if r.client != nil && !strings.Contains(r.client.Error(), "remote error: tls: "+alert) {
		t.Errorf("client error %q, want the alert %q", r.client, alert)
	}
}

// assertRefusedByClient asserts that the client refused the server's
// certificate with an error matching clientWant, and that the handshake
// failed on the server too (the client's alert, or the server's own refusal
// of a TLS version).
func assertRefusedByClient(t *testing.T, r handshakeResult, clientWant func(error) bool) {
	t.Helper()
	assertRefused(t, "client", r.client, clientWant, "server", r.server)
}

func assertRefused(t *testing.T, decider string, err error, want func(error) bool, other string, otherErr error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s accepted the handshake", decider)
	}
	if !want(err) {
		t.Errorf("%s's handshake error %q is not the expected kind", decider, err)
	}
	if otherErr == nil {
		t.Errorf("%s saw no error", other)
	}
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func unknownAuthority(err error) bool {
	var e x509.UnknownAuthorityError
	return errors.As(err, &e)
}

func invalidBecause(reason x509.InvalidReason) func(error) bool {
	return func(err error) bool {
		var e x509.CertificateInvalidError
		return errors.As(err, &e) && e.Reason == reason
	}
}

func TestServerRefusesClientAtHandshake(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	frCert, _ := ca.issue(t, freiburg)
	serverTrust := ca.trust(t, []string{heidelberg, stuttgart, "blocked.test"}, []string{"blocked.test"})
	valid, _ := ca.issue(t, heidelberg)
	foreign, _ := other.issue(t, heidelberg)
	notAllowed, _ := ca.issue(t, "unlisted.test")
	blocked, _ := ca.issue(t, "blocked.test")
	for _, tc := range []struct {
		name   string
		client tls.Certificate
		edit   func(*tls.Config)
		want   func(error) bool
		alert  string
	}{
		{name: "certificate from another CA", client: foreign, want: unknownAuthority, alert: "unknown certificate authority"},
		{name: "expired certificate", client: ca.craft(t, heidelberg, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-100*24*time.Hour), time.Now().Add(-10*24*time.Hour)
		}), want: invalidBecause(x509.Expired), alert: "expired certificate"},
		{name: "certificate not yet valid", client: ca.craft(t, heidelberg, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(24*time.Hour), time.Now().Add(48*time.Hour)
		}), want: invalidBecause(x509.Expired), alert: "expired certificate"},
		{name: "name not on the allow-list", client: notAllowed, want: is(ErrNotAllowed), alert: "bad certificate"},
		{name: "blocked name", client: blocked, want: is(ErrNotAllowed), alert: "bad certificate"},
		{name: "two DNS names", client: ca.craft(t, heidelberg, func(c *x509.Certificate) {
			c.DNSNames = []string{heidelberg, stuttgart}
		}), want: is(ErrBadPeerCertificate), alert: "bad certificate"},
		{name: "no DNS name, only a common name", client: ca.craft(t, heidelberg, func(c *x509.Certificate) {
			c.DNSNames = nil
		}), want: is(ErrBadPeerCertificate), alert: "bad certificate"},
		{name: "server-only key usage", client: ca.craft(t, heidelberg, func(c *x509.Certificate) {
			c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}), want: invalidBecause(x509.IncompatibleUsage), alert: "bad certificate"},
		{name: "TLS 1.2 client", client: valid, edit: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 },
			want: func(err error) bool { return strings.Contains(err.Error(), "unsupported versions") }, alert: "protocol version not supported"},
		{name: "no client certificate", edit: func(c *tls.Config) { c.Certificates = nil },
			want: func(err error) bool { return strings.Contains(err.Error(), "didn't provide a certificate") }, alert: "certificate required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clientCfg := ca.trust(t, []string{freiburg}, nil).ClientTLS(tc.client, freiburg)
			if tc.edit != nil {
				tc.edit(clientCfg)
			}
			assertRefusedByServer(t, handshake(t, serverTrust.ServerTLS(frCert), clientCfg), tc.want, tc.alert)
		})
	}
	t.Run("valid certificate (control)", func(t *testing.T) {
		r := handshake(t, serverTrust.ServerTLS(frCert), ca.trust(t, []string{freiburg}, nil).ClientTLS(valid, freiburg))
		if r.server != nil || r.client != nil {
			t.Fatalf("server %v, client %v", r.server, r.client)
		}
	})
}

func hostnameMismatch(err error) bool {
	var e x509.HostnameError
	return errors.As(err, &e) || errors.Is(err, ErrNotAllowed)
}

func TestClientRefusesServerAtHandshake(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	hdCert, _ := ca.issue(t, heidelberg)
	serverTrust := ca.trust(t, []string{heidelberg}, nil)
	clientTrust := ca.trust(t, []string{freiburg, stuttgart, "blocked.test", "two.test"}, []string{"blocked.test"})
	stCert, _ := ca.issue(t, stuttgart)
	foreign, _ := other.issue(t, freiburg)
	unlisted, _ := ca.issue(t, "unlisted.test")
	blocked, _ := ca.issue(t, "blocked.test")
	for _, tc := range []struct {
		name   string
		server tls.Certificate
		dial   string // the peer the client means to reach
		edit   func(*tls.Config)
		want   func(error) bool
	}{
		{name: "certificate names another server", server: stCert, dial: freiburg, want: hostnameMismatch},
		{name: "certificate from another CA", server: foreign, dial: freiburg, want: unknownAuthority},
		{name: "expired certificate", server: ca.craft(t, freiburg, func(c *x509.Certificate) {
			c.NotBefore, c.NotAfter = time.Now().Add(-100*24*time.Hour), time.Now().Add(-time.Minute)
		}), dial: freiburg, want: invalidBecause(x509.Expired)},
		{name: "peer not on the allow-list", server: unlisted, dial: "unlisted.test", want: is(ErrNotAllowed)},
		{name: "blocked peer", server: blocked, dial: "blocked.test", want: is(ErrNotAllowed)},
		{name: "two DNS names", server: ca.craft(t, "two.test", func(c *x509.Certificate) {
			c.DNSNames = []string{"two.test", freiburg}
		}), dial: "two.test", want: is(ErrBadPeerCertificate)},
		{name: "TLS 1.2 server", server: stCert, dial: stuttgart, edit: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12 },
			want: func(err error) bool { return strings.Contains(err.Error(), "protocol version") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serverCfg := serverTrust.ServerTLS(tc.server)
			if tc.edit != nil {
				tc.edit(serverCfg)
			}
			assertRefusedByClient(t, handshake(t, serverCfg, clientTrust.ClientTLS(hdCert, tc.dial)), tc.want)
		})
	}
}

func TestRevokedCertificateIsRefusedAfterReloadCRL(t *testing.T) {
	ca := newTestCA(t)
	frCert, frFile := ca.issue(t, freiburg)
	hdCert, hdFile := ca.issue(t, heidelberg)
	frTrust := ca.trust(t, []string{heidelberg}, nil)
	hdTrust := ca.trust(t, []string{freiburg}, nil)
	connect := func() handshakeResult {
		return handshake(t, frTrust.ServerTLS(frCert), hdTrust.ClientTLS(hdCert, freiburg))
	}
	if r := connect(); r.server != nil || r.client != nil {
		t.Fatalf("before revocation: server %v, client %v", r.server, r.client)
	}

	// Heidelberg's (the client's) certificate is revoked: Freiburg refuses it
	// once it has reloaded the CRL.
	if _, err := ca.ca.Revoke(ca.dir, hdFile); err != nil {
		t.Fatal(err)
	}
	if err := frTrust.ReloadCRL(); err != nil {
		t.Fatal(err)
	}
	assertRefusedByServer(t, connect(), is(ErrRevoked), "bad certificate")

	// Freiburg's (the server's) certificate is revoked: a client that has
	// reloaded the CRL refuses it.
	stCert, _ := ca.issue(t, stuttgart)
	frServer := ca.trust(t, []string{stuttgart}, nil).ServerTLS(frCert)
	stTrust := ca.trust(t, []string{freiburg}, nil)
	if r := handshake(t, frServer, stTrust.ClientTLS(stCert, freiburg)); r.server != nil || r.client != nil {
		t.Fatalf("before revocation of the server: server %v, client %v", r.server, r.client)
	}
	if _, err := ca.ca.Revoke(ca.dir, frFile); err != nil {
		t.Fatal(err)
	}
	if err := stTrust.ReloadCRL(); err != nil {
		t.Fatal(err)
	}
	assertRefusedByClient(t, handshake(t, frServer, stTrust.ClientTLS(stCert, freiburg)), is(ErrRevoked))
}

func TestNewTrustRefusesBadCAAndForeignCRL(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	_, leafFile := ca.issue(t, freiburg)
	if _, err := NewTrust(TrustConfig{CAFile: leafFile}); err == nil {
		t.Error("NewTrust accepted a server certificate as the CA")
	}
	if _, err := NewTrust(TrustConfig{CAFile: filepath.Join(t.TempDir(), "absent.pem")}); err == nil {
		t.Error("NewTrust accepted a missing CA file")
	}
	if _, err := NewTrust(TrustConfig{CAFile: filepath.Join(ca.dir, pki.CACertFile), CRLFile: filepath.Join(other.dir, pki.CRLFile)}); err == nil {
		t.Error("NewTrust accepted a CRL signed by another CA")
	}
}

// assertReloadKeepsRevocations revokes Heidelberg's certificate, loads
// Freiburg's Trust, spoils the CRL file with spoil, and checks that
// ReloadCRL reports it and that Heidelberg stays refused.
func assertReloadKeepsRevocations(t *testing.T, spoil func(crlFile string) error) {
	t.Helper()
	ca := newTestCA(t)
	frCert, _ := ca.issue(t, freiburg)
	hdCert, hdFile := ca.issue(t, heidelberg)
	if _, err := ca.ca.Revoke(ca.dir, hdFile); err != nil {
		t.Fatal(err)
	}
	tr := ca.trust(t, []string{heidelberg}, nil)
	hdTrust := ca.trust(t, []string{freiburg}, nil)
	if err := spoil(filepath.Join(ca.dir, pki.CRLFile)); err != nil {
		t.Fatal(err)
	}
	if err := tr.ReloadCRL(); err == nil {
		t.Error("ReloadCRL reported no error")
	}
	r := handshake(t, tr.ServerTLS(frCert), hdTrust.ClientTLS(hdCert, freiburg))
	assertRefusedByServer(t, r, is(ErrRevoked), "bad certificate")
}

func TestReloadCRLRefusesForeignCRLAndKeepsRevocations(t *testing.T) {
	// An attacker (or a mix-up) puts another CA's empty CRL in place.
	other := newTestCA(t)
	assertReloadKeepsRevocations(t, func(crlFile string) error {
		foreign, err := os.ReadFile(filepath.Join(other.dir, pki.CRLFile))
		if err != nil {
			return err
		}
		return os.WriteFile(crlFile, foreign, 0o644)
	})
}

func TestReloadCRLKeepsRevocationsWhenFileDisappears(t *testing.T) {
	assertReloadKeepsRevocations(t, os.Remove)
}

// peerServer is an httptest TLS server standing in for a peer homeserver,
// with the federation listener's TLS configuration.
func peerServer(t *testing.T, tr *Trust, cert tls.Certificate, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = tr.ServerTLS(cert)
	// Refused handshakes are the point of several tests; keep their log
	// lines out of the output.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return ts
}

// directClient is a plain HTTP client that reaches addr with the TLS
// configuration of ClientTLS.
func directClient(tr *Trust, cert tls.Certificate, peer, addr string) *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: tr.ClientTLS(cert, peer),
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}, Timeout: 10 * time.Second}
}

func TestPeerNameIsTheClientCertificateNameOnly(t *testing.T) {
	ca := newTestCA(t)
	frCert, _ := ca.issue(t, freiburg)
	hdCert, _ := ca.issue(t, heidelberg)
	frTrust := ca.trust(t, []string{heidelberg, stuttgart}, nil)
	type seen struct {
		name string
		ok   bool
	}
	got := make(chan seen, 1)
	ts := peerServer(t, frTrust, frCert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := frTrust.PeerName(r)
		got <- seen{name, ok}
	}))
	req, _ := http.NewRequest("GET", "https://"+freiburg+"/fed/v1/version", nil)
	// Claims in headers must not matter.
	req.Header.Set("X-Origin", stuttgart)
	req.Header.Set("Authorization", "X-Matrix origin="+stuttgart)
	resp, err := directClient(ca.trust(t, []string{freiburg}, nil), hdCert, freiburg, ts.Listener.Addr().String()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := <-got; !s.ok || s.name != heidelberg {
		t.Errorf("PeerName = %q, %v; want %q, true", s.name, s.ok, heidelberg)
	}
	if name, ok := frTrust.PeerName(httptest.NewRequest("GET", "/fed/v1/version", nil)); ok || name != "" {
		t.Errorf("PeerName of a request without TLS = %q, %v", name, ok)
	}
}

func TestPeerNameRechecksRevocationAndBlockOnOpenConnection(t *testing.T) {
	ca := newTestCA(t)
	frCert, _ := ca.issue(t, freiburg)
	hdCert, hdFile := ca.issue(t, heidelberg)
	frTrust := ca.trust(t, []string{heidelberg}, nil)
	type seen struct {
		name, remote string
		ok           bool
	}
	got := make(chan seen, 1)
	ts := peerServer(t, frTrust, frCert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := frTrust.PeerName(r)
		got <- seen{name, r.RemoteAddr, ok}
	}))
	hc := directClient(ca.trust(t, []string{freiburg}, nil), hdCert, freiburg, ts.Listener.Addr().String())
	get := func() seen {
		t.Helper()
		resp, err := hc.Get("https://" + freiburg + "/fed/v1/version")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return <-got
	}
	first := get()
	if !first.ok {
		t.Fatal("PeerName refused a valid peer")
	}

	frTrust.SetPeers([]string{heidelberg}, []string{heidelberg})
	if s := get(); s.ok || s.remote != first.remote {
		t.Errorf("after blocking: PeerName ok=%v on connection %s (first %s); want refused on the same connection", s.ok, s.remote, first.remote)
	}
	frTrust.SetPeers([]string{heidelberg}, nil)
	if s := get(); !s.ok {
		t.Error("after unblocking: PeerName refused")
	}

	if _, err := ca.ca.Revoke(ca.dir, hdFile); err != nil {
		t.Fatal(err)
	}
	if err := frTrust.ReloadCRL(); err != nil {
		t.Fatal(err)
	}
	if s := get(); s.ok || s.remote != first.remote {
		t.Errorf("after revocation: PeerName ok=%v on connection %s (first %s); want refused on the same connection", s.ok, s.remote, first.remote)
	}
}

func TestTrustPeersListsAllowedNotBlocked(t *testing.T) {
	ca := newTestCA(t)
	tr := ca.trust(t, []string{stuttgart, freiburg, heidelberg}, []string{heidelberg, "other.test"})
	if got := strings.Join(tr.Peers(), ","); got != stuttgart+","+freiburg {
		t.Errorf("Peers() = %s", got)
	}
	for name, want := range map[string]bool{freiburg: true, stuttgart: true, heidelberg: false, "other.test": false, "": false} {
		if tr.Allowed(name) != want {
			t.Errorf("Allowed(%q) = %v, want %v", name, !want, want)
		}
	}
}
