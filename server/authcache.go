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
	// gen counts evictions. A request notes it before reading the store and
	// caches its result only if no eviction happened meanwhile, so a
	// revocation racing with that read cannot leave a stale entry.
	gen uint64
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

// generation returns the eviction count to pass to put.
func (a *authCache) generation() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.gen
}

// put caches c unless an eviction happened since generation returned gen.
func (a *authCache) put(tokenHash []byte, c caller, now time.Time, gen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if gen != a.gen {
		return
	}
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
	a.gen++
	for k, e := range a.entries {
		if e.c.User.ID == user && (device == "" || e.c.Device.DeviceID == device) {
			delete(a.entries, k)
		}
	}
}
