package mls

import (
	"fmt"
	"testing"
)

// pqBenchMembers is the group size of BenchmarkSuites.
const pqBenchMembers = 50

// BenchmarkSuites compares the classical suite 0x0001 with the post-quantum
// suites in one run: creating a KeyPackage, committing an Add (which
// produces the Welcome), committing a self-update (an UpdatePath whose
// nodes are HPKE-encrypted to the copath, where the KEM's sizes show),
// processing that commit as another member, and joining from the Welcome
// (with the ratchet tree inline),
// all in a group of pqBenchMembers members whose every member has committed
// once (populated tree). Sizes are reported as metrics:
//
//	go test ./crypto/mls -run '^$' -bench Suites -benchtime 20x
func BenchmarkSuites(b *testing.B) {
	for _, s := range []CipherSuite{SuiteDefault, SuiteXWing, SuiteMLKEM1024MLDSA87} {
		name := fmt.Sprintf("%#04x", uint16(s))
		b.Run(name+"/KeyPackage", func(b *testing.B) {
			cred, priv := newIdentity(b, s, "kp")
			var kp []byte
			for b.Loop() {
				var err error
				if kp, _, err = NewKeyPackage(s, cred, priv, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(kp)), "kp-bytes")
		})
		w := pqBenchWorld(b, s)
		g0, g1 := w.members[0].g, w.members[1].g
		kp, kpPriv := newKP(b, s, "new")
		add, err := AddProposal(kp)
		if err != nil {
			b.Fatal(err)
		}
		var addOut *CommitOutput
		b.Run(name+"/CommitAdd", func(b *testing.B) {
			for b.Loop() {
				if addOut, err = g0.Commit(&CommitOptions{Proposals: []*Proposal{add}}); err != nil {
					b.Fatal(err)
				}
				g0.DiscardPendingCommit()
			}
			b.ReportMetric(float64(len(addOut.Commit)), "commit-bytes")
			b.ReportMetric(float64(len(addOut.Welcome)), "welcome-bytes")
		})
		// The Welcome with the new epoch's ratchet tree inline.
		inline, err := g0.Commit(&CommitOptions{Proposals: []*Proposal{add}, InlineTree: true})
		if err != nil {
			b.Fatal(err)
		}
		g0.DiscardPendingCommit()
		b.Run(name+"/JoinFromWelcome", func(b *testing.B) {
			for b.Loop() {
				if _, err := JoinFromWelcome(nil, inline.Welcome, kp, kpPriv, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(inline.Welcome)), "welcome-bytes")
			b.ReportMetric(float64(len(inline.RatchetTree)), "tree-bytes")
		})
		var upd *CommitOutput
		b.Run(name+"/CommitUpdatePath", func(b *testing.B) {
			for b.Loop() {
				if upd, err = g0.Commit(&CommitOptions{ForcePath: true}); err != nil {
					b.Fatal(err)
				}
				g0.DiscardPendingCommit()
			}
			b.ReportMetric(float64(len(upd.Commit)), "commit-bytes")
		})
		b.Run(name+"/ProcessUpdatePath", func(b *testing.B) {
			st, err := g1.Marshal()
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				b.StopTimer()
				g, err := UnmarshalGroup(nil, st)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := g.ProcessMessage(upd.Commit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// pqBenchWorld builds a group of pqBenchMembers members of suite s in which
// every member has committed a self-update once.
func pqBenchWorld(b *testing.B, s CipherSuite) *world {
	b.Helper()
	w := newWorld(b, s, 1)
	w.add(w.members[0], pqBenchMembers-1, false)
	for _, c := range w.members {
		out, err := c.g.Commit(&CommitOptions{ForcePath: true})
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range w.members {
			if _, err := o.g.ProcessMessage(out.Commit); err != nil {
				b.Fatal(err)
			}
		}
	}
	return w
}
