// Package call places and answers 1:1 teleconsult calls: WebRTC peers
// (github.com/pion/webrtc/v4) negotiated with signalling events that follow
// Matrix VoIP version 1 (MSC2746, the "Voice over IP" module of the Matrix
// client-server specification).
//
// The package is transport-agnostic. A [Switchboard] runs the calls of one
// device: it sends [Event]s through a [Signaller] that the client library
// implements (as MLS-encrypted direct device messages, so SDP and ICE
// candidates never reach the homeserver in plaintext nor room history), and it
// is handed every incoming call event with [Switchboard.Deliver]. Each [Call]
// moves through ringing, connecting and connected to ended, with a [Reason].
//
// The media side is a headless [Peer]: a pion PeerConnection that sends a
// synthetic (or IVF-file) VP8 video track and an Opus audio track, receives
// the remote tracks, and reports [Stats] (RTP packets received and lost,
// NACKs, the selected candidate pair's type and round-trip time). [Update]s
// on the switchboard's event channel are what `medicus client call --json`
// prints, one JSON object per line (see [PlaceAndFollow], [AnswerAndFollow]);
// `medicus client hangup` reaches the process running the call through its
// control socket ([ListenControl], [RequestHangup]).
package call
