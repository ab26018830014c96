package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/medicus-health/medicus/crypto/identity"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/mls/policy"
	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

// maxGroupInfoBytes bounds a published GroupInfo with its ratchet tree
// (a post-quantum suite's tree of a large room is a few megabytes).
const maxGroupInfoBytes = 8 << 20

// handlePublishGroupInfo stores the hub's public view of a room's group
// from a GroupInfo a moderator publishes; from then on every commit of
// the room is checked against the room policy (checkRoomCommit).
func (s *Server) handlePublishGroupInfo(w http.ResponseWriter, r *http.Request, c caller) {
	room, err := s.roomFromPath(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if room.Hub != s.cfg.ServerName {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "publish the group info on the room's hub %s", room.Hub))
		return
	}
	m, err := s.store.Member(r.Context(), room.ID, c.User.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, err)
		return
	}
	if err != nil || m.Membership != proto.MembershipJoin || m.RoomRole != proto.RoomRoleModerator {
		s.fail(w, r, errNotModerator)
		return
	}
	var req proto.GroupInfoRequest
	if err := decodeJSON(w, r, base64Limit(maxGroupInfoBytes), &req); err != nil {
		s.fail(w, r, err)
		return
	}
	pg, err := mls.NewPublicGroup(nil, req.GroupInfo, nil)
	if err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "invalid group info: %v", err))
		return
	}
	if string(pg.GroupID()) != room.ID {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "the group info is of another group"))
		return
	}
	if _, err := policy.FromExtensions(pg.Extensions()); err != nil {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "the group has no valid room policy: %v", err))
		return
	}
	data, err := pg.Marshal()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.SetRoomPublicGroup(r.Context(), room.ID, pg.Epoch(), data); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// checkRoomCommit applies the room policy to a commit about to be appended
// to a room this server hubs, if the room has a public group: it refuses a
// commit the policy does not allow, and otherwise sets a.PublicGroup to
// the state after it, which the append stores in its transaction. A commit
// for an earlier epoch than the public group's is left to the append, which
// answers a repeated transaction with its event and refuses the rest as
// stale; one for a later epoch is stale.
func (s *Server) checkRoomCommit(ctx context.Context, a *store.Append) error {
	data, err := s.store.RoomPublicGroup(ctx, a.RoomID)
	if err != nil || data == nil {
		return err
	}
	pg, err := mls.UnmarshalPublicGroup(nil, data)
	if err != nil {
		return fmt.Errorf("load public group of %s: %w", a.RoomID, err)
	}
	if a.Epoch == nil || *a.Epoch < pg.Epoch() {
		return nil
	}
	if *a.Epoch > pg.Epoch() {
		return &store.StaleEpochError{Current: pg.Epoch(), Got: *a.Epoch}
	}
	pc, err := CheckRoomCommit(pg, a.Body)
	if err != nil {
		return errorf(http.StatusForbidden, proto.ErrForbidden, "commit refused: %v", err)
	}
	if err := pg.Merge(pc); err != nil {
		return fmt.Errorf("merge commit into public group of %s: %w", a.RoomID, err)
	}
	if a.PublicGroup, err = pg.Marshal(); err != nil {
		return fmt.Errorf("save public group of %s: %w", a.RoomID, err)
	}
	return nil
}

// roomPolicyChecker applies a room's policy (crypto/mls/policy) to
// handshake messages; users are those of medicus device credentials.
var roomPolicyChecker = policy.Checker{UserID: deviceCredentialUser}

// deviceCredentialUser returns the user of a medicus device credential (an
// MLS basic credential holding an identity.DeviceCredential). Whether the
// credential binds its leaf's signature key is checked by CheckRoomCommit,
// which sees the leaf.
func deviceCredentialUser(cred *mls.Credential) (string, error) {
	if cred.CredentialType != mls.CredentialBasic {
		return "", fmt.Errorf("credential type %d is not a medicus device credential", cred.CredentialType)
	}
	dc, err := identity.ParseCredential(cred.Identity)
	if err != nil {
		return "", err
	}
	return dc.UserID, nil
}

// CheckRoomCommit decides, as a room's hub that holds no group secret,
// whether the PublicMessage commit may be applied to pg, the room's public
// group state. It verifies the commit (signature by the sender's leaf key
// over the current GroupContext, epoch, proposals; RFC 9420 §6.1, §12.4.2),
// checks that each leaf the commit adds or changes carries a device
// credential whose identity-key signature binds that leaf's signature key,
// and applies the room policy of pg's GroupContext (who may add and remove
// whom). Refusals by the policy or of a credential wrap policy.ErrForbidden;
// commits that fail verification wrap the mls errors (mls.ErrWrongEpoch for
// a stale epoch, mls.ErrInvalidMessage for a forged sender or signature).
// On success the staged commit is returned: the hub merges it into pg
// (pg.Merge) in the same transaction that sequences the commit.
func CheckRoomCommit(pg *mls.PublicGroup, commit []byte) (*mls.PublicCommit, error) {
	pc, err := roomPolicyChecker.CheckCommit(pg, commit)
	if err != nil {
		return nil, err
	}
	changed := map[uint32]bool{}
	for _, l := range pc.Added {
		changed[l] = true
	}
	if pc.PathCredential != nil {
		changed[pc.Committer] = true
	}
	for _, p := range pc.Proposals {
		if p.Type == 2 && p.SenderType == 1 { // an Update by a member (RFC 9420 §12.1.2)
			changed[p.Sender] = true
		}
	}
	for _, m := range pc.Members {
		if !changed[m.LeafIndex] {
			continue
		}
		dc, err := identity.ParseCredential(m.Credential.Identity)
		if err == nil {
			err = dc.Verify(m.SignatureKey)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: leaf %d: %w", policy.ErrForbidden, m.LeafIndex, err)
		}
	}
	return pc, nil
}
