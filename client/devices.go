package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/proto"
)

// Device message kinds the client sends besides Welcomes.
const (
	// KindNewDevice announces a user's new device to the user's other
	// devices, which add it to their rooms.
	KindNewDevice = "medicus.new-device"
	// KindEphemeral carries an MLS application message of a room that is
	// not stored in the room's history (call signalling).
	KindEphemeral = "medicus.mls-ephemeral"
)

type newDeviceBody struct {
	DeviceID string `json:"device_id"`
}

// AnnounceDevice tells the user's other devices that this device exists,
// so that they add it to every room they are in (by claiming its
// KeyPackage, checking that the user's identity key certified it, and
// committing an Add). Login calls it for a device that imported an existing
// identity key.
func (s *Session) AnnounceDevice(ctx context.Context) error {
	devs, err := s.api.Devices(ctx)
	if err != nil {
		return fmt.Errorf("list own devices: %w", err)
	}
	body, _ := json.Marshal(newDeviceBody{DeviceID: s.prof.DeviceID})
	var msgs []proto.OutgoingDeviceMessage
	for _, d := range devs {
		if d.DeviceID != s.prof.DeviceID {
			msgs = append(msgs, proto.OutgoingDeviceMessage{UserID: s.prof.UserID, DeviceID: d.DeviceID, Kind: KindNewDevice, Body: body})
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return s.sendToDevices(ctx, msgs)
}

// addOwnDevice adds the user's device to every room this device is in
// and that does not have it yet.
func (s *Session) addOwnDevice(ctx context.Context, deviceID string) error {
	for _, r := range s.rooms {
		if r.Left || r.group == nil {
			continue
		}
		if s.hasDevice(r.group, s.prof.UserID, deviceID) {
			continue
		}
		claimed, err := s.api.ClaimKeyPackagesWith(ctx, proto.ClaimKeyPackagesRequest{UserID: s.prof.UserID, DeviceID: deviceID, Suite: uint16(r.group.CipherSuite())})
		if err != nil {
			return fmt.Errorf("claim key package of own device %s: %w", deviceID, err)
		}
		if err := s.addDevices(ctx, r, claimed.KeyPackages, s.prof.UserID); err != nil {
			s.log.Warn("own new device not added", "room", r.ID, "device", deviceID, "err", err)
			s.record(Message{Room: r.ID, Type: TypeRefused, Time: s.now(), Notice: fmt.Sprintf("own device %s not added: %v", deviceID, err)})
		}
	}
	return nil
}

func (s *Session) hasDevice(g *mls.Group, user, device string) bool {
	for _, m := range g.Members() {
		if dc, err := parseDeviceCredential(&m.Credential); err == nil && dc.UserID == user && dc.DeviceID == device {
			return true
		}
	}
	return false
}

// ephemeralBody is an MLS application message of a room sent as a device
// message.
type ephemeralBody struct {
	Room    string `json:"room"`
	Message []byte `json:"message"`
}

// SendEphemeral encrypts content for the room's group and delivers it as a
// direct device message to every device of user in the group (all members
// but this device if user is empty). It is not stored in the room's
// history, and the homeserver sees only ciphertext: this is how call
// signalling travels.
func (s *Session) SendEphemeral(ctx context.Context, roomID, user string, content []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.liveRoom(roomID)
	if err != nil {
		return err
	}
	ct, err := r.group.EncryptApplication(content, nil)
	if err != nil {
		return fmt.Errorf("encrypt for %s: %w", roomID, err)
	}
	body, _ := json.Marshal(ephemeralBody{Room: roomID, Message: ct})
	var msgs []proto.OutgoingDeviceMessage
	for _, m := range r.group.Members() {
		dc, err := parseDeviceCredential(&m.Credential)
		if err != nil || (user != "" && dc.UserID != user) || (dc.UserID == s.prof.UserID && dc.DeviceID == s.prof.DeviceID) {
			continue
		}
		msgs = append(msgs, proto.OutgoingDeviceMessage{UserID: dc.UserID, DeviceID: dc.DeviceID, Kind: KindEphemeral, Body: body})
	}
	if len(msgs) == 0 {
		return fmt.Errorf("no device of %q in %s", user, roomID)
	}
	// The advanced ratchet is stored before the ciphertext leaves
	// (RFC 9420 §9.1).
	r.dirty = true
	if err := s.flush(ctx); err != nil {
		return err
	}
	return s.sendToDevices(ctx, msgs)
}

// handleEphemeral decrypts an ephemeral room message.
func (s *Session) handleEphemeral(dm *proto.DeviceMessage) {
	var e ephemeralBody
	base := Message{Sender: dm.Sender, SenderDevice: dm.SenderDevice, Time: dm.Time, Ephemeral: true}
	if err := json.Unmarshal(dm.Body, &e); err != nil {
		base.Type, base.Notice = TypeRefused, "malformed ephemeral message"
		s.pending = append(s.pending, base)
		return
	}
	base.Room = e.Room
	r, err := s.liveRoom(e.Room)
	if err != nil {
		base.Type, base.Notice = TypeRefused, "ephemeral message for an unknown room"
		s.pending = append(s.pending, base)
		return
	}
	res, err := r.group.ProcessMessage(e.Message)
	if err != nil || res.Kind != mls.ResultApplication {
		base.Type, base.Notice = TypeRefused, fmt.Sprintf("ephemeral message refused: %v", err)
		s.pending = append(s.pending, base)
		return
	}
	// The sender the homeserver names must be the MLS sender.
	if dc, err := parseDeviceCredential(res.SenderCredential); err != nil || dc.UserID != dm.Sender || dc.DeviceID != dm.SenderDevice {
		base.Type, base.Notice = TypeRefused, "ephemeral message whose MLS sender is not the delivering device"
		s.pending = append(s.pending, base)
		return
	}
	r.dirty = true
	base.Type, base.Content = TypeContent, res.ApplicationData
	// Ephemeral messages go to the caller only, never to the cache.
	s.pending = append(s.pending, base)
}

// sframeBaseKeyLabel is the MLS exporter label of SFrame base keys
// (RFC 9605 §5.2).
const sframeBaseKeyLabel = "SFrame 1.0 Base Key"

// CallBaseKey returns the SFrame base key of the room's current MLS epoch
// (RFC 9605 §5.2: MLS-Exporter("SFrame 1.0 Base Key", "", n)), with the
// epoch and this device's leaf index, which form its SFrame key ids. Call
// it again after every commit: a removed member cannot derive the new key.
func (s *Session) CallBaseKey(roomID string, n int) (epoch uint64, leaf uint32, key []byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.liveRoom(roomID)
	if err != nil {
		return 0, 0, nil, err
	}
	key, err = r.group.Export(sframeBaseKeyLabel, nil, n)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("export SFrame key of %s: %w", roomID, err)
	}
	return r.group.Epoch(), r.group.LeafIndex(), key, nil
}
