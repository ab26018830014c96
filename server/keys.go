package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

// maxKeyPackageBytes bounds one opaque MLS KeyPackage; real ones are a few
// hundred bytes, post-quantum ones a few kilobytes.
const maxKeyPackageBytes = 16 << 10

func (s *Server) handleUploadKeys(w http.ResponseWriter, r *http.Request, c caller) {
	var req proto.UploadKeyPackagesRequest
	limit := base64Limit(int64(s.cfg.MaxKeyPackagesPerUpload+1) * maxKeyPackageBytes)
	if err := decodeJSON(w, r, limit, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.KeyPackages) > s.cfg.MaxKeyPackagesPerUpload {
		s.fail(w, r, errorf(http.StatusRequestEntityTooLarge, proto.ErrTooLarge, "at most %d key packages per upload", s.cfg.MaxKeyPackagesPerUpload))
		return
	}
	for _, kp := range append(req.KeyPackages, req.LastResort) {
		if len(kp) > maxKeyPackageBytes {
			s.fail(w, r, errorf(http.StatusRequestEntityTooLarge, proto.ErrTooLarge, "key package exceeds %d bytes", maxKeyPackageBytes))
			return
		}
	}
	for _, kp := range req.KeyPackages {
		if len(kp) == 0 {
			s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "empty key package"))
			return
		}
	}
	suite := proto.EffectiveSuite(req.Suite)
	n, _, err := s.store.CountKeyPackages(r.Context(), c.User.ID, c.Device.DeviceID, suite)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if n+len(req.KeyPackages) > s.cfg.MaxKeyPackagesPerDevice {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrLimitExceeded, "a device may hold at most %d unclaimed key packages per suite", s.cfg.MaxKeyPackagesPerDevice))
		return
	}
	var lastResort []byte
	if len(req.LastResort) > 0 {
		lastResort = req.LastResort
	}
	if err := s.store.AddKeyPackages(r.Context(), c.User.ID, c.Device.DeviceID, suite, req.KeyPackages, lastResort); err != nil {
		s.fail(w, r, err)
		return
	}
	s.countKeys(w, r, c, suite)
}

func (s *Server) handleCountKeys(w http.ResponseWriter, r *http.Request, c caller) {
	var suite uint16
	if v := r.URL.Query().Get("suite"); v != "" {
		n, err := strconv.ParseUint(v, 0, 16)
		if err != nil {
			s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "suite must be a 16-bit number"))
			return
		}
		suite = uint16(n)
	}
	s.countKeys(w, r, c, proto.EffectiveSuite(suite))
}

func (s *Server) countKeys(w http.ResponseWriter, r *http.Request, c caller, suite uint16) {
	n, lr, err := s.store.CountKeyPackages(r.Context(), c.User.ID, c.Device.DeviceID, suite)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, proto.KeyPackageCount{Unclaimed: n, HasLastResort: lr, Suite: suite})
}

func (s *Server) handleClaimKeys(w http.ResponseWriter, r *http.Request, c caller) {
	var req proto.ClaimKeyPackagesRequest
	if err := decodeJSON(w, r, 16<<10, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.DeviceID != "" && !deviceIDRE.MatchString(req.DeviceID) {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "malformed device id"))
		return
	}
	if c.User.Role == proto.RolePatient && req.UserID != c.User.ID {
		// Claiming is the first step of adding someone to a group, which
		// patients may not do (and it would let them drain key packages).
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "patients cannot claim other users' key packages"))
		return
	}
	if peer, remote := s.remoteUser(req.UserID); remote {
		// A user of another server: that server hands out its key packages.
		var resp proto.ClaimKeyPackagesResponse
		err := s.fed.client.Do(r.Context(), peer, http.MethodPost, "/fed/v1/keys/claim",
			proto.FedClaimRequest{Requester: c.User.ID, UserID: req.UserID, DeviceID: req.DeviceID, Suite: req.Suite}, &resp)
		if err != nil {
			s.fail(w, r, remoteErr(err))
			return
		}
		s.audit(r.Context(), store.AuditEntry{Actor: c.User.ID, DeviceID: c.Device.DeviceID, Action: "key_package_claim", Target: req.UserID, Address: clientAddress(r)})
		writeJSON(w, http.StatusOK, resp)
		return
	}
	target, err := s.localUser(r, req.UserID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.claimFor(w, r, c.User.ID, c.Device.DeviceID, clientAddress(r), target, req.DeviceID, proto.EffectiveSuite(req.Suite))
}

// claimFor claims key packages of a cipher suite of a local user for
// requester.
func (s *Server) claimFor(w http.ResponseWriter, r *http.Request, requester, requesterDevice, address string, target store.User, deviceID string, suite uint16) {
	kps, err := s.store.ClaimKeyPackages(r.Context(), target.ID, deviceID, suite)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(kps) == 0 {
		s.fail(w, r, errorf(http.StatusNotFound, proto.ErrNoKeyPackage, "%s has no device with a key package of suite %#04x", target.ID, suite))
		return
	}
	resp := proto.ClaimKeyPackagesResponse{UserID: target.ID}
	for _, kp := range kps {
		resp.KeyPackages = append(resp.KeyPackages, proto.ClaimedKeyPackage{DeviceID: kp.DeviceID, KeyPackage: kp.Data, LastResort: kp.LastResort})
	}
	s.audit(r.Context(), store.AuditEntry{Actor: requester, DeviceID: requesterDevice, Action: "key_package_claim", Target: target.ID, Address: address})
	writeJSON(w, http.StatusOK, resp)
}

// remoteUser reports whether userID belongs to an allowed peer server (and
// which); users of this server and malformed ids are not remote.
func (s *Server) remoteUser(userID string) (string, bool) {
	if s.fed == nil {
		return "", false
	}
	_, server, err := ParseUserID(userID, s.cfg.ServerName)
	if err != nil || server == s.cfg.ServerName || !s.fed.trust.Allowed(server) {
		return "", false
	}
	return server, true
}

// remoteDeviceMessage is a device message for another server's device.
type remoteDeviceMessage struct {
	peer string
	msg  proto.FedDeviceMessage
}

// maxDeviceMessagesPerRequest bounds one send_to_device request.
const maxDeviceMessagesPerRequest = 1000

func (s *Server) handleSendToDevice(w http.ResponseWriter, r *http.Request, c caller) {
	txn := r.PathValue("txn")
	if !txnIDRE.MatchString(txn) {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "malformed transaction id"))
		return
	}
	var req proto.SendToDeviceRequest
	if err := decodeJSON(w, r, base64Limit(s.cfg.MaxMessageBytes)+64<<10, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Messages) == 0 || len(req.Messages) > maxDeviceMessagesPerRequest {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "1-%d messages per request", maxDeviceMessagesPerRequest))
		return
	}
	now := time.Now()
	msgs := make([]store.DeviceMessage, 0, len(req.Messages))
	var remoteMsgs []remoteDeviceMessage
	var total int64
	for _, m := range req.Messages {
		total += int64(len(m.Body))
		if !kindRE.MatchString(m.Kind) {
			s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "invalid message kind"))
			return
		}
		if peer, remote := s.remoteUser(m.UserID); remote {
			if !deviceIDRE.MatchString(m.DeviceID) {
				s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "malformed device id"))
				return
			}
			remoteMsgs = append(remoteMsgs, remoteDeviceMessage{peer, proto.FedDeviceMessage{Txn: txn, Sender: c.User.ID, SenderDevice: c.Device.DeviceID,
				UserID: m.UserID, DeviceID: m.DeviceID, Kind: m.Kind, Body: m.Body}})
			continue
		}
		local, server, err := ParseUserID(m.UserID, s.cfg.ServerName)
		if err != nil || server != s.cfg.ServerName {
			s.fail(w, r, errorf(http.StatusNotFound, proto.ErrNotFound, "no local user %q", m.UserID))
			return
		}
		msgs = append(msgs, store.DeviceMessage{TargetUser: "@" + local + ":" + server, TargetDevice: m.DeviceID,
			Sender: c.User.ID, SenderDevice: c.Device.DeviceID, TxnID: txn, Kind: m.Kind, Body: m.Body, Time: now})
	}
	if total > s.cfg.MaxMessageBytes {
		s.fail(w, r, errorf(http.StatusRequestEntityTooLarge, proto.ErrTooLarge, "device messages exceed %d bytes", s.cfg.MaxMessageBytes))
		return
	}
	// Every target device must exist; a message to nowhere is an error, not a silent drop.
	for _, m := range msgs {
		devs, err := s.store.Devices(r.Context(), m.TargetUser)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		found := false
		for _, d := range devs {
			found = found || d.DeviceID == m.TargetDevice
		}
		if !found {
			s.fail(w, r, errorf(http.StatusNotFound, proto.ErrNotFound, "no device %s of %s", m.TargetDevice, m.TargetUser))
			return
		}
	}
	// Messages for other servers' devices go through the durable
	// federation queue; that server checks the device exists.
	for _, m := range remoteMsgs {
		if err := s.store.EnqueueFederation(r.Context(), m.peer, proto.FedItem{Kind: proto.FedItemDeviceMessage, DeviceMessage: &m.msg}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if len(msgs) == 0 {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	if err := s.store.QueueDeviceMessages(r.Context(), msgs, s.cfg.MaxQueuedDeviceMessages); err != nil {
		if errors.Is(err, store.ErrQuota) {
			err = errorf(http.StatusTooManyRequests, proto.ErrLimitExceeded, "a target device has %d unacknowledged messages queued", s.cfg.MaxQueuedDeviceMessages)
		}
		s.fail(w, r, err)
		return
	}
	for _, m := range msgs {
		s.hub.NotifyDevice(m.TargetUser, m.TargetDevice)
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) handleAckDeviceMessages(w http.ResponseWriter, r *http.Request, c caller) {
	var req proto.AckRequest
	if err := decodeJSON(w, r, 4<<10, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.ackDeviceMessages(r, c, req.UpTo); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) ackDeviceMessages(r *http.Request, c caller, upTo int64) error {
	if upTo < 0 {
		return errorf(http.StatusBadRequest, proto.ErrInvalidParam, "up_to must not be negative")
	}
	err := s.store.AckDeviceMessages(r.Context(), c.User.ID, c.Device.DeviceID, upTo)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
