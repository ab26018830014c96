package wire

import "errors"

// ErrTooMany means a vector held more elements than this package accepts.
// The codec already bounds every vector by the bytes that remain; these
// counts additionally bound vectors whose small elements decode into much
// larger Go values, so a hostile message cannot inflate memory far beyond
// its own size.
var ErrTooMany = errors.New("mls wire: too many elements")

// Element-count limits applied while decoding.
const (
	// MaxProposalsPerCommit bounds Commit.proposals (RFC 9420 §12.4). A
	// reference costs as little as two bytes on the wire but a ProposalOrRef
	// value in memory; 65,536 entries cover adding or removing every member
	// of the largest groups we support in one commit.
	MaxProposalsPerCommit = 1 << 16
	// MaxWelcomeSecrets bounds Welcome.secrets (RFC 9420 §12.4.3.1), one
	// entry per new member.
	MaxWelcomeSecrets = 1 << 16
	// MaxExternalSenders bounds the external_senders extension (RFC 9420
	// §12.1.8.1).
	MaxExternalSenders = 1 << 10
	// MaxUpdatePathNodes bounds UpdatePath.nodes (RFC 9420 §7.6): one node
	// per entry of a filtered direct path, which is no longer than the depth
	// of a tree whose node indices fit in 32 bits.
	MaxUpdatePathNodes = 32
)
