package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/client/state"
	"github.com/medicus-health/medicus/crypto/identity"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/mls/policy"
	"github.com/medicus-health/medicus/proto"
)

// Errors callers distinguish with errors.Is.
var (
	// ErrNoProfile means the profile directory holds no logged-in session.
	ErrNoProfile = errors.New("client: no session in this profile; log in first")
	// ErrUnknownRoom means the session holds no group for the room.
	ErrUnknownRoom = errors.New("client: not a member of this room's group")
	// ErrIdentityChanged means a credential names a user under another
	// identity key than the one pinned for that user.
	ErrIdentityChanged = errors.New("client: identity key of a known user changed")
	// ErrBadCredential means a member's credential is not a valid medicus
	// device credential.
	ErrBadCredential = errors.New("client: invalid device credential")
	// ErrUnsupportedSuite means a room's cipher suite is unknown or does
	// not fit this device's signature key.
	ErrUnsupportedSuite = errors.New("client: cipher suite not usable with this device's key")
)

// DefaultSuite is the MLS cipher suite of new rooms:
// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519.
const DefaultSuite mls.CipherSuite = 1

// KeyPackageTarget is how many unclaimed KeyPackages a device keeps on its
// homeserver.
const KeyPackageTarget = 50

// StateFile is the name of the state file inside a profile directory.
const StateFile = "state.db"

// Config says where a session keeps its state and how it is locked.
type Config struct {
	// ProfileDir holds the encrypted state file.
	ProfileDir string
	// Lock unlocks the state file (a passphrase or an age key file).
	Lock state.Lock
	// Logger receives operational logs (never content or keys); nil
	// discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// KeyUpdateInterval is how old this device's keys in a room may grow
	// before Follow refreshes them with a self-update commit
	// (post-compromise security); zero means DefaultKeyUpdateInterval.
	KeyUpdateInterval time.Duration
}

// DefaultKeyUpdateInterval is the default of Config.KeyUpdateInterval.
const DefaultKeyUpdateInterval = 24 * time.Hour

// profile is the session's persistent identity, stored encrypted.
type profile struct {
	Server       string `json:"server"`
	CAPEM        []byte `json:"ca_pem"`
	UserID       string `json:"user_id"`
	DeviceID     string `json:"device_id"`
	Token        string `json:"token"`
	Role         string `json:"role"`
	Suite        uint16 `json:"suite"`
	SignaturePub []byte `json:"signature_pub"`
	SignatureKey []byte `json:"signature_priv"`
	IdentitySeed []byte `json:"identity_seed"`
	Stream       int64  `json:"stream"`
	DeviceMsgAck int64  `json:"device_msg_ack"`
}

// Session is a logged-in device. Its methods are safe for concurrent use;
// room operations are serialized.
type Session struct {
	mu    sync.Mutex
	cfg   Config
	log   *slog.Logger
	st    *state.Store
	api   *api.Client
	prof  profile
	ident *identity.Key
	cred  mls.Credential
	pins  *pinSet
	rooms map[string]*room
	mlsc  *mls.Config
	// pending collects what the session learnt for the caller, unsaved
	// what the next flush writes to the message cache.
	pending, unsaved []Message
}

// LoginOptions are the optional parts of Login.
type LoginOptions struct {
	// DeviceName labels the device in the user's device list.
	DeviceName string
	// Identity is the user's identity key when the user already has one
	// (a second device imports it); nil makes a new one.
	Identity *identity.Key
}

// Login logs userID in to the homeserver at serverURL (trusting the CA
// certificates in caPEM), registers a new device, creates the device's keys
// and stores them in a new profile at cfg.ProfileDir, and uploads
// KeyPackages. It fails if the profile already holds a session.
func Login(ctx context.Context, cfg Config, serverURL string, caPEM []byte, userID, password string, opts *LoginOptions) (*Session, error) {
	if opts == nil {
		opts = &LoginOptions{}
	}
	path := filepath.Join(cfg.ProfileDir, StateFile)
	if state.Exists(path) {
		return nil, fmt.Errorf("profile %s already holds a session; use another --profile", cfg.ProfileDir)
	}
	roots, err := trustRoots(caPEM)
	if err != nil {
		return nil, err
	}
	c, err := api.New(serverURL, roots)
	if err != nil {
		return nil, err
	}
	lr, err := c.Login(ctx, userID, password, opts.DeviceName)
	if err != nil {
		return nil, fmt.Errorf("log in as %s: %w", userID, err)
	}
	ident := opts.Identity
	if ident == nil {
		if ident, err = identity.GenerateKey(); err != nil {
			return nil, err
		}
	}
	sigPriv, sigPub, err := mls.GenerateSignatureKey(DefaultSuite)
	if err != nil {
		return nil, fmt.Errorf("generate device signature key: %w", err)
	}
	st, err := state.Open(ctx, path, cfg.Lock) // creates the profile directory
	if err != nil {
		return nil, err
	}
	s := newSession(cfg, st, c)
	s.prof = profile{
		Server: serverURL, CAPEM: caPEM, UserID: lr.UserID, DeviceID: lr.DeviceID, Token: lr.AccessToken, Role: lr.Role,
		Suite: uint16(DefaultSuite), SignaturePub: sigPub, SignatureKey: sigPriv, IdentitySeed: ident.Seed(),
	}
	if err := s.init(ctx); err != nil {
		st.Close()
		return nil, err
	}
	// The own identity key is pinned for the own user from the start.
	if err := s.pins.check(s.prof.UserID, ident.Public(), s.now()); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.saveProfile(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := s.TopUpKeyPackages(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if opts.Identity != nil {
		// A further device of the user: the others add it to their rooms.
		if err := s.AnnounceDevice(ctx); err != nil {
			s.log.Warn("announcing the new device failed", "err", err)
		}
	}
	s.log.Info("logged in", "user", s.prof.UserID, "device", s.prof.DeviceID)
	return s, nil
}

// Open opens the session stored in cfg.ProfileDir.
func Open(ctx context.Context, cfg Config) (*Session, error) {
	path := filepath.Join(cfg.ProfileDir, StateFile)
	if !state.Exists(path) {
		return nil, ErrNoProfile
	}
	st, err := state.Open(ctx, path, cfg.Lock)
	if err != nil {
		return nil, err
	}
	raw, err := st.Get(ctx, "profile")
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("read profile: %w", err)
	}
	var p profile
	if err := json.Unmarshal(raw, &p); err != nil {
		st.Close()
		return nil, fmt.Errorf("decode profile: %w", err)
	}
	roots, _ := trustRoots(p.CAPEM)
	c, err := api.New(p.Server, roots)
	if err != nil {
		st.Close()
		return nil, err
	}
	s := newSession(cfg, st, c)
	s.prof = p
	if err := s.init(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

func newSession(cfg Config, st *state.Store, c *api.Client) *Session {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Session{cfg: cfg, log: log, st: st, api: c, rooms: map[string]*room{}}
}

// init derives the in-memory parts of a session from its profile and state.
func (s *Session) init(ctx context.Context) error {
	s.api.SetToken(s.prof.Token)
	s.api.UserID, s.api.Device = s.prof.UserID, s.prof.DeviceID
	var err error
	if s.ident, err = identity.KeyFromSeed(s.prof.IdentitySeed); err != nil {
		return err
	}
	dc, err := s.ident.Certify(s.prof.UserID, s.prof.DeviceID, s.prof.SignaturePub)
	if err != nil {
		return err
	}
	s.cred = mls.Credential{CredentialType: mls.CredentialBasic, Identity: dc.Marshal()}
	if s.pins, err = loadPins(ctx, s.st); err != nil {
		return err
	}
	s.mlsc = &mls.Config{Credentials: mls.CredentialValidatorFunc(s.validateCredential), Now: s.now}
	return s.loadRooms(ctx)
}

func (s *Session) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

func (s *Session) saveProfile(ctx context.Context) error {
	raw, err := json.Marshal(s.prof)
	if err != nil {
		return err
	}
	return s.st.Put(ctx, "profile", raw)
}

// Close persists what is pending and closes the state file.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.api.CloseIdle()
	return s.st.Close()
}

// UserID returns the session's user id.
func (s *Session) UserID() string { return s.prof.UserID }

// DeviceID returns the session's device id.
func (s *Session) DeviceID() string { return s.prof.DeviceID }

// Role returns the user's server role (doctor, nurse, patient, bot, admin).
func (s *Session) Role() string { return s.prof.Role }

// API returns the underlying homeserver client, for calls the session does
// not wrap.
func (s *Session) API() *api.Client { return s.api }

// IdentityKey returns the user's identity key, e.g. to export it for a
// second device.
func (s *Session) IdentityKey() *identity.Key { return s.ident }

// Devices lists the user's devices on the homeserver.
func (s *Session) Devices(ctx context.Context) ([]proto.Device, error) {
	return s.api.Devices(ctx)
}

// keyPackageRecord is a KeyPackage this device published, with its private
// keys, kept until a Welcome uses it.
type keyPackageRecord struct {
	KeyPackage []byte                `json:"key_package"`
	Private    mls.KeyPackagePrivate `json:"private"`
	LastResort bool                  `json:"last_resort"`
}

func keyPackageName(kp []byte) string {
	h := sha256.Sum256(kp)
	return "kp:" + hex.EncodeToString(h[:])
}

// keyPackageSuites returns the cipher suites this device publishes
// KeyPackages for: every supported suite whose signature scheme is that of
// the device's signature key (for an Ed25519 key 0x0001, 0x0003 and the
// post-quantum hybrid 0xF001), so that it can be added to rooms of any of
// them.
func (s *Session) keyPackageSuites() []mls.CipherSuite {
	own := mls.CipherSuite(s.prof.Suite)
	var out []mls.CipherSuite
	for _, cs := range mls.SupportedCipherSuites() {
		if cs.SignatureScheme() == own.SignatureScheme() {
			out = append(out, cs)
		}
	}
	return out
}

// newKeyPackage makes and stores one KeyPackage of this device in suite.
func (s *Session) newKeyPackage(ctx context.Context, suite mls.CipherSuite, lastResort bool) ([]byte, error) {
	// Every KeyPackage supports the room policy extension, so that the
	// device can join rooms whose group context carries it (RFC 9420
	// §12.1.7).
	kp, priv, err := mls.NewKeyPackage(suite, s.cred, s.prof.SignatureKey, &mls.KeyPackageOptions{Extensions: []uint16{policy.ExtensionType}})
	if err != nil {
		return nil, fmt.Errorf("make key package in suite %#04x: %w", uint16(suite), err)
	}
	raw, err := json.Marshal(keyPackageRecord{KeyPackage: kp, Private: *priv, LastResort: lastResort})
	if err != nil {
		return nil, err
	}
	if err := s.st.Put(ctx, keyPackageName(kp), raw); err != nil {
		return nil, err
	}
	return kp, nil
}

// TopUpKeyPackages uploads KeyPackages until the homeserver holds
// KeyPackageTarget unclaimed ones for this device, and a last-resort one,
// in each suite of keyPackageSuites.
func (s *Session) TopUpKeyPackages(ctx context.Context) error {
	for _, suite := range s.keyPackageSuites() {
		if err := s.topUpSuite(ctx, suite); err != nil {
			return err
		}
	}
	return nil
}

func (s *Session) topUpSuite(ctx context.Context, suite mls.CipherSuite) error {
	count, err := s.api.CountSuiteKeyPackages(ctx, uint16(suite))
	if err != nil {
		return fmt.Errorf("count key packages of suite %#04x: %w", uint16(suite), err)
	}
	var kps [][]byte
	for range KeyPackageTarget - count.Unclaimed {
		kp, err := s.newKeyPackage(ctx, suite, false)
		if err != nil {
			return err
		}
		kps = append(kps, kp)
	}
	var lastResort []byte
	if !count.HasLastResort {
		if lastResort, err = s.newKeyPackage(ctx, suite, true); err != nil {
			return err
		}
	}
	if len(kps) == 0 && lastResort == nil {
		return nil
	}
	req := proto.UploadKeyPackagesRequest{KeyPackages: kps, LastResort: lastResort, Suite: uint16(suite)}
	if _, err := s.api.UploadKeyPackagesWith(ctx, req); err != nil {
		return fmt.Errorf("upload key packages of suite %#04x: %w", uint16(suite), err)
	}
	s.log.Debug("key packages uploaded", "suite", uint16(suite), "count", len(kps), "last_resort", lastResort != nil)
	return nil
}

// equalKey reports whether two public keys are equal.
func equalKey(a, b []byte) bool { return bytes.Equal(a, b) }

// trustRoots returns the CA certificates in caPEM; with no caPEM it returns
// nil, the system's roots (in a browser, the browser's).
func trustRoots(caPEM []byte) (*x509.CertPool, error) {
	if len(caPEM) == 0 {
		return nil, nil
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the CA file holds no PEM certificate")
	}
	return roots, nil
}
