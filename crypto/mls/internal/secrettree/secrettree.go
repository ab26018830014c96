// Package secrettree implements the MLS secret tree and sender ratchets
// (RFC 9420 §9): per-member handshake and application hash ratchets derived
// from an epoch's encryption_secret, with a bounded window for out-of-order
// messages and deletion of every secret once consumed (§9.2), plus the
// sender-data key and nonce derivation (§6.3.2).
package secrettree

import (
	"errors"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
)

// Errors; callers distinguish them with errors.Is.
var (
	// ErrLeafIndex means the leaf is outside the tree.
	ErrLeafIndex = errors.New("mls secret tree: leaf index out of range")
	// ErrGenerationConsumed means the key of this generation was already
	// used or deleted (a replay, or older than the window).
	ErrGenerationConsumed = errors.New("mls secret tree: generation already consumed")
	// ErrGenerationTooFar means the generation is further ahead than
	// MaxForwardDistance.
	ErrGenerationTooFar = errors.New("mls secret tree: generation too far ahead")
)

// Defaults for out-of-order tolerance.
const (
	// MaxForwardDistance is how far ahead of the ratchet a generation may
	// be; the keys skipped over are kept for late messages.
	MaxForwardDistance = 1024
	// MaxSkipped bounds the keys kept for skipped generations per ratchet;
	// the oldest are deleted first.
	MaxSkipped = 256
)

// ContentKind selects a ratchet: handshake or application.
type ContentKind int

// Ratchet kinds (RFC 9420 §9).
const (
	Handshake ContentKind = iota
	Application
)

// KeyNonce is one AEAD key and nonce of a ratchet generation.
type KeyNonce struct {
	Generation uint32
	Key, Nonce []byte
}

type ratchet struct {
	secret     []byte // ratchet_secret_[N]_[generation]
	generation uint32
	skipped    map[uint32]KeyNonce
	order      []uint32 // skipped generations, oldest first
}

// Tree is the secret tree of one epoch. It is not safe for concurrent use.
type Tree struct {
	suite    *ciphersuite.Suite
	nLeaves  uint32
	nodes    map[uint32][]byte // unconsumed node secrets
	ratchets map[uint32]*[2]*ratchet
}

// New returns the secret tree for an epoch with the given encryption_secret
// and number of leaves of the ratchet tree (rounded up to a power of two).
func New(suite *ciphersuite.Suite, encryptionSecret []byte, nLeaves uint32) *Tree {
	n := uint32(1)
	for n < nLeaves {
		n *= 2
	}
	return &Tree{
		suite:    suite,
		nLeaves:  n,
		nodes:    map[uint32][]byte{n - 1: append([]byte(nil), encryptionSecret...)},
		ratchets: map[uint32]*[2]*ratchet{},
	}
}

func level(x uint32) uint32 {
	var k uint32
	for x&1 == 1 {
		x >>= 1
		k++
	}
	return k
}

// leafRatchets returns the two ratchets of leaf, deriving the path from the
// nearest stored ancestor secret and deleting each consumed node secret.
func (t *Tree) leafRatchets(leaf uint32) (*[2]*ratchet, error) {
	if leaf >= t.nLeaves {
		return nil, fmt.Errorf("%w: %d of %d", ErrLeafIndex, leaf, t.nLeaves)
	}
	if r, ok := t.ratchets[leaf]; ok {
		return r, nil
	}
	target := 2 * leaf
	// Find the stored ancestor-or-self of target (there is exactly one on
	// the path, since deriving children always stores both).
	n := t.nLeaves - 1
	for {
		if _, ok := t.nodes[n]; ok || n == target {
			break
		}
		k := level(n)
		if target < n {
			n ^= 1 << (k - 1)
		} else {
			n ^= 3 << (k - 1)
		}
	}
	for n != target {
		secret, ok := t.nodes[n]
		if !ok {
			return nil, fmt.Errorf("%w: leaf %d secrets already consumed", ErrGenerationConsumed, leaf)
		}
		k := level(n)
		l, r := n^(1<<(k-1)), n^(3<<(k-1))
		ls, err := t.suite.ExpandWithLabel(secret, "tree", []byte("left"), t.suite.Nh())
		if err != nil {
			return nil, err
		}
		rs, err := t.suite.ExpandWithLabel(secret, "tree", []byte("right"), t.suite.Nh())
		if err != nil {
			return nil, err
		}
		delete(t.nodes, n)
		t.nodes[l], t.nodes[r] = ls, rs
		if target < n {
			n = l
		} else {
			n = r
		}
	}
	secret, ok := t.nodes[target]
	if !ok {
		return nil, fmt.Errorf("%w: leaf %d secrets already consumed", ErrGenerationConsumed, leaf)
	}
	hs, err := t.suite.ExpandWithLabel(secret, "handshake", nil, t.suite.Nh())
	if err != nil {
		return nil, err
	}
	as, err := t.suite.ExpandWithLabel(secret, "application", nil, t.suite.Nh())
	if err != nil {
		return nil, err
	}
	delete(t.nodes, target)
	rs := &[2]*ratchet{{secret: hs, skipped: map[uint32]KeyNonce{}}, {secret: as, skipped: map[uint32]KeyNonce{}}}
	t.ratchets[leaf] = rs
	return rs, nil
}

// derive returns the key and nonce of the ratchet's current generation and
// advances it, deleting the consumed ratchet secret (RFC 9420 §9.1).
func (t *Tree) derive(r *ratchet) (KeyNonce, error) {
	g := r.generation
	nonce, err := t.suite.DeriveTreeSecret(r.secret, "nonce", g, t.suite.Nn())
	if err != nil {
		return KeyNonce{}, err
	}
	key, err := t.suite.DeriveTreeSecret(r.secret, "key", g, t.suite.Nk())
	if err != nil {
		return KeyNonce{}, err
	}
	next, err := t.suite.DeriveTreeSecret(r.secret, "secret", g, t.suite.Nh())
	if err != nil {
		return KeyNonce{}, err
	}
	clear(r.secret)
	r.secret = next
	r.generation++
	return KeyNonce{Generation: g, Key: key, Nonce: nonce}, nil
}

// Next returns the key and nonce for the sender's next message of the given
// kind and advances its ratchet.
func (t *Tree) Next(leaf uint32, kind ContentKind) (KeyNonce, error) {
	rs, err := t.leafRatchets(leaf)
	if err != nil {
		return KeyNonce{}, err
	}
	return t.derive(rs[kind])
}

// Get returns the key and nonce of the given generation of leaf's ratchet,
// for decrypting a received message, and deletes them: each generation can
// be obtained once. Generations ahead of the ratchet (up to
// MaxForwardDistance) are reached by deriving and keeping the skipped keys
// (at most MaxSkipped); older ones must still be kept.
func (t *Tree) Get(leaf uint32, kind ContentKind, generation uint32) (KeyNonce, error) {
	rs, err := t.leafRatchets(leaf)
	if err != nil {
		return KeyNonce{}, err
	}
	r := rs[kind]
	if generation < r.generation {
		kn, ok := r.skipped[generation]
		if !ok {
			return KeyNonce{}, fmt.Errorf("%w: leaf %d generation %d", ErrGenerationConsumed, leaf, generation)
		}
		delete(r.skipped, generation)
		return kn, nil
	}
	if generation-r.generation > MaxForwardDistance {
		return KeyNonce{}, fmt.Errorf("%w: leaf %d generation %d, ratchet at %d", ErrGenerationTooFar, leaf, generation, r.generation)
	}
	for r.generation < generation {
		kn, err := t.derive(r)
		if err != nil {
			return KeyNonce{}, err
		}
		r.skipped[kn.Generation] = kn
		r.order = append(r.order, kn.Generation)
		for len(r.skipped) > MaxSkipped && len(r.order) > 0 {
			delete(r.skipped, r.order[0])
			r.order = r.order[1:]
		}
	}
	return t.derive(r)
}

// SenderDataKeyNonce derives the sender data key and nonce from the
// sender_data_secret and the first Nh bytes of the message ciphertext
// (RFC 9420 §6.3.2).
func SenderDataKeyNonce(suite *ciphersuite.Suite, senderDataSecret, ciphertext []byte) (key, nonce []byte, err error) {
	sample := ciphertext
	if len(sample) > suite.Nh() {
		sample = sample[:suite.Nh()]
	}
	if key, err = suite.ExpandWithLabel(senderDataSecret, "key", sample, suite.Nk()); err != nil {
		return nil, nil, err
	}
	if nonce, err = suite.ExpandWithLabel(senderDataSecret, "nonce", sample, suite.Nn()); err != nil {
		return nil, nil, err
	}
	return key, nonce, nil
}
