package server

import (
	"sync"
	"time"
)

// authCache remembers recently authenticated tokens for a short time, so
// that the hot path (sending, many requests per second per device) does not
// read the devices and users tables on every request. Logout, device
// revocation and disabling through this server evict entries at once; a
// change made by another process (`medicus admin user disable`) takes effect
// within authCacheTTL.
type authCache struct {
	mu      sync.Mutex
	entries map[string]authEntry
}

type authEntry struct {
	c       caller
	expires time.Time
}

const (
	authCacheTTL  = 5 * time.Second
	authCacheSize = 10_000
)

func newAuthCache() *authCache { return &authCache{entries: make(map[string]authEntry)} }

func (a *authCache) get(tokenHash []byte, now time.Time) (caller, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.entries[string(tokenHash)]
	if !ok || now.After(e.expires) {
		return caller{}, false
	}
	return e.c, true
}

func (a *authCache) put(tokenHash []byte, c caller, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.entries) >= authCacheSize {
		for k, e := range a.entries {
			if now.After(e.expires) {
				delete(a.entries, k)
			}
		}
		if len(a.entries) >= authCacheSize {
			return // full of live entries: authenticate from the store
		}
	}
	a.entries[string(tokenHash)] = authEntry{c: c, expires: now.Add(authCacheTTL)}
}

// evict removes the entries of a user's device, or of all the user's
// devices when device is empty.
func (a *authCache) evict(user, device string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, e := range a.entries {
		if e.c.User.ID == user && (device == "" || e.c.Device.DeviceID == device) {
			delete(a.entries, k)
		}
	}
}
