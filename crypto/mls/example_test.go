package mls_test

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls"
)

// A group creator adds a member with a Welcome; the two then exchange an
// encrypted application message and agree on the epoch authenticator.
func Example() {
	suite := mls.CipherSuite(0x0001) // MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	cfg := &mls.Config{Credentials: mls.CredentialValidatorFunc(func(c *mls.Credential, sigKey []byte) error {
		return nil // the application checks that the identity owns sigKey
	})}

	// Bob publishes a KeyPackage.
	bobSig, _, _ := mls.GenerateSignatureKey(suite)
	bobKP, bobPriv, err := mls.NewKeyPackage(suite, mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte("@bob:example.org")}, bobSig, nil)
	if err != nil {
		panic(err)
	}

	// Alice creates the group and adds Bob.
	aliceSig, _, _ := mls.GenerateSignatureKey(suite)
	alice, err := mls.CreateGroup(cfg, []byte("room-1"), suite, mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte("@alice:example.org")}, aliceSig, nil)
	if err != nil {
		panic(err)
	}
	add, err := mls.AddProposal(bobKP)
	if err != nil {
		panic(err)
	}
	out, err := alice.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{add}, InlineTree: true})
	if err != nil {
		panic(err)
	}
	// The delivery service accepted the commit.
	if err := alice.MergePendingCommit(); err != nil {
		panic(err)
	}

	// Bob joins from the Welcome.
	bob, err := mls.JoinFromWelcome(cfg, out.Welcome, bobKP, bobPriv, nil)
	if err != nil {
		panic(err)
	}

	ct, err := alice.EncryptApplication([]byte("hello Bob"), nil)
	if err != nil {
		panic(err)
	}
	res, err := bob.ProcessMessage(ct)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s from %s\n", res.ApplicationData, res.SenderCredential.Identity)
	fmt.Println("epoch", bob.Epoch(), "members", len(bob.Members()))
	fmt.Println("same epoch authenticator:", string(alice.EpochAuthenticator()) == string(bob.EpochAuthenticator()))
	// Output:
	// hello Bob from @alice:example.org
	// epoch 1 members 2
	// same epoch authenticator: true
}

// A member persists its group and loads it again.
func ExampleUnmarshalGroup() {
	suite := mls.CipherSuite(0x0001)
	sig, _, _ := mls.GenerateSignatureKey(suite)
	g, err := mls.CreateGroup(nil, []byte("room"), suite, mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte("@a:x")}, sig, nil)
	if err != nil {
		panic(err)
	}
	state, err := g.Marshal() // store encrypted: it holds private keys
	if err != nil {
		panic(err)
	}
	g2, err := mls.UnmarshalGroup(nil, state)
	if err != nil {
		panic(err)
	}
	fmt.Println(g2.Epoch(), string(g2.GroupID()))
	// Output: 0 room
}

// A new device of a user joins by external commit from a GroupInfo.
func ExampleJoinExternal() {
	suite := mls.CipherSuite(0x0001)
	sig, _, _ := mls.GenerateSignatureKey(suite)
	g, err := mls.CreateGroup(nil, []byte("room"), suite, mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte("@a:x")}, sig, nil)
	if err != nil {
		panic(err)
	}
	gi, err := g.GroupInfo(true, true)
	if err != nil {
		panic(err)
	}
	devSig, _, _ := mls.GenerateSignatureKey(suite)
	dev, commit, err := mls.JoinExternal(nil, gi, mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte("@a:x")}, devSig, nil)
	if err != nil {
		panic(err)
	}
	res, err := g.ProcessMessage(commit)
	if err != nil {
		panic(err)
	}
	fmt.Println("added leaf", res.Added, "epoch", g.Epoch(), dev.Epoch())
	// Output: added leaf [1] epoch 1 1
}
