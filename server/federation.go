package server

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/medicus-health/medicus/federation"
	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

// fed is a homeserver's federation: its trust, its client for calling
// peers, the sender draining the outbound queue, and waiters for events of
// followed rooms to arrive.
type fed struct {
	trust  *federation.Trust
	client *federation.Client
	sender *federation.Sender
	cert   tls.Certificate

	// arrived is closed and replaced after every commit, so that a
	// follower can wait until its replica of a room reaches a sequence
	// number (waitSeq).
	mu      sync.Mutex
	arrived chan struct{}
}

// outbox adapts the store's queue to federation.Outbox.
type outbox struct{ st store.Federation }

func (o outbox) Destinations(ctx context.Context) ([]string, error) {
	return o.st.FederationDestinations(ctx)
}

func (o outbox) Pending(ctx context.Context, dest string, limit int) ([]federation.Outbound, error) {
	items, err := o.st.FederationPending(ctx, dest, limit)
	out := make([]federation.Outbound, len(items))
	for i, it := range items {
		out[i] = federation.Outbound{ID: it.ID, Item: it.Item}
	}
	return out, err
}

func (o outbox) Delivered(ctx context.Context, dest string, upTo int64) error {
	return o.st.FederationDelivered(ctx, dest, upTo)
}

// newFed loads the federation certificate, CA, CRL and peers.
func newFed(cfg Config, logger *slog.Logger) (*fed, error) {
	cert, err := tls.LoadX509KeyPair(cfg.FederationCertFile, cfg.FederationKeyFile)
	if err != nil {
		return nil, fmt.Errorf("load federation certificate: %w", err)
	}
	peers, err := cfg.federationPeers()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(peers))
	for n := range peers {
		names = append(names, n)
	}
	trust, err := federation.NewTrust(federation.TrustConfig{CAFile: cfg.FederationCAFile, CRLFile: cfg.FederationCRLFile, Allowed: names, Blocked: cfg.FederationBlocked})
	if err != nil {
		return nil, err
	}
	f := &fed{trust: trust, cert: cert, arrived: make(chan struct{})}
	f.client = federation.NewClient(trust, cert, peers)
	return f, nil
}

// committed wakes waiters after a commit.
func (f *fed) committed() {
	f.mu.Lock()
	close(f.arrived)
	f.arrived = make(chan struct{})
	f.mu.Unlock()
}

// waitSeq waits until the local replica of a room holds sequence number seq.
func (s *Server) waitSeq(ctx context.Context, roomID string, seq int64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		s.fed.mu.Lock()
		ch := s.fed.arrived
		s.fed.mu.Unlock()
		last, err := s.store.LastSeq(ctx, roomID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if last >= seq {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return errorf(http.StatusServiceUnavailable, proto.ErrUnavailable, "the room's hub accepted it, but its event has not arrived here yet")
		}
	}
}

// hubOf returns the server part of a room id: the room's hub.
func hubOf(roomID string) string {
	_, s, _ := strings.Cut(roomID, ":")
	return s
}

// remoteHub reports whether a room is hosted by another server, and fails
// if federation is off.
func (s *Server) remoteHub(roomID string) (string, bool, error) {
	h := hubOf(roomID)
	if h == s.cfg.ServerName {
		return "", false, nil
	}
	if s.fed == nil {
		return "", true, errorf(http.StatusNotFound, proto.ErrNotFound, "room %s is on another server and federation is off", roomID)
	}
	return h, true, nil
}

// remoteErr turns a peer's error answer into the same error for our client.
func remoteErr(err error) error {
	var re *federation.RemoteError
	if errors.As(err, &re) && re.Status < 500 {
		return &apiError{status: re.Status, code: re.Code, message: re.Message, currentEpoch: re.CurrentEpoch}
	}
	return errorf(http.StatusBadGateway, proto.ErrUnavailable, "the other server could not be reached: %v", err)
}

// fedHandler serves the federation API (docs/federation.md) on the
// federation listener; every request's origin is its client certificate.
func (s *Server) fedHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /fed/v1/transactions/{txn}", s.fedOrigin(s.fedTransaction))
	mux.HandleFunc("GET /fed/v1/rooms/{room}/events", s.fedOrigin(s.fedEvents))
	mux.HandleFunc("PUT /fed/v1/rooms/{room}/submit/{txn}", s.fedOrigin(s.fedSubmit))
	mux.HandleFunc("POST /fed/v1/rooms/{room}/membership", s.fedOrigin(s.fedMembership))
	mux.HandleFunc("POST /fed/v1/keys/claim", s.fedOrigin(s.fedClaim))
	mux.HandleFunc("GET /fed/v1/media/{id}", s.fedOrigin(s.fedMedia))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, proto.ErrUnrecognized, "unknown federation endpoint")
	})
	return mux
}

func (s *Server) fedOrigin(h func(w http.ResponseWriter, r *http.Request, origin string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		origin, ok := s.fed.trust.PeerName(r)
		if !ok {
			writeError(w, http.StatusForbidden, proto.ErrForbidden, "not an allowed federation peer")
			return
		}
		// The peer is up: whatever is queued for it goes now, not after
		// the rest of a backoff from its outage.
		s.fed.sender.PeerIsBack(origin)
		h(w, r, origin)
	}
}

// maxTransactionBytes bounds a federation transaction.
const maxTransactionBytes = 256 << 20

// fedTransaction applies a transaction from origin: events of rooms whose
// hub origin is, and device messages from origin's users to ours.
func (s *Server) fedTransaction(w http.ResponseWriter, r *http.Request, origin string) {
	var tx proto.FedTransaction
	if err := decodeJSON(w, r, maxTransactionBytes, &tx); err != nil {
		s.fail(w, r, err)
		return
	}
	var res proto.FedTransactionResult
	count := func(applied bool, refusal string) {
		switch {
		case refusal != "":
			res.Refused = append(res.Refused, refusal)
			s.log.Warn("federation item refused", "origin", origin, "reason", refusal)
		case applied:
			res.Applied++
		default:
			res.Repeated++
		}
	}
	for i := 0; i < len(tx.Items); {
		// A run of room events is applied in one database transaction.
		j := i
		for j < len(tx.Items) && tx.Items[j].Kind == proto.FedItemEvent {
			j++
		}
		var err error
		if j > i {
			err = s.applyEvents(r.Context(), origin, tx.Items[i:j], count)
			i = j
		} else {
			var applied bool
			var refusal string
			applied, refusal, err = s.applyItem(r.Context(), origin, tx.Items[i])
			if err == nil {
				count(applied, refusal)
			}
			i++
		}
		if err != nil {
			// A transient failure: the origin retries the whole
			// transaction, and what was applied is recognised then.
			s.log.Warn("federation transaction failed", "origin", origin, "err", err)
			s.fail(w, r, errorf(http.StatusServiceUnavailable, proto.ErrUnavailable, "could not apply the transaction: %v", err))
			return
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// applyEvents applies a run of event items from origin, backfilling from
// the hub where one does not follow its room's last event.
func (s *Server) applyEvents(ctx context.Context, origin string, items []proto.FedItem, count func(bool, string)) error {
	var evs []proto.Event
	for _, it := range items {
		ev := it.Event
		switch {
		case ev == nil || !roomIDRE.MatchString(ev.RoomID) || ev.Seq < 1 || !kindRE.MatchString(ev.Kind):
			count(false, "malformed event")
		case hubOf(ev.RoomID) != origin:
			// A follower accepts a room's events only from its hub.
			count(false, fmt.Sprintf("%s is not the hub of %s", origin, ev.RoomID))
		default:
			evs = append(evs, *ev)
		}
	}
	for len(evs) > 0 {
		res, err := s.store.ApplyRemoteEvents(ctx, origin, evs)
		if err != nil {
			return err
		}
		done := len(evs)
		for k, r := range res {
			var gap *store.GapError
			if errors.As(r.Err, &gap) {
				if err := s.backfill(ctx, origin, evs[k].RoomID, gap.Last+1, evs[k].Seq-1); err != nil {
					return err
				}
				done = k // retry from the event after the gap was filled
				break
			}
			if r.Err != nil {
				count(false, r.Err.Error())
			} else {
				count(r.Applied, "")
			}
		}
		evs = evs[done:]
	}
	return nil
}

func (s *Server) applyItem(ctx context.Context, origin string, it proto.FedItem) (applied bool, refusal string, err error) {
	switch it.Kind {
	case proto.FedItemEvent:
		ev := it.Event
		if ev == nil || !roomIDRE.MatchString(ev.RoomID) || ev.Seq < 1 || !kindRE.MatchString(ev.Kind) {
			return false, "malformed event", nil
		}
		// A follower accepts a room's events only from its hub.
		if hubOf(ev.RoomID) != origin {
			return false, fmt.Sprintf("%s is not the hub of %s", origin, ev.RoomID), nil
		}
		applied, err := s.store.ApplyRemoteEvent(ctx, origin, *ev)
		var gap *store.GapError
		if errors.As(err, &gap) {
			if err := s.backfill(ctx, origin, ev.RoomID, gap.Last+1, ev.Seq-1); err != nil {
				return false, "", err
			}
			applied, err = s.store.ApplyRemoteEvent(ctx, origin, *ev)
		}
		if errors.Is(err, store.ErrForbidden) {
			return false, err.Error(), nil
		}
		return applied, "", err
	case proto.FedItemDeviceMessage:
		m := it.DeviceMessage
		if m == nil || !kindRE.MatchString(m.Kind) || !txnIDRE.MatchString(m.Txn) || int64(len(m.Body)) > s.cfg.MaxMessageBytes {
			return false, "malformed device message", nil
		}
		if serverOfUser(m.Sender) != origin {
			return false, fmt.Sprintf("%s may not send for %s", origin, m.Sender), nil
		}
		if serverOfUser(m.UserID) != s.cfg.ServerName {
			return false, fmt.Sprintf("%s is not a user of this server", m.UserID), nil
		}
		applied, err := s.store.DeliverRemoteDeviceMessage(ctx, origin, *m)
		if errors.Is(err, store.ErrNotFound) {
			return false, err.Error(), nil
		}
		if applied {
			s.hub.NotifyDevice(m.UserID, m.DeviceID)
		}
		return applied, "", err
	}
	return false, "unknown item kind " + it.Kind, nil
}

func serverOfUser(userID string) string {
	_, s, _ := strings.Cut(userID, ":")
	return s
}

// backfill fetches a followed room's events from..to from its hub, for a
// follower that missed them (e.g. restored from a backup).
func (s *Server) backfill(ctx context.Context, hub, roomID string, from, to int64) error {
	for from <= to {
		var h proto.HistoryResponse
		q := url.Values{"from": {strconv.FormatInt(from, 10)}, "limit": {strconv.FormatInt(min(to-from+1, maxHistoryLimit), 10)}}
		if err := s.fed.client.Do(ctx, hub, http.MethodGet, "/fed/v1/rooms/"+url.PathEscape(roomID)+"/events?"+q.Encode(), nil, &h); err != nil {
			return fmt.Errorf("backfill %s from %s: %w", roomID, hub, err)
		}
		if len(h.Events) == 0 {
			return fmt.Errorf("backfill %s: the hub has nothing from %d", roomID, from)
		}
		for _, ev := range h.Events {
			if _, err := s.store.ApplyRemoteEvent(ctx, hub, ev); err != nil {
				return err
			}
			from = ev.Seq + 1
		}
	}
	return nil
}

// fedEvents serves a hosted room's log to a server with members in it.
func (s *Server) fedEvents(w http.ResponseWriter, r *http.Request, origin string) {
	roomID := r.PathValue("room")
	if !s.hostsRoomFor(w, r, roomID, origin) {
		return
	}
	from, err := strconv.ParseInt(r.URL.Query().Get("from"), 10, 64)
	limit, lerr := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || lerr != nil || from < 1 || limit < 1 || limit > maxHistoryLimit {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "from ≥ 1 and limit 1-%d required", maxHistoryLimit))
		return
	}
	evs, err := s.store.History(r.Context(), roomID, from, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proto.HistoryResponse{Events: evs})
}

// hostsRoomFor checks that this server is the room's hub and origin has a
// member in it; otherwise it answers and returns false.
func (s *Server) hostsRoomFor(w http.ResponseWriter, r *http.Request, roomID, origin string) bool {
	if !roomIDRE.MatchString(roomID) || hubOf(roomID) != s.cfg.ServerName {
		s.fail(w, r, errorf(http.StatusNotFound, proto.ErrNotFound, "this server is not the hub of that room"))
		return false
	}
	room, err := s.store.Room(r.Context(), roomID)
	if err != nil {
		s.fail(w, r, err)
		return false
	}
	if !room.Admits(origin) {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "the room does not admit users of %s", origin))
		return false
	}
	ok, err := s.store.ServerHasMember(r.Context(), roomID, origin)
	if err != nil {
		s.fail(w, r, err)
		return false
	}
	if !ok {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "%s has no members in this room", origin))
		return false
	}
	return true
}

// fedSubmit sequences a message that a follower forwards for its member.
func (s *Server) fedSubmit(w http.ResponseWriter, r *http.Request, origin string) {
	roomID, txn := r.PathValue("room"), r.PathValue("txn")
	if !s.hostsRoomFor(w, r, roomID, origin) {
		return
	}
	var req proto.FedSubmitRequest
	if err := decodeJSON(w, r, base64Limit(s.cfg.MaxMessageBytes), &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if serverOfUser(req.Sender) != origin {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "%s may not send for %s", origin, req.Sender))
		return
	}
	s.appendMessage(w, r, store.Append{RoomID: roomID, Sender: req.Sender, DeviceID: req.DeviceID, TxnID: txn, Kind: req.Kind, Body: req.Body, Epoch: req.Epoch})
}

// fedMembership applies a follower's member's join or leave at the hub.
func (s *Server) fedMembership(w http.ResponseWriter, r *http.Request, origin string) {
	roomID := r.PathValue("room")
	if !s.hostsRoomFor(w, r, roomID, origin) {
		return
	}
	var req proto.FedMembershipRequest
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if serverOfUser(req.Actor) != origin {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "%s may not act for %s", origin, req.Actor))
		return
	}
	var u store.MembershipUpdate
	switch req.Action {
	case "join":
		u = store.MembershipUpdate{Membership: proto.MembershipJoin, Check: checkJoin}
	case "leave":
		u = store.MembershipUpdate{Membership: proto.MembershipLeave, Check: checkLeave}
	default:
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "only the hub's moderators invite and remove"))
		return
	}
	u.RoomID, u.Actor, u.Target, u.RoomRole = roomID, req.Actor, req.Actor, proto.RoomRoleMember
	ev, err := s.store.UpdateMembership(r.Context(), u)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.audit(r.Context(), store.AuditEntry{Actor: req.Actor, Action: "room_" + req.Action, Target: roomID, Address: "federation:" + origin})
	writeJSON(w, http.StatusOK, proto.FedMembershipResponse{Seq: ev.Seq})
}

// fedClaim hands a remote requester key packages of a local user.
func (s *Server) fedClaim(w http.ResponseWriter, r *http.Request, origin string) {
	var req proto.FedClaimRequest
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if serverOfUser(req.Requester) != origin {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "%s may not claim for %s", origin, req.Requester))
		return
	}
	if req.DeviceID != "" && !deviceIDRE.MatchString(req.DeviceID) {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "malformed device id"))
		return
	}
	target, err := s.localUser(r, req.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.claimFor(w, r, req.Requester, "", "federation:"+origin, target, req.DeviceID, proto.EffectiveSuite(req.Suite))
}

// fedMedia serves a blob to a server with a member in a room it was posted in.
func (s *Server) fedMedia(w http.ResponseWriter, r *http.Request, origin string) {
	sha, roomID := r.PathValue("id"), r.URL.Query().Get("room")
	if !mediaIDRE.MatchString(sha) || !roomIDRE.MatchString(roomID) {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "media id and room required"))
		return
	}
	ok, err := s.store.ServerHasMember(r.Context(), roomID, origin)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	md, err := s.store.MediaInRoom(r.Context(), sha, roomID)
	if !ok || errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, errorf(http.StatusNotFound, proto.ErrNotFound, "no such media in a room %s has members in", origin))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f, err := os.Open(s.media.path(sha))
	if err != nil {
		s.fail(w, r, fmt.Errorf("open media %s: %w", sha, err))
		return
	}
	defer f.Close()
	s.audit(r.Context(), store.AuditEntry{Actor: "server:" + origin, Action: "media_federation", Target: roomID + " " + sha, Address: "federation:" + origin})
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", md.Time, f)
}

// fetchRemoteMedia copies a blob of a followed room from the server it was
// posted on into the local media store, checking its hash.
func (s *Server) fetchRemoteMedia(ctx context.Context, origin, sha, roomID string) error {
	resp, err := s.fed.client.Open(ctx, origin, http.MethodGet, "/fed/v1/media/"+sha+"?room="+url.QueryEscape(roomID), nil)
	if err != nil {
		return remoteErr(err)
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(s.media.tmp, "remote-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, s.cfg.MaxMediaBytes+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch media %s from %s: %w", sha, origin, err)
	}
	if n > s.cfg.MaxMediaBytes || hex.EncodeToString(h.Sum(nil)) != sha {
		return errorf(http.StatusBadGateway, proto.ErrUnavailable, "%s sent a blob that does not match its hash", origin)
	}
	if err := s.media.adopt(tmp.Name(), sha); err != nil {
		return err
	}
	return s.store.RecordRemoteMedia(ctx, sha, roomID, origin, n)
}

// serveFederation runs the federation listener and the outbound sender
// until ctx ends.
func (s *Server) serveFederation(ctx context.Context) (stop func() error, err error) {
	ln, err := net.Listen("tcp", s.cfg.FederationListen)
	if err != nil {
		return nil, fmt.Errorf("federation listen on %s: %w", s.cfg.FederationListen, err)
	}
	srv := &http.Server{
		Handler:           s.fedHandler(),
		TLSConfig:         s.fed.trust.ServerTLS(s.fed.cert),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	go srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- s.fed.sender.Run(sctx) }()
	go s.reloadCRL(sctx)
	go s.greetPeers(sctx)
	s.log.Info("federation listening", "addr", ln.Addr().String(), "peers", s.fed.trust.Peers())
	return func() error {
		shctx, c := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout.Duration)
		defer c()
		err := srv.Shutdown(shctx)
		cancel()
		<-done
		s.fed.client.CloseIdle()
		return err
	}, nil
}

// crlReloadInterval is how often a running server rereads the federation
// CRL, so that `medicus pki revoke` takes effect without a restart.
const crlReloadInterval = 30 * time.Second

func (s *Server) reloadCRL(ctx context.Context) {
	t := time.NewTicker(crlReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.fed.trust.ReloadCRL(); err != nil {
				// The revocations known so far stay in force.
				s.log.Error("federation CRL reload failed", "err", err)
			}
		}
	}
}

// greetPeers sends each peer an empty transaction at start-up, so that a
// peer holding a backlog for this server (it was down) sends it at once
// instead of after its current backoff.
func (s *Server) greetPeers(ctx context.Context) {
	id := "hello-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	for _, p := range s.fed.trust.Peers() {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := s.fed.client.Do(ctx, p, http.MethodPut, "/fed/v1/transactions/"+id, proto.FedTransaction{Items: []proto.FedItem{}}, nil); err != nil {
				s.log.Debug("greeting a peer failed", "peer", p, "err", err)
			}
		}()
	}
}
