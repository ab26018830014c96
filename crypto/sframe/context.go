package sframe

import (
	"fmt"
	"math"
	"sync"
)

// replayWindow is how many counters below the highest accepted one a
// receive key still accepts, each at most once (a sliding window as in
// RFC 3711 §3.3.2, which RFC 9605 §9.4 suggests adapting).
const replayWindow = 128

// Context is an SFrame key store keyed by KID (RFC 9605 §4.4.1). A send key
// encrypts with a counter that starts at 0 and is incremented after every
// frame, so no (KID, CTR) pair is ever used twice; a receive key decrypts
// and refuses counters it has already accepted or that fell out of its
// replay window. A KID is a send key or a receive key, never both. A
// Context is safe for concurrent use.
type Context struct {
	suite CipherSuite

	mu   sync.Mutex
	send map[uint64]*sendKey
	recv map[uint64]*recvKey

	// resolve, if set, returns the base key for a KID that has no receive
	// key yet; the key derived from it is kept only once a frame under it
	// authenticated, so forged KIDs cannot grow the store.
	resolve func(kid uint64) ([]byte, bool)
}

type sendKey struct {
	key *Key
	ctr uint64
	// exhausted is set once the counter math.MaxUint64 has been used.
	exhausted bool
}

type recvKey struct {
	key     *Key
	started bool
	highest uint64
	seen    [replayWindow / 64]uint64 // bit i: highest-i was accepted
}

// NewContext returns an empty key store for suite. It returns
// ErrUnsupportedSuite for an unknown suite.
func NewContext(suite CipherSuite) (*Context, error) {
	if _, err := suite.params(); err != nil {
		return nil, err
	}
	return &Context{suite: suite, send: map[uint64]*sendKey{}, recv: map[uint64]*recvKey{}}, nil
}

// Suite returns the context's cipher suite.
func (c *Context) Suite() CipherSuite { return c.suite }

// AddSendKey derives the key for kid from baseKey and registers it for
// encryption with counter 0. Re-adding a send key restarts nothing: it
// returns an error, because restarting the counter would reuse nonces.
func (c *Context) AddSendKey(kid uint64, baseKey []byte) error {
	k, err := DeriveKey(c.suite, kid, baseKey)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.recv[kid]; ok {
		return fmt.Errorf("%w: KID %d", ErrKeyUsage, kid)
	}
	if _, ok := c.send[kid]; ok {
		return fmt.Errorf("sframe: send key for KID %d already present", kid)
	}
	c.send[kid] = &sendKey{key: k}
	return nil
}

// AddReceiveKey derives the key for kid from baseKey and registers it for
// decryption, replacing any receive key held for kid.
func (c *Context) AddReceiveKey(kid uint64, baseKey []byte) error {
	k, err := DeriveKey(c.suite, kid, baseKey)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.send[kid]; ok {
		return fmt.Errorf("%w: KID %d", ErrKeyUsage, kid)
	}
	c.recv[kid] = &recvKey{key: k}
	return nil
}

// RemoveKey forgets the send or receive key for kid.
func (c *Context) RemoveKey(kid uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.send, kid)
	delete(c.recv, kid)
}

// RemoveKeys forgets every key whose KID satisfies drop.
func (c *Context) RemoveKeys(drop func(kid uint64) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for kid := range c.send {
		if drop(kid) {
			delete(c.send, kid)
		}
	}
	for kid := range c.recv {
		if drop(kid) {
			delete(c.recv, kid)
		}
	}
}

// Encrypt encrypts plaintext with the send key for kid and its next counter
// and appends the SFrame ciphertext to dst (§4.4.3). metadata is
// authenticated but not carried. It returns ErrUnknownKID if no send key
// is held for kid and ErrCounterExhausted once every counter was used.
func (c *Context) Encrypt(dst []byte, kid uint64, metadata, plaintext []byte) ([]byte, error) {
	c.mu.Lock()
	sk, ok := c.send[kid]
	if !ok {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: no send key %d", ErrUnknownKID, kid)
	}
	if sk.exhausted {
		c.mu.Unlock()
		return nil, ErrCounterExhausted
	}
	ctr := sk.ctr
	if ctr == math.MaxUint64 {
		sk.exhausted = true
	} else {
		sk.ctr++
	}
	c.mu.Unlock()
	return sk.key.Seal(dst, ctr, metadata, plaintext), nil
}

// Decrypt authenticates and decrypts the SFrame ciphertext ct with the
// receive key its header names and appends the plaintext to dst (§4.4.4).
// It returns ErrMalformed for an unparsable ciphertext, ErrUnknownKID when
// no receive key is held for the KID, ErrAuthentication when
// authentication fails and ErrReplay for a counter already accepted or
// older than the replay window. Only authenticated frames move the window.
func (c *Context) Decrypt(dst, metadata, ct []byte) ([]byte, Header, error) {
	h, n, err := ParseHeader(ct)
	if err != nil {
		return nil, Header{}, err
	}
	c.mu.Lock()
	rk, ok := c.recv[h.KID]
	if ok && !rk.fresh(h.CTR) {
		c.mu.Unlock()
		return nil, h, ErrReplay
	}
	_, sending := c.send[h.KID]
	c.mu.Unlock()
	var baseKey []byte
	if !ok && !sending && c.resolve != nil {
		// Outside c.mu: the resolver takes its own lock, which is held
		// while it removes keys from this Context.
		baseKey, _ = c.resolve(h.KID)
	}
	if !ok {
		if baseKey == nil {
			return nil, h, fmt.Errorf("%w: %d", ErrUnknownKID, h.KID)
		}
		k, err := DeriveKey(c.suite, h.KID, baseKey)
		if err != nil {
			return nil, h, err
		}
		rk = &recvKey{key: k}
	}
	out, err := rk.key.open(dst, metadata, ct, h, n)
	if err != nil {
		return nil, h, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok {
		// Keep the resolved key, unless a concurrent Decrypt stored one.
		if cur, found := c.recv[h.KID]; found {
			rk = cur
		} else {
			c.recv[h.KID] = rk
		}
	}
	// Check again: a concurrent Decrypt may have accepted the same counter.
	if !rk.fresh(h.CTR) {
		return nil, h, ErrReplay
	}
	rk.accept(h.CTR)
	return out, h, nil
}

// fresh reports whether ctr was not yet accepted and is inside the window.
func (r *recvKey) fresh(ctr uint64) bool {
	if !r.started || ctr > r.highest {
		return true
	}
	d := r.highest - ctr
	if d >= replayWindow {
		return false
	}
	return r.seen[d/64]&(1<<(d%64)) == 0
}

func (r *recvKey) accept(ctr uint64) {
	if !r.started {
		r.started, r.highest, r.seen[0] = true, ctr, 1
		return
	}
	if ctr > r.highest {
		shift := ctr - r.highest
		r.shift(shift)
		r.highest = ctr
		r.seen[0] |= 1
		return
	}
	d := r.highest - ctr
	r.seen[d/64] |= 1 << (d % 64)
}

// shift moves the window up by n counters.
func (r *recvKey) shift(n uint64) {
	if n >= replayWindow {
		r.seen = [replayWindow / 64]uint64{}
		return
	}
	words, bitsN := int(n/64), n%64
	for i := len(r.seen) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = r.seen[j] << bitsN
			if bitsN > 0 && j-1 >= 0 {
				v |= r.seen[j-1] >> (64 - bitsN)
			}
		}
		r.seen[i] = v
	}
}
