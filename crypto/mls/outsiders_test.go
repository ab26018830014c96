package mls

import "testing"

// FuzzOutsiderInputs feeds arbitrary GroupInfos, trees and ExternalSender
// entries to what parties outside a group parse: InspectGroupInfo,
// NewMemberAddProposal and UnmarshalExternalSender must return errors,
// never panic.
func FuzzOutsiderInputs(f *testing.F) {
	w := newWorld(f, 1, 50)
	w.add(w.members[0], 2, false)
	gi, err := w.members[0].g.GroupInfo(false, true)
	if err != nil {
		f.Fatal(err)
	}
	inline, err := w.members[0].g.GroupInfo(true, true)
	if err != nil {
		f.Fatal(err)
	}
	rt, err := w.members[0].g.RatchetTree()
	if err != nil {
		f.Fatal(err)
	}
	cred, sig := newIdentity(f, 1, "newbie")
	kp, _, err := NewKeyPackage(1, cred, sig, nil)
	if err != nil {
		f.Fatal(err)
	}
	es, err := MarshalExternalSender(ExternalSender{SignatureKey: []byte("k"), Credential: cred})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(gi, rt, es)
	f.Add(inline, []byte(nil), es)
	f.Add([]byte{0, 1, 0, 4}, []byte{0}, []byte{0})
	f.Fuzz(func(t *testing.T, groupInfo, tree, entry []byte) {
		if d, err := InspectGroupInfo(nil, groupInfo, tree); err == nil && d == nil {
			t.Fatal("nil details without an error")
		}
		NewMemberAddProposal(groupInfo, kp, sig)
		UnmarshalExternalSender(entry)
	})
}
