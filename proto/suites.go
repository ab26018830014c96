package proto

// DefaultSuite is the MLS cipher suite a key-package request means when it
// names none (suite 0 on the wire): MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
// (RFC 9420 §17.1). Servers and clients older than per-room suites know
// only this one.
const DefaultSuite uint16 = 1

// EffectiveSuite returns the cipher suite a request field means: suite
// itself, or DefaultSuite for 0 (absent).
func EffectiveSuite(suite uint16) uint16 {
	if suite == 0 {
		return DefaultSuite
	}
	return suite
}

// GroupInfoRequest is the body of PUT /v1/rooms/{room}/mls/group_info: a
// moderator publishes the room's MLS GroupInfo (RFC 9420 §12.4.3, with the
// ratchet_tree extension) once, at the room's creation, so that its hub can
// check every later commit against the room policy in the group context.
type GroupInfoRequest struct {
	GroupInfo []byte `json:"group_info"`
}
