package mls

import (
	"testing"
)

// FuzzPublicGroupStageCommit feeds arbitrary bytes to a hub's public group
// as a commit: it must never panic, and it must refuse, or stage without
// changing its state until Merge.
func FuzzPublicGroupStageCommit(f *testing.F) {
	o := newObserved(f, 1, 8)
	o.add(o.members[0], 2)
	state, err := o.pg.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	a := o.members[0].g
	for _, opts := range []*CommitOptions{{ForcePath: true}, {Proposals: []*Proposal{RemoveProposal(1)}}, {ExternalPub: true, InlineTree: true}} {
		out, err := a.Commit(opts)
		if err != nil {
			f.Fatal(err)
		}
		a.DiscardPendingCommit()
		f.Add(out.Commit)
		if opts.ExternalPub {
			cred, priv := newIdentity(f, 1, "joiner")
			if _, ext, err := JoinExternal(nil, out.GroupInfo, cred, priv, nil); err == nil {
				f.Add(ext)
			}
		}
	}
	prop, err := a.Propose(RemoveProposal(2), false)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(prop)
	f.Fuzz(func(t *testing.T, data []byte) {
		pg, err := UnmarshalPublicGroup(nil, state)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = pg.StoreProposal(data)
		pc, err := pg.StageCommit(data)
		if err != nil {
			return
		}
		if pg.Epoch() != pc.Epoch {
			t.Fatal("StageCommit moved the epoch")
		}
		if err := pg.Merge(pc); err != nil || pg.Epoch() != pc.Epoch+1 {
			t.Fatalf("merge: %v", err)
		}
	})
}
