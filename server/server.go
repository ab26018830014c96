// Package server is the medicus homeserver: the HTTPS client API under /v1/,
// the sync WebSocket, accounts and devices, rooms with their policy, the
// hub's ordered room logs, key packages, direct device messages, media and
// the audit log. It stores through the store interface and never parses
// message content, which is MLS ciphertext it cannot read.
//
// The protocol is documented in docs/api.md; its wire types are in package
// proto.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/medicus-health/medicus/federation"
	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/hub"
	"github.com/medicus-health/medicus/server/sfu"
	"github.com/medicus-health/medicus/server/store"
	"github.com/medicus-health/medicus/server/store/sqlite"
	"github.com/medicus-health/medicus/server/turn"
	"github.com/medicus-health/medicus/web"
)

// Server is a running homeserver's state.
type Server struct {
	cfg    Config
	log    *slog.Logger
	store  store.Store
	hub    *hub.Hub
	tls    *tls.Config
	media  *mediaStore
	limits *loginLimiter
	auth   *authCache
	turn   *turn.Server // nil unless turn_listen is set
	fed    *fed         // nil unless federation_listen is set
	sfu    *sfu.SFU
	// mediaClosed makes closeMedia run once.
	mediaClosed sync.Once
	// hashSlots bounds concurrent password verifications (see handleLogin).
	hashSlots chan struct{}

	// shutdown is closed when Serve begins shutting down; sync sessions
	// watch it to send their close frames.
	shutdown     chan struct{}
	shutdownOnce sync.Once
	sessions     sync.WaitGroup
}

// New opens the store (running migrations) and loads the TLS material.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	media, err := newMediaStore(cfg.MediaDir)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       logger,
		media:     media,
		limits:    newLoginLimiter(cfg.LoginFailuresPerMinute, cfg.LoginFailureBurst),
		auth:      newAuthCache(),
		hashSlots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
		shutdown:  make(chan struct{}),
		tls: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
		},
	}
	// The hub is created after the store knows its latest position, but the
	// store needs the hub's Publish as its commit hook: bind through s.
	if cfg.FederationListen != "" {
		if s.fed, err = newFed(cfg, logger); err != nil {
			return nil, err
		}
	}
	opts := sqlite.Options{Logger: logger, ServerName: cfg.ServerName, OnCommit: func(evs []proto.Event) {
		s.hub.Publish(evs)
		if s.fed != nil {
			s.fed.committed()
		}
	}}
	if s.fed != nil {
		opts.OnFederate = func(dests []string) {
			for _, d := range dests {
				s.fed.sender.Notify(d)
			}
		}
	}
	db, err := sqlite.Open(cfg.DatabaseFile, opts)
	if err != nil {
		return nil, err
	}
	last, err := db.LatestStream(context.Background())
	if err != nil {
		db.Close()
		return nil, err
	}
	s.store = db
	s.hub = hub.New(cfg.SyncRingEvents, last)
	if s.fed != nil {
		s.fed.sender = federation.NewSender(outbox{db}, s.fed.client, federation.SenderConfig{Logger: logger})
	}
	if err := s.startMedia(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Handler returns the HTTP handler of the client API (without TLS), for
// embedding and tests.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", s.handleHealth)
	mux.HandleFunc("POST /v1/login", s.handleLogin)
	mux.Handle("POST /v1/logout", s.authed(s.handleLogout))
	mux.Handle("GET /v1/devices", s.authed(s.handleDevices))
	mux.Handle("DELETE /v1/devices/{device}", s.authed(s.handleDeleteDevice))
	mux.Handle("GET /v1/rooms", s.authed(s.handleRooms))
	mux.Handle("POST /v1/rooms", s.authed(s.handleCreateRoom))
	mux.Handle("POST /v1/rooms/{room}/invite", s.authed(s.handleInvite))
	mux.Handle("POST /v1/rooms/{room}/join", s.authed(s.handleJoin))
	mux.Handle("POST /v1/rooms/{room}/leave", s.authed(s.handleLeave))
	mux.Handle("POST /v1/rooms/{room}/remove", s.authed(s.handleRemove))
	mux.Handle("PUT /v1/rooms/{room}/send/{txn}", s.authed(s.handleSend))
	mux.Handle("PUT /v1/rooms/{room}/mls/group_info", s.authed(s.handlePublishGroupInfo))
	mux.Handle("GET /v1/rooms/{room}/messages", s.authed(s.handleHistory))
	mux.Handle("POST /v1/keys/upload", s.authed(s.handleUploadKeys))
	mux.Handle("GET /v1/keys/count", s.authed(s.handleCountKeys))
	mux.Handle("POST /v1/keys/claim", s.authed(s.handleClaimKeys))
	mux.Handle("PUT /v1/send_to_device/{txn}", s.authed(s.handleSendToDevice))
	mux.Handle("POST /v1/device_messages/ack", s.authed(s.handleAckDeviceMessages))
	mux.Handle("POST /v1/media", s.authed(s.handleUploadMedia))
	mux.Handle("GET /v1/media/{id}", s.authed(s.handleDownloadMedia))
	mux.Handle("GET /v1/sync", browserSyncAuth(s.authed(s.handleSync))) // websync.go
	mux.Handle("GET /v1/voip/turn", s.authed(s.handleTURN))
	mux.Handle("GET /v1/rooms/{room}/call", s.authed(s.handleCall))
	mux.Handle("GET /{$}", web.Handler()) // the browser client (web/): index.html, assets under /web/
	mux.Handle("GET /web/", web.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, proto.ErrUnrecognized, "no such endpoint")
	})
	return mux
}

// Serve serves the client API over TLS on ln until ctx is done, then shuts
// down gracefully: it stops accepting, lets in-flight requests finish (up to
// ShutdownTimeout), sends every sync WebSocket a close frame, and closes the
// store. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	stopFed := func() error { return nil }
	if s.fed != nil {
		var err error
		if stopFed, err = s.serveFederation(ctx); err != nil {
			ln.Close()
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(gatherListener{ln}, s.tls)) }()
	s.log.Info("homeserver listening", "server_name", s.cfg.ServerName, "addr", ln.Addr().String())

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.log.Info("homeserver shutting down")
	s.beginShutdown()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout.Duration)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	fedErr := stopFed()
	mediaErr := s.closeMedia()
	s.sessions.Wait()
	closeErr := s.store.Close()
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	if err := errors.Join(serveErr, shutdownErr, fedErr, mediaErr, closeErr); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("homeserver stopped cleanly")
	return nil
}

// Close releases the store of a Server that was never served.
func (s *Server) Close() error {
	s.beginShutdown()
	mediaErr := s.closeMedia()
	s.sessions.Wait()
	return errors.Join(mediaErr, s.store.Close())
}

func (s *Server) beginShutdown() {
	s.shutdownOnce.Do(func() {
		close(s.shutdown)
		s.hub.WakeAll()
	})
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, proto.HealthResponse{Status: "ok", ServerName: s.cfg.ServerName})
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, proto.Error{Code: code, Message: msg})
}

// apiError is an error with its API code and status; handlers return it
// through fail, which maps every other error in one place.
type apiError struct {
	status  int
	code    string
	message string
	// currentEpoch goes with proto.ErrStaleEpoch.
	currentEpoch *uint64
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, args ...any) error {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// fail writes the error response for err, mapping store errors to codes.
// Unexpected errors are logged and answered with M_UNKNOWN without details.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae) && ae.currentEpoch != nil:
		writeJSON(w, ae.status, proto.Error{Code: ae.code, Message: ae.message, CurrentEpoch: ae.currentEpoch})
	case errors.As(err, &ae):
		writeError(w, ae.status, ae.code, ae.message)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, proto.ErrTooLarge, fmt.Sprintf("body exceeds %d bytes", mbe.Limit))
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, proto.ErrNotFound, "not found")
	case errors.Is(err, store.ErrForbidden):
		writeError(w, http.StatusForbidden, proto.ErrForbidden, "not allowed")
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, proto.ErrConflict, "conflicts with the current state")
	case errors.Is(err, store.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, proto.ErrUnavailable, "server is shutting down")
	case errors.Is(err, context.Canceled):
		writeError(w, http.StatusServiceUnavailable, proto.ErrUnavailable, "request cancelled")
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, proto.ErrUnknown, "internal error")
	}
}

// decodeJSON reads a JSON body of at most limit bytes into v, refusing
// unknown fields and trailing data.
func decodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return errorf(http.StatusBadRequest, proto.ErrBadJSON, "request body: %v", err)
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, proto.ErrBadJSON, "request body has data after the JSON value")
	}
	return nil
}

// base64Limit is the JSON body size that carries n bytes in base64 fields
// plus the surrounding structure.
func base64Limit(n int64) int64 { return n/3*4 + 8 + 64<<10 }

// clientAddress is the remote IP, used for rate limits and the audit log.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) audit(ctx context.Context, e store.AuditEntry) {
	e.Time = time.Now()
	if err := s.store.Audit(ctx, e); err != nil {
		s.log.Error("audit log write failed", "action", e.Action, "err", err)
	}
}

// ensureDir creates dir with owner-only permissions.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}
