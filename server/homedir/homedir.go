// Package homedir creates and loads a homeserver directory: the commented
// config file (medicus.toml), the SQLite database, the media store, and the
// TLS material of the client API with the CA certificate (ca.pem) that
// clients must trust.
package homedir

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/medicus-health/medicus/crypto/pki"
	"github.com/medicus-health/medicus/server"
)

// File names inside a homeserver directory.
const (
	ConfigFile = "medicus.toml"
	CAFile     = "ca.pem"
	caKeyFile  = "ca-key.pem"
	certFile   = "tls-cert.pem"
	keyFile    = "tls-key.pem"
	dbFile     = "medicus.db"
	mediaDir   = "media"
)

// InitOptions configure Init.
type InitOptions struct {
	// TLSCertFile and TLSKeyFile, if both set, are an operator-supplied
	// certificate and key used instead of a local CA's; they are copied into
	// the directory and CAFile is not written unless CACertFile is given.
	TLSCertFile string
	TLSKeyFile  string
	// CACertFile is the CA certificate that clients must trust for an
	// operator-supplied certificate; copied to DIR/ca.pem.
	CACertFile string

	// FederationListen, if set, enables federation on that address with
	// the certificate and key in FederationCertDir (as written by
	// `medicus pki issue`), copied into the directory, and the federation
	// CA certificate FederationCA (copied). FederationCRL is the path of
	// the CA's revocation list, read where it is (the CA updates it).
	// FederationPeers are "name=host:port" entries.
	FederationListen  string
	FederationCertDir string
	FederationCA      string
	FederationCRL     string
	FederationPeers   []string
}

// Files of a homeserver's federation identity.
const (
	fedCertFile = "federation.pem"
	fedKeyFile  = "federation-key.pem"
	fedCAFile   = "federation-ca.pem"
)

// Init creates a homeserver directory. It refuses a directory that already
// holds a config file.
func Init(dir, serverName, listen string, opts InitOptions) (server.Config, error) {
	if !server.ValidServerName(serverName) {
		return server.Config{}, fmt.Errorf("server name %q is not a lower-case DNS name", serverName)
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return server.Config{}, fmt.Errorf("listen address %q: %w", listen, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return server.Config{}, fmt.Errorf("create %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return server.Config{}, fmt.Errorf("%s already holds a homeserver (%s exists)", dir, ConfigFile)
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return server.Config{}, errors.New("give both a TLS certificate and its key, or neither")
	}
	if opts.TLSCertFile != "" {
		// A mismatched pair would only show when the server first starts.
		if _, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSKeyFile); err != nil {
			return server.Config{}, fmt.Errorf("TLS certificate %s and key %s: %w", opts.TLSCertFile, opts.TLSKeyFile, err)
		}
		if err := copyFile(opts.TLSCertFile, filepath.Join(dir, certFile), 0o644); err != nil {
			return server.Config{}, err
		}
		if err := copyFile(opts.TLSKeyFile, filepath.Join(dir, keyFile), 0o600); err != nil {
			return server.Config{}, err
		}
		if opts.CACertFile != "" {
			if err := copyFile(opts.CACertFile, filepath.Join(dir, CAFile), 0o644); err != nil {
				return server.Config{}, err
			}
		}
	} else if err := makeLocalCA(dir, serverName, host); err != nil {
		return server.Config{}, err
	}

	cfg := server.DefaultConfig()
	cfg.ServerName = serverName
	cfg.Listen = listen
	cfg.TLSCertFile, cfg.TLSKeyFile, cfg.DatabaseFile, cfg.MediaDir = certFile, keyFile, dbFile, mediaDir
	if opts.FederationListen != "" {
		if opts.FederationCertDir == "" || opts.FederationCA == "" {
			return server.Config{}, errors.New("federation needs the directory of this server's federation certificate and the federation CA")
		}
		for _, c := range []struct {
			src, dst string
			mode     os.FileMode
		}{
			{filepath.Join(opts.FederationCertDir, pki.FederationCertFile), fedCertFile, 0o644},
			{filepath.Join(opts.FederationCertDir, pki.FederationKeyFile), fedKeyFile, 0o600},
			{opts.FederationCA, fedCAFile, 0o644},
		} {
			if err := copyFile(c.src, filepath.Join(dir, c.dst), c.mode); err != nil {
				return server.Config{}, err
			}
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, fedCertFile), filepath.Join(dir, fedKeyFile)); err != nil {
			return server.Config{}, fmt.Errorf("federation certificate: %w", err)
		}
		cfg.FederationListen, cfg.FederationCertFile, cfg.FederationKeyFile, cfg.FederationCAFile = opts.FederationListen, fedCertFile, fedKeyFile, fedCAFile
		if opts.FederationCRL != "" {
			if cfg.FederationCRLFile, err = filepath.Abs(opts.FederationCRL); err != nil {
				return server.Config{}, err
			}
		}
		cfg.FederationPeers = append([]string{}, opts.FederationPeers...)
		if err := cfg.Validate(); err != nil {
			return server.Config{}, err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(configText(cfg)), 0o600); err != nil {
		return server.Config{}, fmt.Errorf("write config: %w", err)
	}
	abs := resolve(dir, cfg)
	if err := os.MkdirAll(abs.MediaDir, 0o700); err != nil {
		return server.Config{}, err
	}
	// Create the database and run its migrations now, so a broken disk shows
	// at init rather than at first start.
	admin, err := server.OpenAdmin(abs)
	if err != nil {
		return server.Config{}, fmt.Errorf("create database: %w", err)
	}
	if err := admin.Close(); err != nil {
		return server.Config{}, err
	}
	return abs, nil
}

func makeLocalCA(dir, serverName, host string) error {
	ca, err := pki.NewCA("medicus local CA for "+serverName, pki.CAValidity)
	if err != nil {
		return err
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = append(ips, ip)
	}
	ips = append(ips, net.ParseIP("127.0.0.1"), net.IPv6loopback)
	leaf, err := ca.Issue(serverName, ips, pki.LeafValidity)
	if err != nil {
		return err
	}
	for _, step := range []error{
		pki.WriteCertPEM(filepath.Join(dir, CAFile), ca.Cert),
		pki.WriteKeyPEM(filepath.Join(dir, caKeyFile), ca.Key),
		pki.WriteCertPEM(filepath.Join(dir, certFile), leaf.Cert),
		pki.WriteKeyPEM(filepath.Join(dir, keyFile), leaf.Key),
	} {
		if step != nil {
			return step
		}
	}
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("read %s: %w", from, err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", to, err)
	}
	return nil
}

// Load reads DIR/medicus.toml over the defaults; relative paths in it are
// relative to DIR.
func Load(dir string) (server.Config, error) {
	cfg := server.DefaultConfig()
	path := filepath.Join(dir, ConfigFile)
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		return server.Config{}, fmt.Errorf("read %s: %w", path, err)
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		keys := make([]string, len(undec))
		for i, k := range undec {
			keys[i] = k.String()
		}
		return server.Config{}, fmt.Errorf("%s: unknown keys %s", path, strings.Join(keys, ", "))
	}
	cfg = resolve(dir, cfg)
	if err := cfg.Validate(); err != nil {
		return server.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func resolve(dir string, cfg server.Config) server.Config {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	cfg.TLSCertFile, cfg.TLSKeyFile = abs(cfg.TLSCertFile), abs(cfg.TLSKeyFile)
	cfg.DatabaseFile, cfg.MediaDir = abs(cfg.DatabaseFile), abs(cfg.MediaDir)
	cfg.FederationCertFile, cfg.FederationKeyFile = abs(cfg.FederationCertFile), abs(cfg.FederationKeyFile)
	cfg.FederationCAFile, cfg.FederationCRLFile = abs(cfg.FederationCAFile), abs(cfg.FederationCRLFile)
	return cfg
}

func configText(c server.Config) string {
	return fmt.Sprintf(`# medicus homeserver configuration.
# Relative paths are relative to this file's directory. Restart the server
# after changing anything here.

# The DNS name of this homeserver. It is part of every user id
# (@alice:%[1]s) and room id, and must never change once users exist.
server_name = %[1]q

# Address of the client API (HTTPS and the sync WebSocket).
listen = %[2]q

# TLS certificate chain and key of the client API. "medicus server init"
# issued them from a local CA whose certificate is ca.pem; clients must trust
# ca.pem. Replace them with certificates from the hospital's PKI if you have one.
tls_cert_file = %[3]q
tls_key_file = %[4]q

# SQLite database (WAL mode; back up with "sqlite3 medicus.db .backup").
database_file = %[5]q

# Directory of media blobs, stored by the SHA-256 of their encrypted content.
media_dir = %[6]q

# Largest room message or device message body in bytes (ciphertext).
max_message_bytes = %[7]d

# Largest media upload in bytes.
max_media_bytes = %[8]d

# Failed logins allowed per minute, per account and per client address,
# after a burst of login_failure_burst failures.
login_failures_per_minute = %[9]g
login_failure_burst = %[10]d

# Unclaimed MLS key packages a device may store, and per upload.
max_key_packages_per_device = %[11]d
max_key_packages_per_upload = %[12]d

# Unacknowledged direct device messages (MLS Welcomes, call signalling)
# queued for one device; further messages to it are refused until it
# acknowledges some.
max_queued_device_messages = %[16]d

# Recent events kept in memory for live sync; devices further behind catch
# up from the database.
sync_ring_events = %[13]d

# A sync connection whose client does not read for this long is closed.
sync_write_timeout = %[14]q

# How often each sync connection is pinged and its access token re-checked
# (a revoked device or disabled account is disconnected within this time);
# a client that does not answer within 2.5 intervals is disconnected.
sync_ping_interval = %[17]q

# On SIGINT/SIGTERM, in-flight requests get this long to finish.
shutdown_timeout = %[15]q

# Embedded TURN relay for calls behind NAT: host:port of its UDP and TCP
# listeners (e.g. "0.0.0.0:3478"); empty disables it. turn_relay_ip is the
# address relayed allocations use (empty: the host of turn_listen, which must
# then be a specific IP); turn_public_host is the host named in the turn:
# URIs handed to clients (empty: turn_relay_ip).
turn_listen = %[18]q
turn_relay_ip = %[19]q
turn_public_host = %[20]q

# Secret keying the short-lived TURN credentials of GET /v1/voip/turn
# (Matrix-style TURN REST: HMAC-SHA1 over "expiry:user"). Empty: a random
# secret at every start, so credentials do not survive a restart.
turn_shared_secret = %[21]q

# How long handed-out TURN credentials are valid.
turn_credential_ttl = %[22]q

# Room calls through the embedded SFU: at most this many participants.
sfu_max_participants = %[23]d

# The SFU asks every video sender for a keyframe this often, besides when a
# participant joins or asks.
sfu_keyframe_interval = %[24]q

# The only local IP the SFU offers ICE candidates on; empty: every interface.
sfu_ip = %[25]q

# Federation with other hospitals' homeservers (docs/federation.md): the
# server-to-server address (mutually authenticated TLS 1.3); empty disables
# federation. The certificate and key are this server's from the federation
# CA ("medicus pki issue"); its DNS name must be server_name.
federation_listen = %[26]q
federation_cert_file = %[27]q
federation_key_file = %[28]q

# The federation CA certificate, and its revocation list ("medicus pki
# revoke" updates it; the server reads it at start).
federation_ca_file = %[29]q
federation_crl_file = %[30]q

# The peers this server federates with, as "server.name=host:port": the
# allow-list (like a national federation list) and where to reach each.
# Servers not listed, or listed in federation_blocked, are refused at the
# TLS handshake.
federation_peers = %[31]s
federation_blocked = %[32]s

# The one UDP port of all call media through the SFU (open it in the
# firewall); 0: an ephemeral port per participant.
sfu_udp_port = %[33]d
`, c.ServerName, c.Listen, c.TLSCertFile, c.TLSKeyFile, c.DatabaseFile, c.MediaDir, c.MaxMessageBytes, c.MaxMediaBytes,
		c.LoginFailuresPerMinute, c.LoginFailureBurst, c.MaxKeyPackagesPerDevice, c.MaxKeyPackagesPerUpload, c.SyncRingEvents,
		c.SyncWriteTimeout.String(), c.ShutdownTimeout.String(), c.MaxQueuedDeviceMessages, c.SyncPingInterval.String(),
		c.TURNListen, c.TURNRelayIP, c.TURNPublicHost, c.TURNSharedSecret, c.TURNCredentialTTL.String(),
		c.SFUMaxParticipants, c.SFUKeyframeInterval.String(), c.SFUIP,
		c.FederationListen, c.FederationCertFile, c.FederationKeyFile, c.FederationCAFile, c.FederationCRLFile,
		tomlStrings(c.FederationPeers), tomlStrings(c.FederationBlocked), c.SFUUDPPort)
}

// tomlStrings writes a TOML array of strings.
func tomlStrings(v []string) string {
	q := make([]string, len(v))
	for i, s := range v {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
