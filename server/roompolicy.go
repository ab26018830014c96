package server

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/identity"
	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/mls/policy"
)

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
