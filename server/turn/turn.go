// Package turn embeds a TURN relay (RFC 8656, pion/turn) in the homeserver,
// listening on UDP and TCP on one port, and authenticates clients with
// short-lived TURN REST credentials as Matrix homeservers hand them out
// (draft-uberti-behave-turn-rest): the username is "expiry:user", expiry in
// Unix seconds, and the password is base64(HMAC-SHA1(shared secret,
// username)). Expired or forged usernames are refused.
package turn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	pionturn "github.com/pion/turn/v5"

	"github.com/medicus-health/medicus/server/internal/pionlog"
)

// Config configures the relay.
type Config struct {
	// Listen is the host:port of the UDP and TCP listeners. With port 0 the
	// UDP port is chosen by the system and TCP listens on the same port.
	Listen string
	// RelayIP is the address relayed allocations are opened on and
	// advertised with. Empty means the host of Listen, which must then be a
	// specific IP.
	RelayIP string
	// PublicHost is the host name or IP put in the URIs handed to clients.
	// Empty means RelayIP.
	PublicHost string
	// Realm is the TURN realm, normally the homeserver's name.
	Realm string
	// SharedSecret keys the credentials' HMAC. Empty means a random secret
	// for this process (credentials then do not survive a restart).
	SharedSecret string
	// TTL is how long handed-out credentials are valid.
	TTL time.Duration
	// Logger receives the relay's logs; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
	// MaxAllocationsPerUser bounds one user's simultaneous allocations
	// (each holds a socket); further Allocate requests get 486 Allocation
	// Quota Reached. 0 means 16.
	MaxAllocationsPerUser int
}

// Credentials are TURN REST credentials for one user.
type Credentials struct {
	Username string
	Password string
	TTL      time.Duration
	URIs     []string
}

// Server is a running TURN relay.
type Server struct {
	cfg     Config
	secret  []byte
	udpAddr *net.UDPAddr
	tcpAddr *net.TCPAddr
	relay   *pionturn.Server
	uris    []string

	mu          sync.Mutex
	allocations map[string]int // live allocations per user
}

// errBadCredentials is why a username is refused before its password is
// checked (in the log only: TURN answers 401 whatever the reason).
var errBadCredentials = errors.New("turn: malformed or expired username")

// Start opens the listeners and starts relaying.
func Start(cfg Config) (*Server, error) {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("turn listen address %q: %w", cfg.Listen, err)
	}
	if cfg.RelayIP == "" {
		cfg.RelayIP = host
	}
	relayIP := net.ParseIP(cfg.RelayIP)
	if relayIP == nil || relayIP.IsUnspecified() {
		return nil, fmt.Errorf("turn relay address %q must be a specific IP address", cfg.RelayIP)
	}
	if cfg.PublicHost == "" {
		cfg.PublicHost = cfg.RelayIP
	}
	if cfg.TTL <= 0 {
		return nil, errors.New("turn credential TTL must be positive")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxAllocationsPerUser <= 0 {
		cfg.MaxAllocationsPerUser = 16
	}
	s := &Server{cfg: cfg, secret: []byte(cfg.SharedSecret), allocations: map[string]int{}}
	if len(s.secret) == 0 {
		s.secret = make([]byte, 32)
		rand.Read(s.secret)
	}

	udp, err := net.ListenPacket("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("turn: listen udp %s: %w", cfg.Listen, err)
	}
	s.udpAddr = udp.LocalAddr().(*net.UDPAddr)
	tcp, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(s.udpAddr.Port)))
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("turn: listen tcp on port %d: %w", s.udpAddr.Port, err)
	}
	s.tcpAddr = tcp.Addr().(*net.TCPAddr)

	gen := func() pionturn.RelayAddressGenerator {
		return &pionturn.RelayAddressGeneratorStatic{RelayAddress: relayIP, Address: cfg.RelayIP}
	}
	s.relay, err = pionturn.NewServer(pionturn.ServerConfig{
		Realm:        cfg.Realm,
		AuthHandler:  s.authenticate,
		QuotaHandler: s.underQuota,
		EventHandler: pionturn.EventHandler{
			OnAllocationCreated: func(_, _ net.Addr, _, user, _ string, _ net.Addr, _ int) { s.countAllocation(user, 1) },
			OnAllocationDeleted: func(_, _ net.Addr, _, user, _ string) { s.countAllocation(user, -1) },
		},
		LoggerFactory:     pionlog.Factory(cfg.Logger),
		PacketConnConfigs: []pionturn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: gen()}},
		ListenerConfigs:   []pionturn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: gen()}},
	})
	if err != nil {
		udp.Close()
		tcp.Close()
		return nil, fmt.Errorf("turn: start relay: %w", err)
	}
	hp := net.JoinHostPort(cfg.PublicHost, strconv.Itoa(s.udpAddr.Port))
	s.uris = []string{"turn:" + hp + "?transport=udp", "turn:" + hp + "?transport=tcp"}
	return s, nil
}

// Close stops the relay and closes every allocation.
func (s *Server) Close() error { return s.relay.Close() }

// UDPAddr returns the address of the UDP listener.
func (s *Server) UDPAddr() *net.UDPAddr { return s.udpAddr }

// TCPAddr returns the address of the TCP listener.
func (s *Server) TCPAddr() *net.TCPAddr { return s.tcpAddr }

// AllocationCount returns the number of live allocations.
func (s *Server) AllocationCount() int { return s.relay.AllocationCount() }

// Credentials returns credentials for user valid for the configured TTL.
func (s *Server) Credentials(user string) Credentials {
	expiry := s.cfg.Now().Add(s.cfg.TTL)
	username, password := RESTCredentials(s.secret, user, expiry)
	return Credentials{Username: username, Password: password, TTL: s.cfg.TTL, URIs: append([]string(nil), s.uris...)}
}

// RESTCredentials returns the TURN REST username "expiry:user" (expiry in
// Unix seconds) and its password base64(HMAC-SHA1(secret, username)).
func RESTCredentials(secret []byte, user string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + user
	return username, restPassword(secret, username)
}

func restPassword(secret []byte, username string) string {
	m := hmac.New(sha1.New, secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// authenticate is the relay's long-term credential check (RFC 8489 §9.2):
// it returns the key MD5(username:realm:password) for a username that has
// not expired; the relay then verifies the request's MESSAGE-INTEGRITY with
// it, so a wrong password fails there.
func (s *Server) authenticate(ra *pionturn.RequestAttributes) (string, []byte, bool) {
	user, err := s.checkUsername(ra.Username)
	if err != nil {
		s.cfg.Logger.Info("turn credentials refused", "addr", addrString(ra.SrcAddr), "err", err)
		return "", nil, false
	}
	return user, pionturn.GenerateAuthKey(ra.Username, ra.Realm, restPassword(s.secret, ra.Username)), true
}

// checkUsername parses "expiry:user" and refuses an expired one. The user
// part may itself contain colons (Matrix-style "@alice:example.org").
func (s *Server) checkUsername(username string) (string, error) {
	ts, user, ok := strings.Cut(username, ":")
	if !ok || user == "" || len(username) > 512 {
		return "", fmt.Errorf("%w: want expiry:user", errBadCredentials)
	}
	expiry, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || expiry < 0 {
		return "", fmt.Errorf("%w: expiry is not a Unix time", errBadCredentials)
	}
	if now := s.cfg.Now().Unix(); expiry < now {
		return "", fmt.Errorf("%w: expired %ds ago", errBadCredentials, now-expiry)
	}
	return user, nil
}

// underQuota reports whether an authenticated user (the user part of the
// username, as authenticate returned it) may open another allocation.
// Concurrent requests of one user may overshoot the limit by their number;
// the count is exact again once they exist.
func (s *Server) underQuota(user, _ string, _ net.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.allocations[user] < s.cfg.MaxAllocationsPerUser
}

func (s *Server) countAllocation(user string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.allocations[user] + delta; n > 0 {
		s.allocations[user] = n
	} else {
		delete(s.allocations, user)
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
