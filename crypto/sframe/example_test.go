package sframe_test

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/sframe"
)

// Each epoch of a room's MLS group yields the SFrame keys of a call: a
// member encrypts under its own KID, others decrypt.
func ExampleMLSContext() {
	suite := mls.CipherSuite(0x0001)
	sig, _, _ := mls.GenerateSignatureKey(suite)
	group, err := mls.CreateGroup(nil, []byte("room"), suite, mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte("@a:x")}, sig, nil)
	if err != nil {
		panic(err)
	}
	keys, err := sframe.NewMLSContext(sframe.AES128GCMSHA256_128, sframe.MLSConfig{})
	if err != nil {
		panic(err)
	}
	if err := keys.AddEpoch(group); err != nil { // again after every commit
		panic(err)
	}
	ct, err := keys.Encrypt(nil, nil, []byte("encoded video frame"))
	if err != nil {
		panic(err)
	}
	h, _, _ := sframe.ParseHeader(ct)
	epoch, index, _ := keys.SplitKID(h.KID)
	fmt.Println("epoch bits", epoch, "sender", index, "overhead", len(ct)-len("encoded video frame"))
	// Output: epoch bits 0 sender 0 overhead 17
}
