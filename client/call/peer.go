package call

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/webrtc/v4"
)

// PeerConfig configures the headless WebRTC peers a Switchboard creates.
type PeerConfig struct {
	// ICEServers are the STUN/TURN servers, typically from the homeserver's
	// TURN credentials (see TURNCredentials.ICEServers).
	ICEServers []webrtc.ICEServer
	// RelayOnly restricts ICE to relay candidates (ICE transport policy
	// "relay"): media goes through TURN and no host address is revealed to
	// the remote party.
	RelayOnly bool
	// Media returns the source of one call's outgoing media; nil sends
	// Synthetic{}.
	Media func() (MediaSource, error)
	// LoopbackOnly gathers host candidates on loopback addresses only
	// (tests and single-machine demos).
	LoopbackOnly bool
	// Net, if set, replaces the operating system's network (pion's vnet in
	// tests).
	Net transport.Net
	// ICEDisconnectedTimeout, ICEFailedTimeout and ICEKeepalive override
	// pion's defaults (5 s, 25 s, 2 s) when non-zero.
	ICEDisconnectedTimeout, ICEFailedTimeout, ICEKeepalive time.Duration
	// Logger receives the peer's diagnostics; nil means slog.Default().
	Logger *slog.Logger
}

// PeerState is the connection state of a peer.
type PeerState int

// Peer states, as reported to PeerHandlers.OnState.
const (
	PeerConnecting PeerState = iota
	PeerConnected
	PeerDisconnected
	PeerFailed
)

// PeerHandlers receive a peer's asynchronous events. They are called from
// pion's goroutines and must not block.
type PeerHandlers struct {
	// OnCandidate receives each local ICE candidate; nil marks the end of
	// gathering.
	OnCandidate func(*Candidate)
	// OnState receives connection state changes (ICE and DTLS together).
	OnState func(PeerState)
	// OnMediaError receives the error that stopped the outgoing media.
	OnMediaError func(error)
}

// Peer is a headless WebRTC endpoint: one pion PeerConnection sending a
// video and an audio track and receiving the remote ones. Its methods are
// safe for concurrent use.
type Peer struct {
	pc     *webrtc.PeerConnection
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	video, audio *webrtc.TrackLocalStaticSample
	source       MediaSource
	startMedia   sync.Once

	rtpReceived   atomic.Uint64
	videoReceived atomic.Uint64
	nacksReceived atomic.Uint64
	nacksSent     atomic.Uint64
	resent        atomic.Uint64
	tracks        atomic.Int32
	closeOnce     sync.Once
}

// NewPeer creates a peer with its outgoing tracks. Media starts flowing once
// the connection is up.
func NewPeer(cfg PeerConfig, h PeerHandlers) (*Peer, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	var source MediaSource = Synthetic{}
	if cfg.Media != nil {
		s, err := cfg.Media()
		if err != nil {
			return nil, fmt.Errorf("open media: %w", err)
		}
		source = s
	}

	p := &Peer{log: log, source: source}
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("register codecs: %w", err)
	}
	reg := &interceptor.Registry{}
	// Count NACKs sent and packets resent: registered before the defaults
	// so that it wraps the writers the NACK generator and responder use.
	reg.Add(&counter{nacks: &p.nacksSent, resent: &p.resent})
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, fmt.Errorf("register interceptors: %w", err)
	}

	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// pion closes the PeerConnection by itself when the remote side's DTLS
	// close_notify arrives, racing with GetStats (it clears the stats
	// getter unlocked). Only Close closes it here: a remote side that
	// leaves without a hangup is noticed by ICE consent checks failing
	// (PeerFailed, then ice_timeout).
	se.DisableCloseByDTLS(true)
	if cfg.LoopbackOnly {
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if cfg.Net != nil {
		se.SetNet(cfg.Net)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	if cfg.ICEDisconnectedTimeout > 0 || cfg.ICEFailedTimeout > 0 || cfg.ICEKeepalive > 0 {
		d, f, k := cfg.ICEDisconnectedTimeout, cfg.ICEFailedTimeout, cfg.ICEKeepalive
		if d == 0 {
			d = 5 * time.Second
		}
		if f == 0 {
			f = 25 * time.Second
		}
		if k == 0 {
			k = 2 * time.Second
		}
		se.SetICETimeouts(d, f, k)
	}
	if cfg.RelayOnly {
		// With relay candidates only there is nothing better to wait
		// for (pion waits 2 s for other types before accepting relay).
		se.SetRelayAcceptanceMinWait(0)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se))

	conf := webrtc.Configuration{ICEServers: cfg.ICEServers, BundlePolicy: webrtc.BundlePolicyMaxBundle}
	if cfg.RelayOnly {
		conf.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	p.pc = pc
	p.ctx, p.cancel = context.WithCancel(context.Background())

	p.video, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: source.VideoMimeType()}, "video", "medicus")
	if err == nil {
		p.audio, err = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "medicus")
	}
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("new track: %w", err)
	}
	for _, tr := range []webrtc.TrackLocal{p.video, p.audio} {
		sender, err := pc.AddTrack(tr)
		if err != nil {
			pc.Close()
			return nil, fmt.Errorf("add track: %w", err)
		}
		p.wg.Add(1)
		go p.readRTCP(sender)
	}

	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if h.OnCandidate == nil {
			return
		}
		if c == nil {
			h.OnCandidate(nil)
			return
		}
		init := c.ToJSON()
		cand := Candidate{Candidate: init.Candidate}
		if init.SDPMid != nil {
			cand.SDPMid = *init.SDPMid
		}
		if init.SDPMLineIndex != nil {
			cand.SDPMLineIndex = *init.SDPMLineIndex
		}
		h.OnCandidate(&cand)
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		var ps PeerState
		switch s {
		case webrtc.PeerConnectionStateConnected:
			ps = PeerConnected
			p.startMedia.Do(func() {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					if err := p.source.Stream(p.ctx, p.video, p.audio); err != nil && p.ctx.Err() == nil {
						p.log.Warn("call media failed", "err", err)
						if h.OnMediaError != nil {
							h.OnMediaError(err)
						}
					}
				}()
			})
		case webrtc.PeerConnectionStateDisconnected:
			ps = PeerDisconnected
		case webrtc.PeerConnectionStateFailed:
			ps = PeerFailed
		case webrtc.PeerConnectionStateClosed:
			return // only Close closes the connection
		default:
			ps = PeerConnecting
		}
		if h.OnState != nil {
			h.OnState(ps)
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.tracks.Add(1)
		video := tr.Kind() == webrtc.RTPCodecTypeVideo
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			// Reading drives the receive interceptors (NACK generation,
			// receiver reports, statistics).
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				p.rtpReceived.Add(1)
				if video {
					p.videoReceived.Add(1)
				}
			}
		}()
	})
	return p, nil
}

// readRTCP reads the RTCP arriving for one sender, which runs the NACK
// responder and counts the NACKs received.
func (p *Peer) readRTCP(sender *webrtc.RTPSender) {
	defer p.wg.Done()
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			if _, ok := pkt.(*rtcp.TransportLayerNack); ok {
				p.nacksReceived.Add(1)
			}
		}
	}
}

func toWebRTC(d SessionDescription) (webrtc.SessionDescription, error) {
	var t webrtc.SDPType
	switch d.Type {
	case "offer":
		t = webrtc.SDPTypeOffer
	case "answer":
		t = webrtc.SDPTypeAnswer
	default:
		return webrtc.SessionDescription{}, fmt.Errorf("session description of type %q", d.Type)
	}
	return webrtc.SessionDescription{Type: t, SDP: d.SDP}, nil
}

// CreateOffer creates an SDP offer (with an ICE restart if iceRestart),
// sets it as the local description and returns it. Candidates trickle to
// OnCandidate.
func (p *Peer) CreateOffer(iceRestart bool) (SessionDescription, error) {
	offer, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: iceRestart})
	if err != nil {
		return SessionDescription{}, fmt.Errorf("create offer: %w", err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return SessionDescription{}, fmt.Errorf("set local offer: %w", err)
	}
	return SessionDescription{Type: "offer", SDP: offer.SDP}, nil
}

// CreateAnswer answers the remote offer, sets the answer as the local
// description and returns it.
func (p *Peer) CreateAnswer() (SessionDescription, error) {
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return SessionDescription{}, fmt.Errorf("create answer: %w", err)
	}
	if err := p.pc.SetLocalDescription(ans); err != nil {
		return SessionDescription{}, fmt.Errorf("set local answer: %w", err)
	}
	return SessionDescription{Type: "answer", SDP: ans.SDP}, nil
}

// SetRemoteDescription applies the remote party's offer or answer.
func (p *Peer) SetRemoteDescription(d SessionDescription) error {
	wd, err := toWebRTC(d)
	if err != nil {
		return err
	}
	if err := p.pc.SetRemoteDescription(wd); err != nil {
		return fmt.Errorf("set remote %s: %w", d.Type, err)
	}
	return nil
}

// PrepareOffer creates a renegotiation offer (with an ICE restart if
// iceRestart) without applying it: ApplyAnswer applies it with its answer.
// pion v4 refuses SetLocalDescription(rollback), so an offer that is only
// applied once answered is what lets the polite party of perfect
// negotiation roll back: it forgets the offer.
func (p *Peer) PrepareOffer(iceRestart bool) (SessionDescription, error) {
	offer, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: iceRestart})
	if err != nil {
		return SessionDescription{}, fmt.Errorf("create offer: %w", err)
	}
	return SessionDescription{Type: "offer", SDP: offer.SDP}, nil
}

// ApplyAnswer applies a prepared offer as the local description and its
// answer as the remote one.
func (p *Peer) ApplyAnswer(offer, answer SessionDescription) error {
	if err := p.pc.SetLocalDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}); err != nil {
		return fmt.Errorf("set local offer: %w", err)
	}
	return p.SetRemoteDescription(answer)
}

// Stable reports whether no offer is outstanding (signalling state stable).
func (p *Peer) Stable() bool { return p.pc.SignalingState() == webrtc.SignalingStateStable }

// AddCandidate adds a remote ICE candidate; the remote description must be
// set. The end-of-candidates marker is accepted and ignored.
func (p *Peer) AddCandidate(c Candidate) error {
	if c.Candidate == "" {
		return nil
	}
	mid, idx := c.SDPMid, c.SDPMLineIndex
	if err := p.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: &mid, SDPMLineIndex: &idx}); err != nil {
		return fmt.Errorf("add remote candidate: %w", err)
	}
	return nil
}

// Close stops the media and closes the connection, and waits for the
// peer's goroutines. It is idempotent.
func (p *Peer) Close() error {
	var err error
	p.closeOnce.Do(func() {
		p.cancel()
		err = p.pc.Close()
		p.wg.Wait()
	})
	return err
}

// Stats is a snapshot of a peer's media statistics.
type Stats struct {
	// PacketsReceived counts RTP packets received on all remote tracks.
	PacketsReceived uint64 `json:"packets_received"`
	// VideoPacketsReceived counts the RTP packets of the video track.
	VideoPacketsReceived uint64 `json:"video_packets_received"`
	// PacketsLost is the number of RTP packets expected but not received
	// (RFC 3550 §6.4.1 cumulative loss), summed over the remote tracks.
	PacketsLost int64 `json:"packets_lost"`
	// BytesReceived counts RTP payload bytes received.
	BytesReceived uint64 `json:"bytes_received"`
	// NACKsSent counts RTCP NACK packets this peer sent (RFC 4585 §6.2.1).
	NACKsSent uint64 `json:"nacks_sent"`
	// NACKsReceived counts RTCP NACK packets this peer received.
	NACKsReceived uint64 `json:"nacks_received"`
	// Retransmitted counts RTP packets this peer resent in answer to NACKs.
	Retransmitted uint64 `json:"retransmitted"`
	// Tracks is the number of remote tracks received.
	Tracks int `json:"tracks"`
	// RTT is the selected candidate pair's current round-trip time, from
	// STUN consistency checks.
	RTT time.Duration `json:"-"`
	// RTTMillis is RTT in milliseconds, for JSON output.
	RTTMillis float64 `json:"rtt_ms"`
	// LocalCandidate and RemoteCandidate are the types (host, srflx,
	// prflx, relay) of the selected candidate pair.
	LocalCandidate  string `json:"local_candidate"`
	RemoteCandidate string `json:"remote_candidate"`
}

// Stats returns the peer's current statistics.
func (p *Peer) Stats() Stats {
	var s Stats
	for _, v := range p.pc.GetStats() {
		switch st := v.(type) {
		case webrtc.InboundRTPStreamStats:
			s.PacketsLost += int64(st.PacketsLost)
			s.BytesReceived += st.BytesReceived
		}
	}
	s.PacketsReceived = p.rtpReceived.Load()
	s.VideoPacketsReceived = p.videoReceived.Load()
	s.NACKsSent = p.nacksSent.Load()
	s.NACKsReceived = p.nacksReceived.Load()
	s.Retransmitted = p.resent.Load()
	s.Tracks = int(p.tracks.Load())
	if senders := p.pc.GetSenders(); len(senders) > 0 && senders[0].Transport() != nil {
		ice := senders[0].Transport().ICETransport()
		if pair, err := ice.GetSelectedCandidatePair(); err == nil && pair != nil {
			s.LocalCandidate = pair.Local.Typ.String()
			s.RemoteCandidate = pair.Remote.Typ.String()
		}
		if ps, ok := ice.GetSelectedCandidatePairStats(); ok {
			s.RTT = time.Duration(ps.CurrentRoundTripTime * float64(time.Second))
			s.RTTMillis = float64(s.RTT.Microseconds()) / 1000
		}
	}
	return s
}

// counter is an interceptor that counts the NACKs a peer sends and the RTP
// packets it retransmits (a sequence number written a second time).
type counter struct {
	interceptor.NoOp
	nacks, resent *atomic.Uint64
}

func (c *counter) NewInterceptor(string) (interceptor.Interceptor, error) { return c, nil }

// BindRTCPWriter wraps the RTCP writer to count NACKs on their way out.
func (c *counter) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attrs interceptor.Attributes) (int, error) {
		for _, pkt := range pkts {
			if _, ok := pkt.(*rtcp.TransportLayerNack); ok {
				c.nacks.Add(1)
			}
		}
		return w.Write(pkts, attrs)
	})
}

// BindLocalStream wraps an outgoing stream's writer to count packets whose
// sequence number was sent before: the NACK responder's retransmissions.
func (c *counter) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	var mu sync.Mutex
	var seen [1 << 16 / 64]uint64 // one bit per sequence number
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, attrs interceptor.Attributes) (int, error) {
		seq := h.SequenceNumber
		mu.Lock()
		if seen[seq/64]&(1<<(seq%64)) != 0 {
			c.resent.Add(1)
		} else {
			seen[seq/64] |= 1 << (seq % 64)
			// Forget the number half a cycle ahead, so that wrap-around
			// is not mistaken for retransmission.
			old := seq + 1<<15
			seen[old/64] &^= 1 << (old % 64)
		}
		mu.Unlock()
		return w.Write(h, payload, attrs)
	})
}
