package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/medicus-health/medicus/client/state"
	"github.com/medicus-health/medicus/crypto/identity"
	"github.com/medicus-health/medicus/crypto/mls"
)

// pin is the identity key a session trusts for a user.
type pin struct {
	Key       ed25519.PublicKey `json:"key"`
	FirstSeen time.Time         `json:"first_seen"`
	Verified  bool              `json:"verified"`
}

// Warning records that a known user showed up under another identity key:
// either the user reset their identity or someone (e.g. a homeserver) tries
// to impersonate them. The session refuses the new key until the user is
// verified again.
type Warning struct {
	UserID  string            `json:"user_id"`
	Pinned  ed25519.PublicKey `json:"pinned"`
	Offered ed25519.PublicKey `json:"offered"`
	Time    time.Time         `json:"time"`
}

type pinSet struct {
	Pins     map[string]*pin `json:"pins"`
	Warnings []Warning       `json:"warnings"`
	dirty    bool
}

func loadPins(ctx context.Context, st *state.Store) (*pinSet, error) {
	p := &pinSet{Pins: map[string]*pin{}}
	raw, err := st.Get(ctx, "pins")
	if errors.Is(err, state.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("decode pinned identity keys: %w", err)
	}
	if p.Pins == nil {
		p.Pins = map[string]*pin{}
	}
	return p, nil
}

func (p *pinSet) save(ctx context.Context, st *state.Store) error {
	if !p.dirty {
		return nil
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := st.Put(ctx, "pins", raw); err != nil {
		return err
	}
	p.dirty = false
	return nil
}

// check pins key for user on first use and refuses another key later.
func (p *pinSet) check(user string, key ed25519.PublicKey, now time.Time) error {
	old, ok := p.Pins[user]
	if !ok {
		p.Pins[user] = &pin{Key: key, FirstSeen: now}
		p.dirty = true
		return nil
	}
	if equalKey(old.Key, key) {
		return nil
	}
	for _, w := range p.Warnings {
		if w.UserID == user && equalKey(w.Offered, key) {
			return fmt.Errorf("%w: %s", ErrIdentityChanged, user)
		}
	}
	p.Warnings = append(p.Warnings, Warning{UserID: user, Pinned: old.Key, Offered: key, Time: now})
	p.dirty = true
	return fmt.Errorf("%w: %s", ErrIdentityChanged, user)
}

// validateCredential is the MLS Authentication Service (RFC 9420 §5.3.1):
// every leaf must carry a medicus device credential whose identity key
// signed this signature key, and whose identity key is the one pinned for
// the user.
func (s *Session) validateCredential(cred *mls.Credential, signatureKey []byte) error {
	dc, err := parseDeviceCredential(cred)
	if err != nil {
		return err
	}
	if err := dc.Verify(signatureKey); err != nil {
		return fmt.Errorf("%w: %w", ErrBadCredential, err)
	}
	return s.pins.check(dc.UserID, dc.IdentityKey, s.now())
}

func parseDeviceCredential(cred *mls.Credential) (*identity.DeviceCredential, error) {
	if cred.CredentialType != mls.CredentialBasic {
		return nil, fmt.Errorf("%w: credential type %d", ErrBadCredential, cred.CredentialType)
	}
	dc, err := identity.ParseCredential(cred.Identity)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCredential, err)
	}
	return dc, nil
}

// Identity describes what the session knows of a user's identity key.
type Identity struct {
	UserID       string `json:"user_id"`
	Known        bool   `json:"known"`
	Verified     bool   `json:"verified"`
	SafetyNumber string `json:"safety_number,omitempty"`
	// Warnings lists identity keys the user was offered under and that the
	// session refused.
	Warnings []Warning `json:"warnings,omitempty"`
}

// Verify returns the safety number of the session's user and user, to
// compare out of band; markVerified records that the comparison succeeded.
func (s *Session) Verify(ctx context.Context, user string, markVerified bool) (Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Identity{UserID: user}
	p, ok := s.pins.Pins[user]
	for _, w := range s.pins.Warnings {
		if w.UserID == user {
			out.Warnings = append(out.Warnings, w)
		}
	}
	if !ok {
		return out, nil
	}
	out.Known = true
	out.SafetyNumber = identity.SafetyNumber(s.prof.UserID, s.ident.Public(), user, p.Key)
	if markVerified && !p.Verified {
		p.Verified = true
		s.pins.dirty = true
		if err := s.pins.save(ctx, s.st); err != nil {
			return out, err
		}
	}
	out.Verified = p.Verified
	return out, nil
}

// Warnings returns every identity-key change the session refused.
func (s *Session) Warnings() []Warning {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := append([]Warning(nil), s.pins.Warnings...)
	sort.Slice(w, func(i, j int) bool { return w[i].Time.Before(w[j].Time) })
	return w
}
