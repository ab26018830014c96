package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/password"
	"github.com/medicus-health/medicus/server/store"
)

type ctxKey struct{}

// caller is the authenticated device of a request.
type caller struct {
	User   store.User
	Device store.Device
}

// authed wraps a handler that needs an access token (Authorization: Bearer).
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, c caller)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		token, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || token == "" {
			writeError(w, http.StatusUnauthorized, proto.ErrMissingToken, "missing access token")
			return
		}
		hashed := hashToken(token)
		now := time.Now()
		if c, ok := s.auth.get(hashed, now); ok {
			h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)), c)
			return
		}
		gen := s.auth.generation()
		dev, err := s.store.DeviceByToken(r.Context(), hashed)
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusUnauthorized, proto.ErrUnknownToken, "unknown or revoked access token")
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		user, err := s.store.User(r.Context(), dev.UserID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if user.Disabled {
			writeError(w, http.StatusUnauthorized, proto.ErrUnknownToken, "account disabled")
			return
		}
		c := caller{User: user, Device: dev}
		s.auth.put(hashed, c, now, gen)
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, c)), c)
	})
}

// loginLimiter limits failed logins per key (account or address) with token
// buckets. Memory is bounded: beyond maxKeys tracked keys, idle ones are
// dropped, and if all are busy new keys share one overflow bucket, which
// fails closed under a flood.
type loginLimiter struct {
	mu       sync.Mutex
	perMin   float64
	burst    int
	buckets  map[string]*bucket
	overflow *bucket
	// swept is when the map was last scanned for idle buckets; scans run at
	// most once a second so a flood of new keys cannot make every attempt
	// walk the whole map.
	swept time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
	// reported is when a refused attempt was last written to the audit
	// log; refusals are audited once a minute per key, so a flood of
	// refused attempts cannot flood the database.
	reported time.Time
}

const maxLimiterKeys = 100_000

func newLoginLimiter(perMinute float64, burst int) *loginLimiter {
	return &loginLimiter{
		perMin:   perMinute,
		burst:    burst,
		buckets:  make(map[string]*bucket),
		overflow: &bucket{lim: rate.NewLimiter(rate.Limit(perMinute/60), burst)},
	}
}

func (l *loginLimiter) bucket(key string, now time.Time) *bucket {
	b, ok := l.buckets[key]
	if ok {
		b.seen = now
		return b
	}
	if len(l.buckets) >= maxLimiterKeys {
		if now.Sub(l.swept) < time.Second {
			return l.overflow
		}
		l.swept = now
		// A bucket idle long enough to be full again carries no state.
		full := time.Duration(float64(l.burst)/l.perMin*float64(time.Minute)) + time.Second
		for k, b := range l.buckets {
			if now.Sub(b.seen) > full {
				delete(l.buckets, k)
			}
		}
		if len(l.buckets) >= maxLimiterKeys {
			return l.overflow
		}
	}
	b = &bucket{lim: rate.NewLimiter(rate.Limit(l.perMin/60), l.burst), seen: now}
	l.buckets[key] = b
	return b
}

// blocked reports whether any of the keys has used up its failures, how
// long until one more attempt is allowed, and whether this refusal should be
// audited (the first for that key in a minute).
func (l *loginLimiter) blocked(now time.Time, keys ...string) (blocked bool, wait time.Duration, report bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		b := l.bucket(k, now)
		if tokens := b.lim.TokensAt(now); tokens < 1 {
			need := (1 - tokens) / (l.perMin / 60)
			report = now.Sub(b.reported) >= time.Minute
			if report {
				b.reported = now
			}
			return true, time.Duration(need * float64(time.Second)), report
		}
	}
	return false, 0, false
}

// fail records a failed attempt against every key.
func (l *loginLimiter) fail(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		l.bucket(k, now).lim.AllowN(now, 1)
	}
}

// dummyHash makes a login for an unknown user cost as much as a real one,
// so response time does not reveal which accounts exist.
var dummyHash = sync.OnceValue(func() string {
	h, _ := password.Hash("medicus-dummy-password", password.Default)
	return h
})

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req proto.LoginRequest
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	local, server, err := ParseUserID(req.UserID, s.cfg.ServerName)
	if err != nil {
		writeError(w, http.StatusBadRequest, proto.ErrInvalidUsername, err.Error())
		return
	}
	userID := "@" + local + ":" + server
	addr := clientAddress(r)
	now := time.Now()
	if blocked, wait, report := s.limits.blocked(now, "user:"+userID, "addr:"+addr); blocked {
		if report {
			s.audit(r.Context(), store.AuditEntry{Actor: userID, Action: "login_rate_limited", Address: addr})
		}
		writeJSON(w, http.StatusTooManyRequests, proto.Error{Code: proto.ErrLimitExceeded,
			Message: "too many failed logins; try again later", RetryAfterMS: wait.Milliseconds() + 1})
		return
	}
	user, err := s.store.User(r.Context(), userID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, err)
		return
	}
	hash := user.PasswordHash
	if server != s.cfg.ServerName || errors.Is(err, store.ErrNotFound) {
		hash = dummyHash()
	}
	// Each argon2id verification holds 19 MiB; a bounded number run at once
	// so that a login flood costs time, not memory.
	select {
	case s.hashSlots <- struct{}{}:
	case <-r.Context().Done():
		s.fail(w, r, r.Context().Err())
		return
	}
	perr := password.Verify(req.Password, hash)
	<-s.hashSlots
	if perr != nil || err != nil || server != s.cfg.ServerName {
		s.limits.fail(now, "user:"+userID, "addr:"+addr)
		s.audit(r.Context(), store.AuditEntry{Actor: userID, Action: "login_failed", Address: addr})
		writeError(w, http.StatusForbidden, proto.ErrForbidden, "invalid user id or password")
		return
	}
	if user.Disabled {
		s.audit(r.Context(), store.AuditEntry{Actor: userID, Action: "login_disabled", Address: addr})
		writeError(w, http.StatusForbidden, proto.ErrForbidden, "account disabled")
		return
	}
	token, hashed := newAccessToken()
	dev := store.Device{UserID: userID, DeviceID: newDeviceID(), Name: truncate(req.DeviceName, 128), TokenHash: hashed, CreatedAt: now, LastSeenAt: now}
	if err := s.store.CreateDevice(r.Context(), dev); err != nil {
		s.fail(w, r, err)
		return
	}
	s.audit(r.Context(), store.AuditEntry{Actor: userID, DeviceID: dev.DeviceID, Action: "login", Address: addr})
	writeJSON(w, http.StatusOK, proto.LoginResponse{UserID: userID, DeviceID: dev.DeviceID, AccessToken: token, Role: user.Role})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// revokeDevice deletes a device with its token, drops the token from the
// cache and closes the device's sync connections.
func (s *Server) revokeDevice(ctx context.Context, user, device string) error {
	if err := s.store.DeleteDevice(ctx, user, device); err != nil {
		return err
	}
	s.auth.evict(user, device)
	s.hub.Revoke(user, device)
	return nil
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, c caller) {
	if err := s.revokeDevice(r.Context(), c.User.ID, c.Device.DeviceID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.audit(r.Context(), store.AuditEntry{Actor: c.User.ID, DeviceID: c.Device.DeviceID, Action: "logout", Address: clientAddress(r)})
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request, c caller) {
	devs, err := s.store.Devices(r.Context(), c.User.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := proto.DevicesResponse{Devices: []proto.Device{}}
	for _, d := range devs {
		resp.Devices = append(resp.Devices, proto.Device{DeviceID: d.DeviceID, Name: d.Name, CreatedAt: d.CreatedAt, LastSeenAt: d.LastSeenAt})
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleDeleteDevice(w http.ResponseWriter, r *http.Request, c caller) {
	dev := r.PathValue("device")
	if err := s.revokeDevice(r.Context(), c.User.ID, dev); err != nil {
		s.fail(w, r, err)
		return
	}
	s.audit(r.Context(), store.AuditEntry{Actor: c.User.ID, DeviceID: c.Device.DeviceID, Action: "device_revoke", Target: dev, Address: clientAddress(r)})
	writeJSON(w, http.StatusOK, struct{}{})
}
