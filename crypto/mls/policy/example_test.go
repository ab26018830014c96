package policy_test

import (
	"errors"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/mls/policy"
)

// A room's hub follows the group from the creator's GroupInfo and checks
// every commit against the room policy before sequencing it.
func ExampleChecker_CheckCommit() {
	suite := mls.SuiteXWing
	newUser := func(user string) (mls.Credential, []byte) {
		priv, _, _ := mls.GenerateSignatureKey(suite)
		return mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte(user)}, priv
	}
	// The creator lists the participants and their roles in the group.
	pol, _ := policy.New(map[string]uint8{"@mod:a.example": policy.RoleModerator, "@pat:a.example": policy.RolePatient})
	ext, _ := pol.Extension()
	modCred, modKey := newUser("@mod:a.example")
	room, _ := mls.CreateGroup(nil, []byte("!room:a.example"), suite, modCred, modKey, []mls.Extension{ext})

	// The hub knows only public state.
	gi, _ := room.GroupInfo(true, false)
	hub, _ := mls.NewPublicGroup(nil, gi, nil)
	var checker policy.Checker

	// Members' KeyPackages must support the policy extension.
	opts := &mls.KeyPackageOptions{Extensions: []uint16{policy.ExtensionType}}
	patCred, patKey := newUser("@pat:a.example")
	kp, _, _ := mls.NewKeyPackage(suite, patCred, patKey, opts)
	add, _ := mls.AddProposal(kp)
	out, _ := room.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{add}})
	if pc, err := checker.CheckCommit(hub, out.Commit); err == nil {
		fmt.Println("moderator adds the patient: allowed")
		_ = hub.Merge(pc)
		_ = room.MergePendingCommit()
	}

	// A user who is not listed cannot be added without listing them.
	otherCred, otherKey := newUser("@eve:b.example")
	kp, _, _ = mls.NewKeyPackage(suite, otherCred, otherKey, opts)
	add, _ = mls.AddProposal(kp)
	out, _ = room.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{add}})
	if _, err := checker.CheckCommit(hub, out.Commit); errors.Is(err, policy.ErrForbidden) {
		fmt.Println("adding an unlisted user: refused")
		room.DiscardPendingCommit()
	}
	// Output:
	// moderator adds the patient: allowed
	// adding an unlisted user: refused
}
