// Package sfu is the homeserver's selective forwarding unit for room calls
// of up to a few participants, on pion/webrtc. Each participant holds one
// PeerConnection with the SFU; the SFU makes every offer (so there is no
// glare), renegotiates when participants join or leave, and forwards the
// RTP of every participant's tracks to every other participant. It asks
// publishers for keyframes (PLI) when a participant joins, when a
// subscriber asks, and periodically; NACKs and retransmissions are handled
// by pion's interceptors on both legs.
//
// The SFU never decrypts media: clients encrypt every frame end to end with
// SFrame (crypto/sframe) under keys from the room's MLS group, and the SFU
// only sees SRTP-decrypted RTP whose payload is SFrame ciphertext.
//
// Signalling runs over a WebSocket that the homeserver has authenticated
// and checked for room membership; the messages are proto.SFUMessage.
package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/medicus-health/medicus/server/internal/pionlog"
)

// Config configures an SFU.
type Config struct {
	// MaxParticipants bounds the participants of one room call.
	MaxParticipants int
	// PLIInterval is how often every publisher is asked for a keyframe.
	PLIInterval time.Duration
	// IP, if set, is the only local address used for ICE candidates.
	IP string
	// UDPPort, if not 0, is the one UDP port all participants' media uses
	// (ICE UDP multiplexing), so that a firewall needs one rule; 0 means an
	// ephemeral port per participant.
	UDPPort int
	// NegotiationTimeout bounds how long a participant may take to answer
	// an offer. 0 means 30 seconds.
	NegotiationTimeout time.Duration
	// Logger receives the SFU's logs; nil discards them.
	Logger *slog.Logger
	// Network, if set, adjusts the WebRTC settings, for instance to run on
	// pion's virtual network in tests.
	Network func(*webrtc.SettingEngine)
	// Tap, if set, sees the payload of every RTP packet the SFU forwards,
	// with the room and the sending device. Tests use it to show that the
	// SFU only ever handles ciphertext.
	Tap func(room, device string, payload []byte)
}

// Errors of Join that callers distinguish.
var (
	// ErrCallFull is returned when a room call has MaxParticipants already.
	ErrCallFull = errors.New("sfu: the call is full")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("sfu: closed")
)

// SFU forwards media between the participants of room calls.
type SFU struct {
	cfg Config
	log *slog.Logger
	api *webrtc.API
	mux *ice.MultiUDPMuxDefault // nil without UDPPort

	mu     sync.Mutex
	rooms  map[string]*room
	closed bool
	wg     sync.WaitGroup // running sessions
}

// New returns an SFU. It fails if the codecs or interceptors cannot be
// registered or IP is not an IP address.
func New(cfg Config) (*SFU, error) {
	if cfg.MaxParticipants < 2 {
		return nil, fmt.Errorf("sfu: MaxParticipants %d is below 2", cfg.MaxParticipants)
	}
	if cfg.PLIInterval <= 0 {
		return nil, errors.New("sfu: PLIInterval must be positive")
	}
	if cfg.NegotiationTimeout <= 0 {
		cfg.NegotiationTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &SFU{cfg: cfg, log: cfg.Logger, rooms: map[string]*room{}}
	var keep func(net.IP) bool
	if cfg.IP != "" {
		want := net.ParseIP(cfg.IP)
		if want == nil {
			return nil, fmt.Errorf("sfu: %q is not an IP address", cfg.IP)
		}
		keep = func(got net.IP) bool { return got.Equal(want) }
	}
	if cfg.UDPPort != 0 {
		opts := []ice.UDPMuxFromPortOption{ice.UDPMuxFromPortWithLoopback(), ice.UDPMuxFromPortWithLogger(pionlog.Factory(cfg.Logger).NewLogger("udpmux"))}
		if keep != nil {
			opts = append(opts, ice.UDPMuxFromPortWithIPFilter(keep))
		}
		mux, err := ice.NewMultiUDPMuxFromPort(cfg.UDPPort, opts...)
		if err != nil {
			return nil, fmt.Errorf("sfu: listen on UDP port %d: %w", cfg.UDPPort, err)
		}
		s.mux = mux
	}
	api, err := s.newAPI(keep)
	if err != nil {
		if s.mux != nil {
			s.mux.Close()
		}
		return nil, err
	}
	s.api = api
	return s, nil
}

// newAPI returns a pion API with the default codecs (VP8, VP9, H.264, AV1,
// Opus, …) and interceptors (NACK generator and responder, RTCP reports,
// TWCC). keep, if set, selects the local addresses used for ICE; loopback
// candidates are included so that calls work on one machine.
func (s *SFU) newAPI(keep func(net.IP) bool) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("sfu: register codecs: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("sfu: register interceptors: %w", err)
	}
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory(s.log)}
	se.SetIncludeLoopbackCandidate(true)
	if keep != nil {
		se.SetIPFilter(keep)
	}
	if s.mux != nil {
		se.SetICEUDPMux(s.mux)
	}
	if s.cfg.Network != nil {
		s.cfg.Network(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// Participants returns the devices in room's call, in join order.
func (s *SFU) Participants(roomID string) []string {
	s.mu.Lock()
	r := s.rooms[roomID]
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.peers))
	for i, p := range r.peers {
		out[i] = p.device
	}
	return out
}

// Close ends every call and waits for the sessions to finish.
func (s *SFU) Close() {
	s.mu.Lock()
	s.closed = true
	var peers []*peer
	for _, r := range s.rooms {
		r.mu.Lock()
		peers = append(peers, r.peers...)
		r.mu.Unlock()
	}
	s.mu.Unlock()
	for _, p := range peers {
		p.cancel()
	}
	s.wg.Wait()
	if s.mux != nil {
		s.mux.Close()
	}
}

// room returns the call of roomID, creating it.
func (s *SFU) room(roomID string) (*room, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	r := s.rooms[roomID]
	if r == nil {
		r = &room{id: roomID, sfu: s}
		s.rooms[roomID] = r
	}
	return r, nil
}

// dropIfEmpty forgets r once its last participant left.
func (s *SFU) dropIfEmpty(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.peers) == 0 && s.rooms[r.id] == r {
		delete(s.rooms, r.id)
	}
}
