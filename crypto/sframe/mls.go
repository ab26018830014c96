package sframe

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
)

// BaseKeyLabel is the MLS exporter label of SFrame base keys (RFC 9605 §5.2).
const BaseKeyLabel = "SFrame 1.0 Base Key"

// Exporter is what MLS-based key management needs of an MLS group in its
// current epoch; *mls.Group of crypto/mls satisfies it.
type Exporter interface {
	// Epoch returns the group's current epoch.
	Epoch() uint64
	// LeafIndex returns the member's own leaf index.
	LeafIndex() uint32
	// Export returns MLS-Exporter(label, context, length) (RFC 9420 §8.5).
	Export(label string, context []byte, length int) ([]byte, error)
}

// MLSConfig fixes the KID layout of RFC 9605 §5.2, which every member of a
// session must agree on:
//
//	KID = (context << (S + E)) + (sender_index << E) + (epoch % (1 << E))
type MLSConfig struct {
	// EpochBits is E: how many low-order epoch bits a KID carries, so at
	// most 2^E epochs are usable at once. 0 means 4.
	EpochBits uint
	// IndexBits is S: the bits of the sender's leaf index; the group must
	// have at most 2^S leaves. 0 means 16.
	IndexBits uint
}

func (c MLSConfig) withDefaults() (MLSConfig, error) {
	if c.EpochBits == 0 {
		c.EpochBits = 4
	}
	if c.IndexBits == 0 {
		c.IndexBits = 16
	}
	if c.EpochBits > 16 || c.IndexBits > 32 {
		return c, errors.New("sframe: EpochBits must be at most 16 and IndexBits at most 32")
	}
	return c, nil
}

// ErrIndexRange is returned when a leaf index does not fit the KID layout.
var ErrIndexRange = errors.New("sframe: leaf index does not fit IndexBits")

// MLSContext derives SFrame keys from the epochs of an MLS group
// (RFC 9605 §5.2): each epoch's base key is
// MLS-Exporter("SFrame 1.0 Base Key", "", Nk), and each member encrypts
// under the KID formed from the epoch and its own leaf index. Receive keys
// are derived when a frame under a new KID first authenticates. A member
// removed from the group never learns a later epoch's exporter secret, so
// frames under that epoch's KIDs are ErrUnknownKID to it. An MLSContext is
// safe for concurrent use.
type MLSContext struct {
	ctx *Context
	cfg MLSConfig

	mu     sync.Mutex
	epochs map[uint64]*mlsEpoch // keyed by epoch % 2^E
	// sendKID is the KID Encrypt uses; hasSend is false before AddEpoch.
	sendKID uint64
	hasSend bool
}

type mlsEpoch struct {
	epoch   uint64
	baseKey []byte
	own     uint32
}

// NewMLSContext returns an MLS key manager for suite with no epochs yet.
func NewMLSContext(suite CipherSuite, cfg MLSConfig) (*MLSContext, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ctx, err := NewContext(suite)
	if err != nil {
		return nil, err
	}
	m := &MLSContext{ctx: ctx, cfg: cfg, epochs: map[uint64]*mlsEpoch{}}
	ctx.resolve = m.baseKeyFor
	return m, nil
}

// Suite returns the context's cipher suite.
func (m *MLSContext) Suite() CipherSuite { return m.ctx.suite }

// KID returns the key id of the sender with leaf index index in epoch with
// the given context value (§5.2). It returns ErrIndexRange if index does
// not fit, and an error if context does not fit the remaining bits.
func (m *MLSContext) KID(epoch uint64, index uint32, context uint64) (uint64, error) {
	s, e := m.cfg.IndexBits, m.cfg.EpochBits
	if s < 32 && uint64(index) >= 1<<s {
		return 0, fmt.Errorf("%w: %d needs more than %d bits", ErrIndexRange, index, s)
	}
	if context != 0 && (s+e >= 64 || context >= 1<<(64-s-e)) {
		return 0, fmt.Errorf("sframe: context %d does not fit in %d bits", context, 64-s-e)
	}
	return context<<(s+e) | uint64(index)<<e | epoch&(1<<e-1), nil
}

// SplitKID returns the low epoch bits, sender index and context of kid.
func (m *MLSContext) SplitKID(kid uint64) (epochBits uint64, index uint32, context uint64) {
	s, e := m.cfg.IndexBits, m.cfg.EpochBits
	epochBits = kid & (1<<e - 1)
	index = uint32(kid >> e & (1<<s - 1))
	if s+e < 64 {
		context = kid >> (s + e)
	}
	return epochBits, index, context
}

// AddEpoch exports the base key of g's current epoch, makes it the epoch
// Encrypt uses (with KID from g's leaf index and context 0) and accepts
// frames of every other member in it. Per §5.2 an older epoch with the same
// low-order bits is removed, with all its keys.
func (m *MLSContext) AddEpoch(g Exporter) error {
	baseKey, err := g.Export(BaseKeyLabel, nil, m.ctx.suite.KeySize())
	if err != nil {
		return fmt.Errorf("sframe: export base key of epoch %d: %w", g.Epoch(), err)
	}
	return m.AddEpochKey(g.Epoch(), g.LeafIndex(), baseKey)
}

// AddReceiveEpoch is AddEpoch without switching Encrypt to the new epoch:
// RFC 9605 §4.4.1 suggests making a new epoch's keys available for
// decryption at once but encrypting with them only once every receiver
// has them (acknowledged, or after a timeout). SendEpoch switches later.
func (m *MLSContext) AddReceiveEpoch(g Exporter) error {
	baseKey, err := g.Export(BaseKeyLabel, nil, m.ctx.suite.KeySize())
	if err != nil {
		return fmt.Errorf("sframe: export base key of epoch %d: %w", g.Epoch(), err)
	}
	return m.addEpoch(g.Epoch(), g.LeafIndex(), baseKey, false)
}

// SendEpoch makes Encrypt use a held epoch. It returns ErrUnknownKID if
// the epoch is not held.
func (m *MLSContext) SendEpoch(epoch uint64) error {
	low := epoch & (1<<m.cfg.EpochBits - 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, ok := m.epochs[low]
	if !ok || ep.epoch != epoch {
		return fmt.Errorf("%w: epoch %d is not held", ErrUnknownKID, epoch)
	}
	kid, err := m.KID(epoch, ep.own, 0)
	if err != nil {
		return err
	}
	m.sendKID, m.hasSend = kid, true
	return nil
}

// AddEpochKey is AddEpoch with the epoch's base key and the member's own
// leaf index given directly. It takes ownership of baseKey, which is erased
// when the epoch is removed.
func (m *MLSContext) AddEpochKey(epoch uint64, ownIndex uint32, baseKey []byte) error {
	return m.addEpoch(epoch, ownIndex, baseKey, true)
}

func (m *MLSContext) addEpoch(epoch uint64, ownIndex uint32, baseKey []byte, send bool) error {
	if len(baseKey) != m.ctx.suite.KeySize() {
		return fmt.Errorf("sframe: base key is %d bytes, the suite needs %d", len(baseKey), m.ctx.suite.KeySize())
	}
	kid, err := m.KID(epoch, ownIndex, 0)
	if err != nil {
		return err
	}
	low := epoch & (1<<m.cfg.EpochBits - 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.epochs[low]; ok {
		if old.epoch == epoch {
			return fmt.Errorf("sframe: epoch %d already added", epoch)
		}
		m.dropLocked(low, old)
	}
	m.epochs[low] = &mlsEpoch{epoch: epoch, baseKey: baseKey, own: ownIndex}
	if err := m.ctx.AddSendKey(kid, baseKey); err != nil {
		delete(m.epochs, low)
		return err
	}
	if send {
		m.sendKID, m.hasSend = kid, true
	}
	return nil
}

// RemoveEpoch forgets an epoch's base key and every key derived from it.
func (m *MLSContext) RemoveEpoch(epoch uint64) {
	low := epoch & (1<<m.cfg.EpochBits - 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.epochs[low]; ok && old.epoch == epoch {
		m.dropLocked(low, old)
	}
}

func (m *MLSContext) dropLocked(low uint64, ep *mlsEpoch) {
	mask := uint64(1)<<m.cfg.EpochBits - 1
	m.ctx.RemoveKeys(func(kid uint64) bool { return kid&mask == low })
	clear(ep.baseKey)
	delete(m.epochs, low)
	if m.hasSend && m.sendKID&mask == low {
		m.hasSend = false
	}
}

// Epochs returns the epochs whose keys are held.
func (m *MLSContext) Epochs() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]uint64, 0, len(m.epochs))
	for _, ep := range m.epochs {
		out = append(out, ep.epoch)
	}
	return out
}

// SendKID returns the KID Encrypt uses, and false before any epoch was added.
func (m *MLSContext) SendKID() (uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sendKID, m.hasSend
}

// baseKeyFor is the Context's resolver: the epoch's base key for a KID of
// another member in a held epoch.
func (m *MLSContext) baseKeyFor(kid uint64) ([]byte, bool) {
	low, index, _ := m.SplitKID(kid)
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, ok := m.epochs[low]
	if !ok || index == ep.own {
		return nil, false
	}
	return bytes.Clone(ep.baseKey), true
}

// Encrypt encrypts a frame under the newest epoch's send key and appends
// the SFrame ciphertext to dst. It returns ErrUnknownKID before any epoch
// was added.
func (m *MLSContext) Encrypt(dst, metadata, plaintext []byte) ([]byte, error) {
	kid, ok := m.SendKID()
	if !ok {
		return nil, fmt.Errorf("%w: no epoch added", ErrUnknownKID)
	}
	return m.ctx.Encrypt(dst, kid, metadata, plaintext)
}

// Decrypt decrypts a frame of another member and appends the plaintext to
// dst; the returned header's KID tells the epoch and sender (SplitKID). It
// returns the errors of Context.Decrypt; ErrUnknownKID means the frame is of
// an epoch this member does not hold (for instance after being removed).
func (m *MLSContext) Decrypt(dst, metadata, ct []byte) ([]byte, Header, error) {
	return m.ctx.Decrypt(dst, metadata, ct)
}
