package sfu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/medicus-health/medicus/proto"
)

// Signal is a participant's signalling channel (the homeserver passes a
// WebSocket, see NewWebSocketSignal). Send is called from one goroutine and
// Receive from another; Close ends both, with the reason the session ended
// (nil for a hang-up, ErrReplaced, ErrProtocol, or the cause of the
// context given to Serve).
type Signal interface {
	Send(m proto.SFUMessage) error
	Receive() (proto.SFUMessage, error)
	Close(reason error) error
}

var (
	// ErrProtocol is returned when a participant sends a message the
	// protocol does not allow.
	ErrProtocol = errors.New("sfu: signalling protocol violation")
	// ErrReplaced ends a session when the same device joins again.
	ErrReplaced = errors.New("sfu: replaced by a newer session of this device")
)

// room is one room's call.
type room struct {
	id  string
	sfu *SFU

	mu    sync.Mutex
	peers []*peer // join order
}

// peer is one participant's session.
type peer struct {
	room         *room
	user, device string
	pc           *webrtc.PeerConnection
	ctx          context.Context
	cancel       context.CancelFunc
	stop         context.CancelCauseFunc
	negotiate    chan struct{}         // a renegotiation is due
	answers      chan string           // answers received
	out          chan proto.SFUMessage // to the writer
	wg           sync.WaitGroup        // goroutines of this session
	// Guarded by room.mu.
	gone      bool
	published []*track
	senders   map[*track]*webrtc.RTPSender
}

// track is one published track and the local track it is forwarded as.
type track struct {
	owner  *peer
	remote *webrtc.TrackRemote
	local  *webrtc.TrackLocalStaticRTP
}

// Serve runs the session of device (of userID) in roomID's call until ctx
// ends, the participant hangs up (closes the signal), its connection fails
// or it violates the protocol. The caller has authenticated the device and
// checked that userID is a joined member of the room. A second session of
// the same device replaces the first. Serve returns ErrCallFull if the call
// has MaxParticipants, ErrClosed after Close, nil after a normal hang-up.
func (s *SFU) Serve(ctx context.Context, roomID, userID, device string, sig Signal) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	r, err := s.room(roomID)
	if err != nil {
		return err
	}
	defer s.dropIfEmpty(r)

	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return fmt.Errorf("sfu: new peer connection: %w", err)
	}
	ctx, stop := context.WithCancelCause(ctx)
	cancel := func() { stop(nil) }
	defer cancel()
	p := &peer{
		room: r, user: userID, device: device, pc: pc, ctx: ctx, cancel: cancel, stop: stop,
		negotiate: make(chan struct{}, 1), answers: make(chan string, 1), out: make(chan proto.SFUMessage, 16),
		senders: map[*track]*webrtc.RTPSender{},
	}
	// Every participant may publish one video and one audio track.
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			pc.Close()
			return fmt.Errorf("sfu: add transceiver: %w", err)
		}
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { r.publish(p, remote) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			// RFC 4585 §6.3.1: a new receiver needs a keyframe to start decoding.
			r.requestKeyframesFor(p)
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			cancel()
		}
	})
	if err := r.join(p); err != nil {
		pc.Close()
		return err
	}
	s.log.Info("call joined", "room", roomID, "device", device)

	var loops sync.WaitGroup
	loops.Add(2)
	go func() { defer loops.Done(); p.write(sig) }()
	go func() { defer loops.Done(); p.read(sig) }()
	err = p.negotiateLoop(s.cfg.NegotiationTimeout)
	if errors.Is(err, context.Canceled) {
		// Why: a hang-up or failed connection (nil), a replacement, or
		// the caller's cause (membership lost, shutdown).
		if err = context.Cause(ctx); errors.Is(err, context.Canceled) {
			err = nil
		}
	}
	cancel()
	sig.Close(err)
	loops.Wait()
	r.leave(p)
	reason := "hangup"
	if err != nil {
		reason = err.Error()
	}
	s.log.Info("call left", "room", roomID, "device", device, "reason", reason)
	return err
}

// write sends queued messages until the session ends.
func (p *peer) write(sig Signal) {
	for {
		select {
		case <-p.ctx.Done():
			return
		case m := <-p.out:
			if err := sig.Send(m); err != nil {
				p.cancel()
				return
			}
		}
	}
}

// read receives the participant's messages until the signal closes.
func (p *peer) read(sig Signal) {
	defer p.cancel()
	for {
		m, err := sig.Receive()
		if errors.Is(err, ErrProtocol) {
			p.room.sfu.log.Warn("call signalling refused", "device", p.device, "err", err)
			p.stop(err)
		}
		if err != nil {
			return
		}
		select {
		case p.answers <- m.SDP:
		default: // an answer nobody asked for
			return
		}
	}
}

// send queues m for the participant; a participant that does not read its
// signalling is disconnected rather than buffered without bound.
func (p *peer) send(m proto.SFUMessage) {
	select {
	case p.out <- m:
	default:
		p.cancel()
	}
}

func (p *peer) requestNegotiation() {
	select {
	case p.negotiate <- struct{}{}:
	default:
	}
}

// negotiateLoop makes an offer whenever one is due, one at a time.
func (p *peer) negotiateLoop(timeout time.Duration) error {
	p.requestNegotiation()
	for {
		select {
		case <-p.ctx.Done():
			return p.ctx.Err()
		case <-p.negotiate:
			if err := p.negotiateOnce(timeout); err != nil {
				return err
			}
		}
	}
}

// negotiateOnce sends an offer with every local candidate and applies the
// answer (RFC 8829 §5.2; the SFU always offers, so there is no glare).
func (p *peer) negotiateOnce(timeout time.Duration) error {
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("sfu: create offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("sfu: set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	p.send(proto.SFUMessage{Type: proto.SFUOffer, SDP: p.pc.LocalDescription().SDP})
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case sdp := <-p.answers:
		if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
			return fmt.Errorf("%w: answer: %v", ErrProtocol, err)
		}
	case <-t.C:
		return fmt.Errorf("%w: no answer within %s", ErrProtocol, timeout)
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	// Tracks added by this negotiation need a keyframe to be decodable.
	if p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected {
		p.room.requestKeyframesFor(p)
	}
	return nil
}

// join adds p to the call and subscribes it to every published track.
func (r *room) join(p *peer) error {
	r.mu.Lock()
	var old *peer
	for _, q := range r.peers {
		if q.device == p.device {
			old = q
		}
	}
	if old == nil && len(r.peers) >= r.sfu.cfg.MaxParticipants {
		r.mu.Unlock()
		return fmt.Errorf("%w: %d participants", ErrCallFull, len(r.peers))
	}
	r.peers = append(r.peers, p)
	for _, q := range r.peers {
		for _, t := range q.published {
			if q != old && q != p {
				r.subscribeLocked(p, t)
			}
		}
	}
	r.mu.Unlock()
	if old != nil {
		old.stop(ErrReplaced)
	}
	r.announce()
	return nil
}

// subscribeLocked forwards t to p. r.mu is held.
func (r *room) subscribeLocked(p *peer, t *track) {
	sender, err := p.pc.AddTrack(t.local)
	if err != nil {
		r.sfu.log.Warn("call: cannot forward track", "device", p.device, "err", err)
		return
	}
	p.senders[t] = sender
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.readRTCP(t, sender) }()
	p.requestNegotiation()
}

// publish starts forwarding a track p sends to every other participant.
func (r *room) publish(p *peer, remote *webrtc.TrackRemote) {
	local, err := webrtc.NewTrackLocalStaticRTP(remote.Codec().RTPCodecCapability, p.device+"-"+remote.ID(), p.device)
	if err != nil {
		r.sfu.log.Warn("call: cannot forward track", "device", p.device, "err", err)
		return
	}
	t := &track{owner: p, remote: remote, local: local}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.gone {
		return
	}
	p.published = append(p.published, t)
	for _, q := range r.peers {
		if q != p {
			r.subscribeLocked(q, t)
		}
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); t.forward(r) }()
	go func() { defer p.wg.Done(); t.keyframeLoop(r.sfu.cfg.PLIInterval) }()
}

// leave removes p, stops forwarding its tracks and ends its goroutines.
func (r *room) leave(p *peer) {
	r.mu.Lock()
	p.gone = true
	r.peers = slices.DeleteFunc(r.peers, func(q *peer) bool { return q == p })
	for _, t := range p.published {
		for _, q := range r.peers {
			if sender, ok := q.senders[t]; ok {
				if err := q.pc.RemoveTrack(sender); err != nil {
					r.sfu.log.Debug("call: remove track", "err", err)
				}
				delete(q.senders, t)
				q.requestNegotiation()
			}
		}
	}
	r.mu.Unlock()
	p.cancel()
	p.pc.Close()
	p.wg.Wait()
	r.announce()
}

// announce sends every participant the list of participants.
func (r *room) announce() {
	r.mu.Lock()
	m := proto.SFUMessage{Type: proto.SFUParticipants, Participants: []proto.SFUParticipant{}}
	for _, q := range r.peers {
		m.Participants = append(m.Participants, proto.SFUParticipant{UserID: q.user, DeviceID: q.device})
	}
	peers := slices.Clone(r.peers)
	r.mu.Unlock()
	for _, q := range peers {
		q.send(m)
	}
}

// requestKeyframesFor asks the publisher of every video track forwarded to
// p for a keyframe.
func (r *room) requestKeyframesFor(p *peer) {
	r.mu.Lock()
	tracks := make([]*track, 0, len(p.senders))
	for t := range p.senders {
		tracks = append(tracks, t)
	}
	r.mu.Unlock()
	for _, t := range tracks {
		t.requestKeyframe()
	}
}

// requestKeyframe sends the publisher a Picture Loss Indication
// (RFC 4585 §6.3.1) for a video track.
func (t *track) requestKeyframe() {
	if t.remote.Kind() != webrtc.RTPCodecTypeVideo {
		return
	}
	// An error means the publisher's connection is closing; its session ends.
	t.owner.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.remote.SSRC())}})
}

func (t *track) keyframeLoop(interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-t.owner.ctx.Done():
			return
		case <-tick.C:
			t.requestKeyframe()
		}
	}
}

// forward copies the track's RTP to every subscriber until it ends. The
// payload is SFrame ciphertext; only the RTP header is rewritten (SSRC and
// payload type per subscriber, by pion).
func (t *track) forward(r *room) {
	tap := r.sfu.cfg.Tap
	for {
		pkt, _, err := t.remote.ReadRTP()
		if err != nil {
			return
		}
		if tap != nil {
			tap(r.id, t.owner.device, pkt.Payload)
		}
		if err := t.local.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
	}
}

// readRTCP reads the subscriber's RTCP for a forwarded track, which runs
// the NACK responder and reports, and passes keyframe requests on to the
// publisher.
func (p *peer) readRTCP(t *track, sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		for _, pkt := range pkts {
			switch pkt.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				t.requestKeyframe()
			}
		}
	}
}
