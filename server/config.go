package server

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/medicus-health/medicus/server/sfu"
)

// Config is the homeserver's configuration. The toml tags name the keys of
// the config file that `medicus server init` writes (see server/homedir).
type Config struct {
	ServerName      string `toml:"server_name"`       // DNS name, e.g. "uk-freiburg.example"
	Listen          string `toml:"listen"`            // client API address, e.g. "127.0.0.1:8443"
	TLSCertFile     string `toml:"tls_cert_file"`     // PEM certificate chain of the client API
	TLSKeyFile      string `toml:"tls_key_file"`      // PEM private key of the client API
	DatabaseFile    string `toml:"database_file"`     // SQLite file
	MediaDir        string `toml:"media_dir"`         // content-addressed blob store
	MaxMessageBytes int64  `toml:"max_message_bytes"` // largest room or device message body
	MaxMediaBytes   int64  `toml:"max_media_bytes"`   // largest media upload

	// LoginFailuresPerMinute and LoginFailureBurst limit failed logins per
	// account and per client address.
	LoginFailuresPerMinute float64 `toml:"login_failures_per_minute"`
	LoginFailureBurst      int     `toml:"login_failure_burst"`

	// MaxKeyPackagesPerDevice bounds the unclaimed key packages a device may
	// store; MaxKeyPackagesPerUpload bounds one upload.
	MaxKeyPackagesPerDevice int `toml:"max_key_packages_per_device"`
	MaxKeyPackagesPerUpload int `toml:"max_key_packages_per_upload"`

	// MaxQueuedDeviceMessages bounds the unacknowledged direct messages
	// queued for one device.
	MaxQueuedDeviceMessages int `toml:"max_queued_device_messages"`

	// SyncRingEvents is how many recent events are kept in memory for live
	// sync; devices further behind catch up from the database.
	SyncRingEvents int `toml:"sync_ring_events"`
	// SyncWriteTimeout closes a sync connection whose client does not read.
	SyncWriteTimeout Duration `toml:"sync_write_timeout"`
	// SyncPingInterval is how often a sync connection is pinged and its
	// token re-checked; a client that does not answer within 2.5 intervals
	// is disconnected.
	SyncPingInterval Duration `toml:"sync_ping_interval"`
	// ShutdownTimeout bounds how long in-flight requests may take to finish.
	ShutdownTimeout Duration `toml:"shutdown_timeout"`

	// TURNListen is the host:port of the embedded TURN relay (UDP and TCP
	// on the same port); empty disables it.
	TURNListen string `toml:"turn_listen"`
	// TURNRelayIP is the address relayed allocations use; empty means the
	// host of TURNListen.
	TURNRelayIP string `toml:"turn_relay_ip"`
	// TURNPublicHost is the host named in the turn: URIs given to clients;
	// empty means TURNRelayIP.
	TURNPublicHost string `toml:"turn_public_host"`
	// TURNSharedSecret keys the TURN REST credentials; empty means a random
	// secret per start.
	TURNSharedSecret string `toml:"turn_shared_secret"`
	// TURNCredentialTTL is how long handed-out TURN credentials are valid.
	TURNCredentialTTL Duration `toml:"turn_credential_ttl"`

	// SFUMaxParticipants bounds the participants of one room call.
	SFUMaxParticipants int `toml:"sfu_max_participants"`
	// SFUKeyframeInterval is how often the SFU asks every publisher for a
	// keyframe (besides when a participant joins).
	SFUKeyframeInterval Duration `toml:"sfu_keyframe_interval"`
	// SFUIP is the only local address the SFU offers ICE candidates on;
	// empty means every interface.
	SFUIP string `toml:"sfu_ip"`
	// SFUUDPPort is the one UDP port of all call media; 0 means an
	// ephemeral port per participant.
	SFUUDPPort int `toml:"sfu_udp_port"`

	// FederationListen is the host:port of the server-to-server API
	// (mutually authenticated TLS 1.3); empty disables federation.
	FederationListen string `toml:"federation_listen"`
	// FederationCertFile and FederationKeyFile are this server's
	// certificate from the federation CA (medicus pki issue) and its key.
	FederationCertFile string `toml:"federation_cert_file"`
	FederationKeyFile  string `toml:"federation_key_file"`
	// FederationCAFile is the federation CA certificate; FederationCRLFile
	// its revocation list (optional).
	FederationCAFile  string `toml:"federation_ca_file"`
	FederationCRLFile string `toml:"federation_crl_file"`
	// FederationPeers lists the servers this one federates with, as
	// "name=host:port": the allow-list and where to reach each.
	FederationPeers []string `toml:"federation_peers"`
	// FederationBlocked lists server names refused even if listed as peers.
	FederationBlocked []string `toml:"federation_blocked"`

	// sfuTest adjusts the SFU's configuration in tests (virtual network,
	// packet tap). A pointer keeps Config comparable.
	sfuTest *func(*sfu.Config)
}

// Duration is a time.Duration written as a string ("10s") in config files.
type Duration struct{ time.Duration }

// UnmarshalText parses a duration such as "10s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultConfig returns a configuration whose every field has a working
// default except the server name and the file locations.
func DefaultConfig() Config {
	return Config{
		FederationPeers:         []string{},
		FederationBlocked:       []string{},
		Listen:                  "127.0.0.1:8443",
		MaxMessageBytes:         1 << 20,
		MaxMediaBytes:           100 << 20,
		LoginFailuresPerMinute:  5,
		LoginFailureBurst:       10,
		MaxKeyPackagesPerDevice: 500,
		MaxKeyPackagesPerUpload: 200,
		MaxQueuedDeviceMessages: 10000,
		SyncRingEvents:          16384,
		SyncWriteTimeout:        Duration{15 * time.Second},
		SyncPingInterval:        Duration{30 * time.Second},
		ShutdownTimeout:         Duration{10 * time.Second},
		TURNCredentialTTL:       Duration{24 * time.Hour},
		SFUMaxParticipants:      8,
		SFUKeyframeInterval:     Duration{3 * time.Second},
	}
}

var serverNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// ValidServerName reports whether name is a lower-case DNS name.
func ValidServerName(name string) bool {
	return len(name) <= 253 && serverNameRE.MatchString(name)
}

// Validate reports the first problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if !ValidServerName(c.ServerName) {
		errs = append(errs, fmt.Errorf("server_name %q is not a lower-case DNS name", c.ServerName))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	for key, v := range map[string]string{"tls_cert_file": c.TLSCertFile, "tls_key_file": c.TLSKeyFile, "database_file": c.DatabaseFile, "media_dir": c.MediaDir} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set", key))
		}
	}
	if c.MaxMessageBytes < 1024 {
		errs = append(errs, fmt.Errorf("max_message_bytes %d is below 1024", c.MaxMessageBytes))
	}
	if c.MaxMediaBytes < 1 {
		errs = append(errs, fmt.Errorf("max_media_bytes %d must be positive", c.MaxMediaBytes))
	}
	if c.LoginFailuresPerMinute <= 0 || c.LoginFailureBurst < 1 {
		errs = append(errs, errors.New("login_failures_per_minute and login_failure_burst must be positive"))
	}
	if c.MaxKeyPackagesPerDevice < 1 || c.MaxKeyPackagesPerUpload < 1 {
		errs = append(errs, errors.New("key package limits must be positive"))
	}
	if c.MaxQueuedDeviceMessages < 1 {
		errs = append(errs, errors.New("max_queued_device_messages must be positive"))
	}
	if c.SyncPingInterval.Duration < 10*time.Millisecond || c.SyncWriteTimeout.Duration <= 0 || c.ShutdownTimeout.Duration <= 0 {
		errs = append(errs, errors.New("sync_ping_interval (at least 10ms), sync_write_timeout and shutdown_timeout must be positive"))
	}
	if c.SyncRingEvents < 1 {
		errs = append(errs, errors.New("sync_ring_events must be positive"))
	}
	errs = append(errs, c.validateMedia()...)
	errs = append(errs, c.validateFederation()...)
	return errors.Join(errs...)
}

func (c Config) validateFederation() []error {
	if c.FederationListen == "" {
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(c.FederationListen); err != nil {
		errs = append(errs, fmt.Errorf("federation_listen %q: %w", c.FederationListen, err))
	}
	for key, v := range map[string]string{"federation_cert_file": c.FederationCertFile, "federation_key_file": c.FederationKeyFile, "federation_ca_file": c.FederationCAFile} {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is not set, but federation_listen is", key))
		}
	}
	if _, err := c.federationPeers(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// federationPeers parses FederationPeers into name → address.
func (c Config) federationPeers() (map[string]string, error) {
	out := map[string]string{}
	for _, p := range c.FederationPeers {
		name, addr, ok := strings.Cut(p, "=")
		if !ok || !ValidServerName(name) || name == c.ServerName {
			return nil, fmt.Errorf("federation_peers entry %q is not \"server.name=host:port\" of another server", p)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("federation_peers entry %q: %w", p, err)
		}
		out[name] = addr
	}
	return out, nil
}
