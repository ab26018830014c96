// Package secrettree implements the MLS secret tree and sender ratchets
// (RFC 9420 §9): per-member handshake and application hash ratchets derived
// from an epoch's encryption_secret, with a bounded window for out-of-order
// messages and deletion of every secret once consumed (§9.2), plus the
// sender-data key and nonce derivation (§6.3.2).
//
// The tree is derived lazily: a leaf's secret is computed on first use by
// walking down from the nearest stored ancestor, so a tree of 10,000 members
// holds O(log n) node secrets per leaf touched, never the whole tree.
package secrettree

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
)

// Errors; callers distinguish them with errors.Is.
var (
	// ErrLeafIndex means the leaf is outside the tree.
	ErrLeafIndex = errors.New("mls secret tree: leaf index out of range")
	// ErrGenerationConsumed means the key of this generation was already
	// used or deleted (a replay, or older than the out-of-order window).
	ErrGenerationConsumed = errors.New("mls secret tree: generation already consumed")
	// ErrGenerationTooFar means the generation is further ahead of the
	// ratchet than the configured maximum forward distance.
	ErrGenerationTooFar = errors.New("mls secret tree: generation too far ahead")
	// ErrExhausted means a ratchet reached the last uint32 generation.
	ErrExhausted = errors.New("mls secret tree: ratchet generations exhausted")
	// ErrErased means the tree was erased (its epoch ended).
	ErrErased = errors.New("mls secret tree: erased")
)

// Defaults for out-of-order tolerance, used where Config leaves zero.
const (
	// MaxForwardDistance is how far ahead of the ratchet a requested
	// generation may be; the keys skipped over are kept for late messages.
	MaxForwardDistance = 1024
	// MaxSkipped is the out-of-order window: keys of skipped generations
	// are kept only while they are at most this many generations behind
	// the ratchet, so at most MaxSkipped keys per ratchet.
	MaxSkipped = 256
)

// Config bounds the out-of-order tolerance of every ratchet of a Tree.
// Zero fields take the package defaults.
type Config struct {
	// MaxForwardDistance is the largest jump ahead of a ratchet's next
	// generation that Get accepts.
	MaxForwardDistance uint32
	// MaxSkipped is how many generations behind the ratchet the keys of
	// skipped generations are kept; older ones are deleted.
	MaxSkipped uint32
}

// ContentKind selects a ratchet: handshake or application.
type ContentKind int

// Ratchet kinds (RFC 9420 §9).
const (
	Handshake ContentKind = iota
	Application
)

// KeyNonce is one AEAD key and nonce of a ratchet generation. The caller
// owns the slices and should zero them after use.
type KeyNonce struct {
	Generation uint32
	Key, Nonce []byte
}

func (kn *KeyNonce) erase() {
	clear(kn.Key)
	clear(kn.Nonce)
}

// ratchet is one hash ratchet (RFC 9420 §9.1).
type ratchet struct {
	secret     []byte // ratchet_secret_[N]_[generation]
	generation uint32 // next generation to derive
	skipped    map[uint32]KeyNonce
	floor      uint32 // no skipped key below floor is stored
}

// Tree is the secret tree of one epoch. It is not safe for concurrent use.
type Tree struct {
	suite    *ciphersuite.Suite
	cfg      Config
	nLeaves  uint32
	nodes    map[uint32][]byte // unconsumed node secrets
	ratchets map[uint32]*[2]*ratchet
	erased   bool
}

// New returns the secret tree for an epoch with the given encryption_secret
// and number of leaves of the ratchet tree (rounded up to a power of two),
// with the default out-of-order limits.
func New(suite *ciphersuite.Suite, encryptionSecret []byte, nLeaves uint32) *Tree {
	return NewWithConfig(suite, encryptionSecret, nLeaves, Config{})
}

// NewWithConfig is New with explicit out-of-order limits.
func NewWithConfig(suite *ciphersuite.Suite, encryptionSecret []byte, nLeaves uint32, cfg Config) *Tree {
	if cfg.MaxForwardDistance == 0 {
		cfg.MaxForwardDistance = MaxForwardDistance
	}
	if cfg.MaxSkipped == 0 {
		cfg.MaxSkipped = MaxSkipped
	}
	n := uint32(1)
	for n < nLeaves && n < 1<<31 {
		n *= 2
	}
	return &Tree{
		suite:    suite,
		cfg:      cfg,
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
// nearest stored ancestor secret and deleting each consumed node secret
// (RFC 9420 §9.2: a node's secret is deleted once its children's are derived).
func (t *Tree) leafRatchets(leaf uint32) (*[2]*ratchet, error) {
	if t.erased {
		return nil, ErrErased
	}
	if leaf >= t.nLeaves {
		return nil, fmt.Errorf("%w: %d of %d", ErrLeafIndex, leaf, t.nLeaves)
	}
	if r, ok := t.ratchets[leaf]; ok {
		return r, nil
	}
	target := 2 * leaf
	// Walk down from the root to the stored ancestor-or-self of target
	// (there is exactly one on the path, since deriving a node's children
	// always stores both).
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
		// tree_node_[left]_secret = ExpandWithLabel(secret, "tree", "left", Nh), likewise "right" (§9).
		ls, err := t.suite.ExpandWithLabel(secret, "tree", []byte("left"), t.suite.Nh())
		if err != nil {
			return nil, fmt.Errorf("derive left child of node %d: %w", n, err)
		}
		rs, err := t.suite.ExpandWithLabel(secret, "tree", []byte("right"), t.suite.Nh())
		if err != nil {
			return nil, fmt.Errorf("derive right child of node %d: %w", n, err)
		}
		clear(secret)
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
	// handshake_ratchet_secret_[N]_[0] and application_ratchet_secret_[N]_[0] (§9.1).
	hs, err := t.suite.ExpandWithLabel(secret, "handshake", nil, t.suite.Nh())
	if err != nil {
		return nil, fmt.Errorf("derive handshake ratchet of leaf %d: %w", leaf, err)
	}
	as, err := t.suite.ExpandWithLabel(secret, "application", nil, t.suite.Nh())
	if err != nil {
		return nil, fmt.Errorf("derive application ratchet of leaf %d: %w", leaf, err)
	}
	clear(secret)
	delete(t.nodes, target)
	rs := &[2]*ratchet{{secret: hs}, {secret: as}}
	t.ratchets[leaf] = rs
	return rs, nil
}

// step derives the key and nonce of generation g from ratchet secret
// secret, and the ratchet secret of generation g+1 (RFC 9420 §9.1). It does
// not modify secret.
func (t *Tree) step(secret []byte, g uint32) (KeyNonce, []byte, error) {
	if g == math.MaxUint32 {
		return KeyNonce{}, nil, ErrExhausted
	}
	nonce, err := t.suite.DeriveTreeSecret(secret, "nonce", g, t.suite.Nn())
	if err != nil {
		return KeyNonce{}, nil, fmt.Errorf("derive nonce of generation %d: %w", g, err)
	}
	key, err := t.suite.DeriveTreeSecret(secret, "key", g, t.suite.Nk())
	if err != nil {
		return KeyNonce{}, nil, fmt.Errorf("derive key of generation %d: %w", g, err)
	}
	next, err := t.suite.DeriveTreeSecret(secret, "secret", g, t.suite.Nh())
	if err != nil {
		return KeyNonce{}, nil, fmt.Errorf("derive ratchet secret of generation %d: %w", g+1, err)
	}
	return KeyNonce{Generation: g, Key: key, Nonce: nonce}, next, nil
}

// derive returns the key and nonce of the ratchet's current generation and
// advances it, deleting the consumed ratchet secret (RFC 9420 §9.1, §9.2).
func (t *Tree) derive(r *ratchet) (KeyNonce, error) {
	kn, next, err := t.step(r.secret, r.generation)
	if err != nil {
		return KeyNonce{}, err
	}
	clear(r.secret)
	r.secret = next
	r.generation++
	return kn, nil
}

// ratchet returns leaf's ratchet of the given kind.
func (t *Tree) ratchet(leaf uint32, kind ContentKind) (*ratchet, error) {
	if kind != Handshake && kind != Application {
		return nil, fmt.Errorf("mls secret tree: unknown content kind %d", kind)
	}
	rs, err := t.leafRatchets(leaf)
	if err != nil {
		return nil, err
	}
	return rs[kind], nil
}

// Next returns the key and nonce for the sender's next message of the given
// kind and advances its ratchet; the ratchet secret it came from is deleted.
func (t *Tree) Next(leaf uint32, kind ContentKind) (KeyNonce, error) {
	r, err := t.ratchet(leaf, kind)
	if err != nil {
		return KeyNonce{}, err
	}
	return t.derive(r)
}

// Get returns the key and nonce of the given generation of leaf's ratchet,
// for decrypting a received message, and deletes them: each generation can
// be obtained once, a second request fails with ErrGenerationConsumed.
// Generations ahead of the ratchet by at most the maximum forward distance
// are reached by deriving forward; the keys skipped over are kept while they
// are within the out-of-order window (MaxSkipped generations behind the
// ratchet) and deleted after (RFC 9420 §9.2).
//
// Get consumes the key before the caller has authenticated the message; use
// Peek to consume it only once the ciphertext opened.
func (t *Tree) Get(leaf uint32, kind ContentKind, generation uint32) (KeyNonce, error) {
	p, err := t.Peek(leaf, kind, generation)
	if err != nil {
		return KeyNonce{}, err
	}
	kn := p.KeyNonce
	if err := p.Consume(); err != nil {
		return KeyNonce{}, err
	}
	return kn, nil
}

// Pending is a key and nonce obtained with Peek and not yet consumed: the
// tree is unchanged until Consume. Call exactly one of Consume or Discard.
type Pending struct {
	KeyNonce

	t          *Tree
	r          *ratchet
	skippedHit bool       // the key came from the skipped set
	startGen   uint32     // r.generation when peeked
	next       []byte     // ratchet secret of Generation+1 (forward case)
	skipped    []KeyNonce // keys skipped over, inside the window
	floor      uint32     // window floor after Consume
	done       bool
}

// ErrStale means a Pending was consumed after the ratchet moved on, or twice.
var ErrStale = errors.New("mls secret tree: pending key is stale")

// Peek is Get without side effects on the ratchet: it returns the key and
// nonce of the given generation as a Pending, which the caller consumes
// once the message decrypted and authenticated, or discards. A forged
// message therefore cannot burn a sender's keys or move its window (only
// the node secrets on the path to leaf are derived, which is idempotent).
func (t *Tree) Peek(leaf uint32, kind ContentKind, generation uint32) (*Pending, error) {
	r, err := t.ratchet(leaf, kind)
	if err != nil {
		return nil, err
	}
	p := &Pending{t: t, r: r, startGen: r.generation}
	if generation < r.generation {
		kn, ok := r.skipped[generation]
		if !ok {
			return nil, fmt.Errorf("%w: leaf %d generation %d", ErrGenerationConsumed, leaf, generation)
		}
		// A copy: the caller may zero it without touching the kept key.
		p.KeyNonce = KeyNonce{Generation: generation, Key: bytes.Clone(kn.Key), Nonce: bytes.Clone(kn.Nonce)}
		p.skippedHit = true
		return p, nil
	}
	if generation-r.generation > t.cfg.MaxForwardDistance {
		return nil, fmt.Errorf("%w: leaf %d generation %d, ratchet at %d", ErrGenerationTooFar, leaf, generation, r.generation)
	}
	// After Consume the ratchet is at generation+1; skipped keys below the
	// new floor would be deleted at once, so they are not kept.
	if generation+1 > t.cfg.MaxSkipped {
		p.floor = generation + 1 - t.cfg.MaxSkipped
	}
	secret := r.secret
	for g := r.generation; ; g++ {
		kn, next, err := t.step(secret, g)
		if secret != nil && g != r.generation {
			clear(secret) // an intermediate copy, not r.secret
		}
		if err != nil {
			p.Discard()
			return nil, err
		}
		secret = next
		if g == generation {
			p.KeyNonce, p.next = kn, next
			return p, nil
		}
		if g < p.floor {
			kn.erase()
			continue
		}
		p.skipped = append(p.skipped, kn)
	}
}

// Consume deletes the key from the tree (RFC 9420 §9.2) and, for a
// generation ahead of the ratchet, advances the ratchet and keeps the keys
// skipped over. It fails with ErrStale if the ratchet changed since Peek.
func (p *Pending) Consume() error {
	if p.done {
		return ErrStale
	}
	p.done = true
	r := p.r
	if p.t.erased {
		p.discard()
		return ErrErased
	}
	if p.skippedHit {
		kn, ok := r.skipped[p.Generation]
		if !ok {
			return fmt.Errorf("%w: generation %d", ErrStale, p.Generation)
		}
		kn.erase()
		delete(r.skipped, p.Generation)
		return nil
	}
	if r.generation != p.startGen {
		p.discard()
		return fmt.Errorf("%w: ratchet moved from %d to %d", ErrStale, p.startGen, r.generation)
	}
	clear(r.secret)
	r.secret, p.next = p.next, nil
	r.generation = p.Generation + 1
	if len(p.skipped) > 0 && r.skipped == nil {
		r.skipped = make(map[uint32]KeyNonce, len(p.skipped))
	}
	for _, kn := range p.skipped {
		r.skipped[kn.Generation] = kn
	}
	p.skipped = nil
	p.t.evict(r, p.floor)
	return nil
}

// Discard zeroes what Peek derived, including the returned key and nonce,
// and leaves the tree unchanged: a key that came from the skipped set stays
// there for a genuine message.
func (p *Pending) Discard() {
	if p.done {
		return
	}
	p.done = true
	p.discard()
}

func (p *Pending) discard() {
	clear(p.next)
	for i := range p.skipped {
		p.skipped[i].erase()
	}
	p.next, p.skipped = nil, nil
	p.KeyNonce.erase()
}

// evict deletes the skipped keys of generations below floor.
func (t *Tree) evict(r *ratchet, floor uint32) {
	if floor <= r.floor {
		return
	}
	if len(r.skipped) == 0 {
		r.floor = floor
		return
	}
	// Amortised O(1): floor only grows, and the gap is bounded by the
	// generations derived since the last eviction, or by the map size.
	if floor-r.floor > uint32(len(r.skipped)) {
		for g, kn := range r.skipped {
			if g < floor {
				kn.erase()
				delete(r.skipped, g)
			}
		}
	} else {
		for g := r.floor; g < floor; g++ {
			if kn, ok := r.skipped[g]; ok {
				kn.erase()
				delete(r.skipped, g)
			}
		}
	}
	r.floor = floor
}

// Erase zeroes and deletes every secret the tree still holds — node
// secrets, ratchet secrets and skipped keys. Call it when the epoch's keys
// are no longer needed; afterwards every call fails with ErrErased.
func (t *Tree) Erase() {
	for n, s := range t.nodes {
		clear(s)
		delete(t.nodes, n)
	}
	for l, rs := range t.ratchets {
		for _, r := range rs {
			clear(r.secret)
			for g, kn := range r.skipped {
				kn.erase()
				delete(r.skipped, g)
			}
		}
		delete(t.ratchets, l)
	}
	t.erased = true
}

// SenderDataKeyNonce derives the sender data key and nonce from the
// sender_data_secret and the first Nh bytes of the message ciphertext, or
// all of it if shorter (RFC 9420 §6.3.2).
func SenderDataKeyNonce(suite *ciphersuite.Suite, senderDataSecret, ciphertext []byte) (key, nonce []byte, err error) {
	sample := ciphertext
	if len(sample) > suite.Nh() {
		sample = sample[:suite.Nh()]
	}
	if key, err = suite.ExpandWithLabel(senderDataSecret, "key", sample, suite.Nk()); err != nil {
		return nil, nil, fmt.Errorf("derive sender data key: %w", err)
	}
	if nonce, err = suite.ExpandWithLabel(senderDataSecret, "nonce", sample, suite.Nn()); err != nil {
		return nil, nil, fmt.Errorf("derive sender data nonce: %w", err)
	}
	return key, nonce, nil
}
