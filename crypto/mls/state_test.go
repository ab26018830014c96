package mls

import (
	"bytes"
	"testing"
)

func TestMarshalRoundTrip(t *testing.T) {
	for _, s := range []CipherSuite{1, 2, 3} {
		w := newWorld(t, s, 11)
		w.add(w.members[0], 3, true)
		a, b := w.members[0], w.members[1]
		// a sends, proposes, then is persisted and reloaded.
		for range 3 {
			ct, err := a.g.EncryptApplication([]byte("before"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.g.ProcessMessage(ct); err != nil {
				t.Fatal(err)
			}
		}
		prop, err := b.g.ProposeUpdate(false)
		if err != nil {
			t.Fatal(err)
		}
		w.broadcast(b, prop)
		for _, c := range w.members {
			st, err := c.g.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			g2, err := UnmarshalGroup(nil, st)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !bytes.Equal(g2.EpochAuthenticator(), c.g.EpochAuthenticator()) || g2.LeafIndex() != c.g.LeafIndex() {
				t.Fatal("reloaded group differs")
			}
			st2, err := g2.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(st, st2) {
				t.Fatal("state encoding not stable")
			}
			c.g = g2
		}
		// The reloaded sender does not reuse generations: b reads it.
		ct, err := a.g.EncryptApplication([]byte("after"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := b.g.ProcessMessage(ct); err != nil || string(res.ApplicationData) != "after" {
			t.Fatalf("after reload: %v", err)
		}
		// The pending Update survives and is committed by another member.
		w.commit(w.members[2], nil, nil, nil, nil)
		w.add(a, 1, false)
	}
}

func FuzzUnmarshalGroup(f *testing.F) {
	w := newWorld(f, 1, 5)
	w.add(w.members[0], 2, true)
	st, err := w.members[1].g.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(st)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalGroup(nil, data)
		if err == nil {
			if _, err := g.Marshal(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzProcessMessage(f *testing.F) {
	w := newWorld(f, 1, 6)
	w.add(w.members[0], 2, true)
	a := w.members[0].g
	ct, _ := a.EncryptApplication([]byte("x"), []byte("ad"))
	f.Add(ct)
	prop, _ := a.Propose(RemoveProposal(2), false)
	f.Add(prop)
	out, _ := a.Commit(&CommitOptions{ForcePath: true})
	f.Add(out.Commit)
	f.Add(out.GroupInfo)
	a.DiscardPendingCommit()
	st, err := w.members[1].g.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalGroup(nil, st)
		if err != nil {
			t.Fatal(err)
		}
		g.ProcessMessage(data)
	})
}

func FuzzJoinFromWelcome(f *testing.F) {
	w := newWorld(f, 1, 8)
	kp, priv := newKP(f, 1, "joiner")
	p, err := AddProposal(kp)
	if err != nil {
		f.Fatal(err)
	}
	out, err := w.members[0].g.Commit(&CommitOptions{Proposals: []*Proposal{p}, InlineTree: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(out.Welcome, []byte(nil))
	f.Add(out.Welcome, out.RatchetTree)
	f.Fuzz(func(t *testing.T, welcome, tree []byte) {
		JoinFromWelcome(nil, welcome, kp, priv, tree)
	})
}
