package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

// Room policy (DESIGN.md): patients cannot create rooms or invite; only
// joined moderators add or remove members; every user, bots included, joins
// only rooms it is invited to.

func (s *Server) roomFromPath(r *http.Request) (store.Room, error) {
	id := r.PathValue("room")
	if !roomIDRE.MatchString(id) {
		return store.Room{}, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "malformed room id")
	}
	room, err := s.store.Room(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Room{}, errorf(http.StatusNotFound, proto.ErrNotFound, "no such room")
	}
	return room, err
}

func (s *Server) handleCreateRoom(w http.ResponseWriter, r *http.Request, c caller) {
	var req proto.CreateRoomRequest
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if c.User.Role == proto.RolePatient {
		writeError(w, http.StatusForbidden, proto.ErrForbidden, "patients cannot create rooms")
		return
	}
	if len(req.AllowedServers) > 64 {
		writeError(w, http.StatusBadRequest, proto.ErrInvalidParam, "at most 64 allowed servers")
		return
	}
	for _, n := range req.AllowedServers {
		if !ValidServerName(n) {
			writeError(w, http.StatusBadRequest, proto.ErrInvalidParam, "allowed_servers holds a malformed server name")
			return
		}
	}
	room := store.Room{ID: newRoomID(s.cfg.ServerName), Hub: s.cfg.ServerName, Name: truncate(req.Name, 256), Creator: c.User.ID, CreatedAt: time.Now(),
		AllowedServers: req.AllowedServers}
	if _, err := s.store.CreateRoom(r.Context(), room, c.Device.DeviceID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.audit(r.Context(), store.AuditEntry{Actor: c.User.ID, DeviceID: c.Device.DeviceID, Action: "room_create", Target: room.ID, Address: clientAddress(r)})
	writeJSON(w, http.StatusOK, proto.CreateRoomResponse{RoomID: room.ID})
}

func (s *Server) handleRooms(w http.ResponseWriter, r *http.Request, c caller) {
	rooms, err := s.store.RoomsOf(r.Context(), c.User.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := proto.RoomsResponse{Rooms: []proto.Room{}}
	for _, room := range rooms {
		members, err := s.store.Members(r.Context(), room.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		last, err := s.store.LastSeq(r.Context(), room.ID)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		pr := proto.Room{RoomID: room.ID, Hub: room.Hub, Name: room.Name, LastSeq: last, Epoch: room.Epoch, Members: []proto.Member{}}
		for _, m := range members {
			if m.Membership == proto.MembershipLeave {
				continue
			}
			pr.Members = append(pr.Members, proto.Member{UserID: m.UserID, Role: m.Role, RoomRole: m.RoomRole, Membership: m.Membership})
		}
		resp.Rooms = append(resp.Rooms, pr)
	}
	writeJSON(w, http.StatusOK, resp)
}

// membershipChange runs one policy-checked membership update and answers.
func (s *Server) membershipChange(w http.ResponseWriter, r *http.Request, c caller, target, membership, roomRole, action string,
	check func(actor, target store.Member) error) {
	room, err := s.roomFromPath(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	_, err = s.store.UpdateMembership(r.Context(), store.MembershipUpdate{
		RoomID: room.ID, Actor: c.User.ID, DeviceID: c.Device.DeviceID, Target: target,
		Membership: membership, RoomRole: roomRole, Check: check,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.audit(r.Context(), store.AuditEntry{Actor: c.User.ID, DeviceID: c.Device.DeviceID, Action: action, Target: room.ID + " " + target, Address: clientAddress(r)})
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) targetUser(w http.ResponseWriter, r *http.Request) (store.User, error) {
	var req proto.UserRequest
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		return store.User{}, err
	}
	if _, remote := s.remoteUser(req.UserID); remote {
		// A user of a federated server: it has no account here; its own
		// server vouches for it when it acts.
		return store.User{ID: req.UserID}, nil
	}
	return s.localUser(r, req.UserID)
}

// localUser looks up a user of this server by id.
func (s *Server) localUser(r *http.Request, userID string) (store.User, error) {
	req := proto.UserRequest{UserID: userID}
	local, server, err := ParseUserID(req.UserID, s.cfg.ServerName)
	if err != nil {
		return store.User{}, errorf(http.StatusBadRequest, proto.ErrInvalidUsername, "%v", err)
	}
	if server != s.cfg.ServerName {
		// Remote users are reached through federation, which a later
		// component adds; until then they cannot be invited.
		return store.User{}, errorf(http.StatusNotFound, proto.ErrNotFound, "user %s is not on this server", req.UserID)
	}
	u, err := s.store.User(r.Context(), "@"+local+":"+server)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, errorf(http.StatusNotFound, proto.ErrNotFound, "no such user")
	}
	return u, err
}

var (
	errNotModerator = errorf(http.StatusForbidden, proto.ErrForbidden, "only joined moderators of the room may do this")
	errPatient      = errorf(http.StatusForbidden, proto.ErrForbidden, "patients cannot invite")
)

func (s *Server) handleInvite(w http.ResponseWriter, r *http.Request, c caller) {
	if c.User.Role == proto.RolePatient {
		s.fail(w, r, errPatient)
		return
	}
	target, err := s.targetUser(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if target.Disabled {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "user is disabled"))
		return
	}
	if _, remote, err := s.remoteHub(r.PathValue("room")); remote {
		if err == nil {
			err = errorf(http.StatusForbidden, proto.ErrForbidden, "only moderators on the room's hub %s invite", hubOf(r.PathValue("room")))
		}
		s.fail(w, r, err)
		return
	}
	if room, err := s.roomFromPath(r); err == nil && !room.Admits(serverOfUser(target.ID)) {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "the room admits only users of %v", room.AllowedServers))
		return
	}
	s.membershipChange(w, r, c, target.ID, proto.MembershipInvite, proto.RoomRoleMember, "room_invite", func(actor, t store.Member) error {
		if actor.Membership != proto.MembershipJoin || actor.RoomRole != proto.RoomRoleModerator {
			return errNotModerator
		}
		if t.Membership == proto.MembershipJoin || t.Membership == proto.MembershipInvite {
			return errorf(http.StatusConflict, proto.ErrConflict, "user is already %sd", t.Membership)
		}
		return nil
	})
}

// checkJoin allows a join only on invitation.
func checkJoin(actor, _ store.Member) error {
	if actor.Membership == proto.MembershipJoin {
		return errorf(http.StatusConflict, proto.ErrConflict, "already joined")
	}
	if actor.Membership != proto.MembershipInvite {
		return errorf(http.StatusForbidden, proto.ErrForbidden, "rooms can only be joined on invitation")
	}
	return nil
}

// checkLeave allows members and invitees to leave.
func checkLeave(actor, _ store.Member) error {
	if actor.Membership != proto.MembershipJoin && actor.Membership != proto.MembershipInvite {
		return errorf(http.StatusForbidden, proto.ErrForbidden, "not a member of the room")
	}
	return nil
}

func (s *Server) handleJoin(w http.ResponseWriter, r *http.Request, c caller) {
	if s.forwardMembership(w, r, c, "join") {
		return
	}
	s.membershipChange(w, r, c, c.User.ID, proto.MembershipJoin, proto.RoomRoleMember, "room_join", checkJoin)
}

func (s *Server) handleLeave(w http.ResponseWriter, r *http.Request, c caller) {
	if s.forwardMembership(w, r, c, "leave") {
		return
	}
	s.membershipChange(w, r, c, c.User.ID, proto.MembershipLeave, proto.RoomRoleMember, "room_leave", checkLeave)
}

// forwardMembership sends a local user's join or leave of a room hosted
// elsewhere to its hub and waits for the event to arrive here. It returns
// false for rooms this server hosts.
func (s *Server) forwardMembership(w http.ResponseWriter, r *http.Request, c caller, action string) bool {
	roomID := r.PathValue("room")
	hub, remote, err := s.remoteHub(roomID)
	if !remote {
		return false
	}
	if err == nil && !roomIDRE.MatchString(roomID) {
		err = errorf(http.StatusBadRequest, proto.ErrInvalidParam, "malformed room id")
	}
	if err == nil && action == "join" {
		err = s.store.RequestJoin(r.Context(), roomID, c.User.ID)
	}
	var resp proto.FedMembershipResponse
	if err == nil {
		err = s.fed.client.Do(r.Context(), hub, http.MethodPost, "/fed/v1/rooms/"+url.PathEscape(roomID)+"/membership",
			proto.FedMembershipRequest{Actor: c.User.ID, Action: action}, &resp)
		if err != nil {
			err = remoteErr(err)
		}
	}
	if err == nil {
		err = s.waitSeq(r.Context(), roomID, resp.Seq)
	}
	if err != nil {
		s.fail(w, r, err)
		return true
	}
	s.audit(r.Context(), store.AuditEntry{Actor: c.User.ID, DeviceID: c.Device.DeviceID, Action: "room_" + action, Target: roomID, Address: clientAddress(r)})
	writeJSON(w, http.StatusOK, struct{}{})
	return true
}

func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request, c caller) {
	target, err := s.targetUser(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.membershipChange(w, r, c, target.ID, proto.MembershipLeave, proto.RoomRoleMember, "room_remove", func(actor, t store.Member) error {
		if actor.Membership != proto.MembershipJoin || actor.RoomRole != proto.RoomRoleModerator {
			return errNotModerator
		}
		if t.Membership != proto.MembershipJoin && t.Membership != proto.MembershipInvite {
			return errorf(http.StatusNotFound, proto.ErrNotFound, "user is not a member of the room")
		}
		return nil
	})
}

func (s *Server) handleSend(w http.ResponseWriter, r *http.Request, c caller) {
	txn := r.PathValue("txn")
	if !txnIDRE.MatchString(txn) {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "transaction id must be 1-128 of A-Z a-z 0-9 . _ ~ -"))
		return
	}
	var req proto.SendRequest
	if err := decodeJSON(w, r, base64Limit(s.cfg.MaxMessageBytes), &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if int64(len(req.Body)) > s.cfg.MaxMessageBytes {
		s.fail(w, r, errorf(http.StatusRequestEntityTooLarge, proto.ErrTooLarge, "message body exceeds %d bytes", s.cfg.MaxMessageBytes))
		return
	}
	if !kindRE.MatchString(req.Kind) || req.Kind == proto.KindMember {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "invalid message kind"))
		return
	}
	roomID := r.PathValue("room")
	if !roomIDRE.MatchString(roomID) {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "malformed room id"))
		return
	}
	a := store.Append{RoomID: roomID, Sender: c.User.ID, DeviceID: c.Device.DeviceID, TxnID: txn, Kind: req.Kind, Body: req.Body}
	if req.Kind == proto.KindMLSCommit && req.Epoch == nil {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "an mls-commit needs the epoch it was made in"))
		return
	}
	a.Epoch = req.Epoch
	if hub, remote, err := s.remoteHub(roomID); remote {
		if err == nil {
			err = s.forwardSend(r, hub, a, w)
		}
		if err != nil {
			s.fail(w, r, err)
		}
		return
	}
	s.appendMessage(w, r, a)
}

// forwardSend submits a local member's message to the room's hub, which
// sequences it, and answers once the event has arrived here too.
func (s *Server) forwardSend(r *http.Request, hub string, a store.Append, w http.ResponseWriter) error {
	var resp proto.SendResponse
	err := s.fed.client.Do(r.Context(), hub, http.MethodPut, "/fed/v1/rooms/"+url.PathEscape(a.RoomID)+"/submit/"+url.PathEscape(a.TxnID),
		proto.FedSubmitRequest{Sender: a.Sender, DeviceID: a.DeviceID, Kind: a.Kind, Body: a.Body, Epoch: a.Epoch}, &resp)
	if err != nil {
		return remoteErr(err)
	}
	if err := s.waitSeq(r.Context(), a.RoomID, resp.Seq); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, proto.SendResponse{Seq: resp.Seq})
	return nil
}

// appendMessage sequences a message in a room this server hosts.
func (s *Server) appendMessage(w http.ResponseWriter, r *http.Request, a store.Append) {
	var err error
	if a.Kind == proto.KindMLSCommit {
		// Only commits of rooms with a published group are checked
		// against the room policy; application messages are not.
		err = s.checkRoomCommit(r.Context(), &a)
	}
	// The append checks membership in its transaction, so the hot path
	// reads nothing else; only a refusal looks up whether the room exists.
	var ev proto.Event
	if err == nil {
		ev, _, err = s.store.AppendMessage(r.Context(), a)
	}
	var stale *store.StaleEpochError
	if errors.As(err, &stale) {
		writeJSON(w, http.StatusConflict, proto.Error{Code: proto.ErrStaleEpoch,
			Message: fmt.Sprintf("the room is at epoch %d; process its commits and retry", stale.Current), CurrentEpoch: &stale.Current})
		return
	}
	if errors.Is(err, store.ErrForbidden) {
		r.SetPathValue("room", a.RoomID)
		if _, err := s.roomFromPath(r); err != nil {
			s.fail(w, r, err)
			return
		}
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "not a joined member of the room"))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proto.SendResponse{Seq: ev.Seq, Stream: ev.Stream})
}

const maxHistoryLimit = 1000

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request, c caller) {
	room, err := s.roomFromPath(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	m, err := s.store.Member(r.Context(), room.ID, c.User.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && m.Membership != proto.MembershipJoin) {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "not a joined member of the room"))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	from, limit := int64(1), 100
	if v := r.URL.Query().Get("from"); v != "" {
		if from, err = strconv.ParseInt(v, 10, 64); err != nil || from < 1 {
			s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "from must be a sequence number ≥ 1"))
			return
		}
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxHistoryLimit {
			s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "limit must be 1-%d", maxHistoryLimit))
			return
		}
	}
	evs, err := s.store.History(r.Context(), room.ID, from, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	resp := proto.HistoryResponse{Events: evs}
	if resp.Events == nil {
		resp.Events = []proto.Event{}
	}
	if len(evs) == limit {
		resp.Next = evs[len(evs)-1].Seq + 1
	}
	writeJSON(w, http.StatusOK, resp)
}
