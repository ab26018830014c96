// Package sfu is a headless participant of a medicus room call through the
// homeserver's SFU, for tests and demonstrations without a camera. It joins
// over the signalling WebSocket (GET /v1/rooms/{room}/call, see
// docs/api.md), answers the SFU's offers, sends a synthetic video track
// whose frames are end-to-end encrypted with SFrame under the room's MLS
// keys (crypto/sframe), and receives and decrypts the other participants'
// tracks, keeping per-sender statistics.
//
// A synthetic frame is one RTP packet: the SFrame ciphertext of a plaintext
// that starts with FramePrefix, a keyframe flag and the frame number. A
// keyframe is sent first and whenever the SFU asks for one (PLI).
package sfu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/medicus-health/medicus/crypto/sframe"
	"github.com/medicus-health/medicus/proto"
)

// FramePrefix starts the plaintext of every synthetic frame, so that a
// capture can be searched for plaintext.
const FramePrefix = "medicus synthetic frame"

// Options configure a participant.
type Options struct {
	// Homeserver is the client API's base URL, "https://host:port".
	Homeserver string
	// Roots are the CAs trusted for the homeserver (nil: system roots).
	Roots *x509.CertPool
	// Token is the device's access token.
	Token string
	// Room is the room whose call to join.
	Room string
	// Keys encrypts this participant's frames and decrypts the others'.
	// The caller adds every new MLS epoch to it (MLSContext.AddEpoch).
	Keys *sframe.MLSContext
	// ICEServers are STUN/TURN servers; ICETransportPolicy may demand relay.
	ICEServers         []webrtc.ICEServer
	ICETransportPolicy webrtc.ICETransportPolicy
	// Network, if set, adjusts the WebRTC settings (pion's virtual network
	// in tests). Loopback candidates are always included.
	Network func(*webrtc.SettingEngine)
	// FrameSize is the plaintext size of a synthetic frame; 0 means 600.
	FrameSize int
}

// SenderStats are what a participant received from one other device.
type SenderStats struct {
	// Packets is the number of RTP packets received.
	Packets int
	// Frames is the number of frames that decrypted and parsed.
	Frames int
	// Keyframes is how many of them were keyframes.
	Keyframes int
	// DecryptFailures counts packets that did not decrypt (unknown KID,
	// failed authentication, replay) or were not synthetic frames.
	DecryptFailures int
	// Duplicates counts RTP packets received twice (a retransmission of a
	// packet that was late rather than lost); they are dropped before
	// decryption, as a jitter buffer would.
	Duplicates int
	// LastError is the last decryption failure.
	LastError error
	// LastFrame is the number of the last decrypted frame.
	LastFrame uint64
}

// Participant is a joined call participant.
type Participant struct {
	opts Options
	pc   *webrtc.PeerConnection
	conn *websocket.Conn
	// video is the synthetic track; its sender's RTCP is read for PLIs.
	video *webrtc.TrackLocalStaticRTP

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// sending is held by SendVideo; seq and frame continue across calls so
	// that RTP sequence numbers (and SRTP indexes) are never reused.
	sending sync.Mutex
	seq     uint16
	frame   uint64

	wantKeyframe atomic.Bool
	plis         atomic.Int64
	nacksSent    atomic.Int64
	nackedPkts   atomic.Int64

	mu           sync.Mutex
	stats        map[string]*SenderStats // by device id (stream id)
	participants []proto.SFUParticipant
	answered     int
	err          error
	changed      chan struct{} // closed and replaced on every change
}

// Join dials the call of opts.Room and starts answering the SFU. It returns
// once the WebSocket is open; use Wait to wait for media.
func Join(ctx context.Context, opts Options) (*Participant, error) {
	if opts.Keys == nil {
		return nil, errors.New("sfu: Options.Keys is required")
	}
	if opts.FrameSize == 0 {
		opts.FrameSize = 600
	}
	if opts.FrameSize < len(FramePrefix)+9 || opts.FrameSize > 1100 {
		return nil, fmt.Errorf("sfu: frame size %d out of range", opts.FrameSize)
	}
	p := &Participant{opts: opts, stats: map[string]*SenderStats{}, changed: make(chan struct{})}
	api, err := p.newAPI()
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: opts.ICEServers, ICETransportPolicy: opts.ICETransportPolicy})
	if err != nil {
		return nil, fmt.Errorf("sfu: new peer connection: %w", err)
	}
	p.pc = pc
	p.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "synthetic")
	if err != nil {
		pc.Close()
		return nil, err
	}
	sender, err := pc.AddTrack(p.video)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("sfu: add video track: %w", err)
	}
	pc.OnTrack(p.receive)

	u, err := url.Parse(opts.Homeserver)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("sfu: homeserver URL: %w", err)
	}
	u.Scheme = map[string]string{"https": "wss", "http": "ws"}[u.Scheme]
	u.Path = "/v1/rooms/" + opts.Room + "/call"
	u.RawPath = "/v1/rooms/" + url.PathEscape(opts.Room) + "/call"
	d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: opts.Roots, MinVersion: tls.VersionTLS12}, HandshakeTimeout: 15 * time.Second}
	conn, resp, err := d.DialContext(ctx, u.String(), http.Header{"Authorization": {"Bearer " + opts.Token}})
	if err != nil {
		pc.Close()
		if resp != nil {
			var e proto.Error
			defer resp.Body.Close()
			if jsonErr := decodeError(resp, &e); jsonErr == nil {
				return nil, fmt.Errorf("sfu: join call: %d %s: %s", resp.StatusCode, e.Code, e.Message)
			}
			return nil, fmt.Errorf("sfu: join call: HTTP %d", resp.StatusCode)
		}
		return nil, fmt.Errorf("sfu: join call: %w", err)
	}
	conn.SetReadLimit(256 << 10)
	p.conn = conn
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.signalling() }()
	go func() { defer p.wg.Done(); p.readSenderRTCP(sender) }()
	return p, nil
}

// newAPI sets up codecs and pion's default interceptors (NACK, reports,
// TWCC), with a counter of the NACKs this participant sends below them.
func (p *Participant) newAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	ir.Add(nackCounter{p})
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	if p.opts.Network != nil {
		p.opts.Network(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// signalling answers every offer of the SFU (it always offers) and keeps
// the participant list, until the WebSocket closes.
func (p *Participant) signalling() {
	defer p.cancel()
	for {
		var m proto.SFUMessage
		if err := p.conn.ReadJSON(&m); err != nil {
			p.fail(fmt.Errorf("sfu: signalling: %w", err))
			return
		}
		switch m.Type {
		case proto.SFUOffer:
			if err := p.answer(m.SDP); err != nil {
				p.fail(err)
				return
			}
		case proto.SFUParticipants:
			p.update(func() { p.participants = m.Participants })
		}
	}
}

func (p *Participant) answer(sdp string) error {
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return fmt.Errorf("sfu: offer: %w", err)
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("sfu: create answer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("sfu: set answer: %w", err)
	}
	select {
	case <-gathered:
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := p.conn.WriteJSON(proto.SFUMessage{Type: proto.SFUAnswer, SDP: p.pc.LocalDescription().SDP}); err != nil {
		return fmt.Errorf("sfu: send answer: %w", err)
	}
	p.update(func() { p.answered++ })
	return nil
}

// readSenderRTCP counts the SFU's keyframe requests for the synthetic
// track and runs the NACK responder of the sending side.
func (p *Participant) readSenderRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				p.plis.Add(1)
				p.wantKeyframe.Store(true)
			}
		}
	}
}

// receive decrypts the frames of another participant's track.
func (p *Participant) receive(track *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	device := track.StreamID()
	p.update(func() {
		if p.stats[device] == nil {
			p.stats[device] = &SenderStats{}
		}
	})
	buf := make([]byte, 0, 1500)
	// seen[seq % len] holds seq+1 for the recently received sequence numbers.
	var seen [1024]uint32
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			return
		}
		slot := &seen[int(pkt.SequenceNumber)%len(seen)]
		if *slot == uint32(pkt.SequenceNumber)+1 {
			p.update(func() { p.stats[device].Duplicates++ })
			continue
		}
		*slot = uint32(pkt.SequenceNumber) + 1
		pt, _, derr := p.opts.Keys.Decrypt(buf[:0], nil, pkt.Payload)
		var key bool
		var n uint64
		if derr == nil {
			key, n, derr = parseFrame(pt)
		}
		p.update(func() {
			s := p.stats[device]
			s.Packets++
			if derr != nil {
				s.DecryptFailures++
				s.LastError = derr
				return
			}
			s.Frames++
			s.LastFrame = n
			if key {
				s.Keyframes++
			}
		})
	}
}

func parseFrame(pt []byte) (keyframe bool, n uint64, err error) {
	if len(pt) < len(FramePrefix)+9 || !strings.HasPrefix(string(pt), FramePrefix) {
		return false, 0, errors.New("sfu: not a synthetic frame")
	}
	rest := pt[len(FramePrefix):]
	return rest[0] == 'K', binary.BigEndian.Uint64(rest[1:9]), nil
}

// SendVideo sends n synthetic frames, one every interval, each encrypted
// with SFrame; the first frame and every frame after a keyframe request
// are keyframes. It returns when done, when ctx ends or the call ends.
// Calls are serialized; frame numbers continue from the previous call.
func (p *Participant) SendVideo(ctx context.Context, n int, interval time.Duration) error {
	p.sending.Lock()
	defer p.sending.Unlock()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	frame := make([]byte, p.opts.FrameSize)
	copy(frame, FramePrefix)
	p.wantKeyframe.Store(true)
	for range n {
		i := p.frame
		p.frame++
		kind := byte('D')
		if p.wantKeyframe.Swap(false) {
			kind = 'K'
		}
		frame[len(FramePrefix)] = kind
		binary.BigEndian.PutUint64(frame[len(FramePrefix)+1:], i)
		// A fresh buffer per frame: the NACK responder may keep the packet.
		ct, err := p.opts.Keys.Encrypt(nil, nil, frame)
		if err != nil {
			return fmt.Errorf("sfu: encrypt frame %d: %w", i, err)
		}
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, SequenceNumber: p.seq, Timestamp: uint32(i) * 3000}, Payload: ct}
		p.seq++
		if err := p.video.WriteRTP(pkt); err != nil {
			return fmt.Errorf("sfu: send frame %d: %w", i, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.ctx.Done():
			return p.Err()
		case <-tick.C:
		}
	}
	return nil
}

// Stats returns what was received from each other device, by device id.
func (p *Participant) Stats() map[string]SenderStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]SenderStats, len(p.stats))
	for d, s := range p.stats {
		out[d] = *s
	}
	return out
}

// Participants returns the call's participants as the SFU last announced them.
func (p *Participant) Participants() []proto.SFUParticipant {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]proto.SFUParticipant(nil), p.participants...)
}

// Negotiations returns how many offers of the SFU were answered.
func (p *Participant) Negotiations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.answered
}

// KeyframeRequests returns how many PLI/FIR the SFU sent for the video track.
func (p *Participant) KeyframeRequests() int64 { return p.plis.Load() }

// NACKsSent returns how many RTCP NACK packets this participant sent, and
// how many lost packets they asked for.
func (p *Participant) NACKsSent() (packets, lost int64) {
	return p.nacksSent.Load(), p.nackedPkts.Load()
}

// PeerConnection returns the underlying connection, for statistics.
func (p *Participant) PeerConnection() *webrtc.PeerConnection { return p.pc }

// WaitParticipants blocks until the SFU announced at least n
// participants, the call ends or ctx ends.
func (p *Participant) WaitParticipants(ctx context.Context, n int) error {
	return p.Wait(ctx, func(map[string]SenderStats) bool { return len(p.Participants()) >= n })
}

// Wait blocks until cond holds for the current statistics, the call ends
// or ctx ends.
func (p *Participant) Wait(ctx context.Context, cond func(map[string]SenderStats) bool) error {
	for {
		p.mu.Lock()
		ch := p.changed
		err := p.err
		p.mu.Unlock()
		if cond(p.Stats()) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w; received %v", ctx.Err(), p.Stats())
		}
	}
}

// Err returns why the call ended, or nil while it runs.
func (p *Participant) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *Participant) update(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Participant) fail(err error) {
	p.update(func() {
		if p.err == nil {
			p.err = err
		}
	})
}

// Close hangs up: it closes the WebSocket (the SFU then removes this
// participant) and the peer connection, and waits for its goroutines.
func (p *Participant) Close() error {
	p.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "hangup"), time.Now().Add(time.Second))
	p.cancel()
	err := p.conn.Close()
	if perr := p.pc.Close(); err == nil {
		err = perr
	}
	p.wg.Wait()
	return err
}
