package mls

import (
	"bytes"
	"fmt"
	"math/bits"
	"sync"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
)

// benchFixture is a group of n members in suite 0x0001: g0 at leaf 0 and g1
// at leaf 1 are real members; every member's signature key is known so that
// the fixture can have any leaf commit (to populate the tree).
type benchFixture struct {
	n       int
	g0, g1  *Group
	sigs    [][]byte // signature private key per leaf
	welcome int      // size of the Welcome that added everyone
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[string]*benchFixture{}
)

// getFixture builds (once per process) a group of n members, bare (fresh from
// one commit adding everyone) or populated (then every other leaf commits
// with a path, in bit-reversed order so each path is encrypted to few
// nodes, leaving every parent that can be non-blank non-blank).
func getFixture(b *testing.B, n int, populated bool) *benchFixture {
	key := fmt.Sprint(n, populated)
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f, ok := fixtures[key]; ok {
		return f
	}
	b.StopTimer()
	defer b.StartTimer()
	s := CipherSuite(1)
	cred, priv := newIdentity(b, s, "m0")
	g0, err := CreateGroup(nil, []byte("bench"), s, cred, priv, nil)
	if err != nil {
		b.Fatal(err)
	}
	f := &benchFixture{n: n, g0: g0, sigs: [][]byte{priv}}
	var props []*Proposal
	var kp1 []byte
	var priv1 *KeyPackagePrivate
	for i := 1; i < n; i++ {
		c, sp := newIdentity(b, s, fmt.Sprint("m", i))
		kp, kpp, err := NewKeyPackage(s, c, sp, nil)
		if err != nil {
			b.Fatal(err)
		}
		if i == 1 {
			kp1, priv1 = kp, kpp
		}
		p, err := AddProposal(kp)
		if err != nil {
			b.Fatal(err)
		}
		props = append(props, p)
		f.sigs = append(f.sigs, sp)
	}
	out, err := g0.Commit(&CommitOptions{Proposals: props})
	if err != nil {
		b.Fatal(err)
	}
	if err := g0.MergePendingCommit(); err != nil {
		b.Fatal(err)
	}
	f.welcome = len(out.Welcome)
	rt, err := g0.RatchetTree()
	if err != nil {
		b.Fatal(err)
	}
	if f.g1, err = JoinFromWelcome(nil, out.Welcome, kp1, priv1, rt); err != nil {
		b.Fatal(err)
	}
	if populated {
		half := uint32(n+1) / 2
		width := bits.Len32(half - 1)
		for k := uint32(0); k < 1<<width; k++ {
			leaf := 2 * (bits.Reverse32(k) >> (32 - width))
			if width == 0 {
				leaf = 0
			}
			if leaf >= uint32(n) {
				continue
			}
			if leaf == 0 {
				out, err := f.g0.Commit(&CommitOptions{ForcePath: true})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.g1.ProcessMessage(out.Commit); err != nil {
					b.Fatal(err)
				}
				if err := f.g0.MergePendingCommit(); err != nil {
					b.Fatal(err)
				}
				continue
			}
			msg := f.commitAs(b, leaf)
			for _, g := range []*Group{f.g0, f.g1} {
				if _, err := g.ProcessMessage(msg); err != nil {
					b.Fatalf("populate: leaf %d: %v", leaf, err)
				}
			}
		}
	}
	fixtures[key] = f
	return f
}

// commitAs has leaf commit a self-update (forced path) through a shallow
// copy of g0 holding leaf's signature key, and returns the commit message.
func (f *benchFixture) commitAs(b *testing.B, leaf uint32) []byte {
	t := *f.g0
	var err error
	if t.signer, err = t.suite.NewSigner(f.sigs[leaf]); err != nil {
		b.Fatal(err)
	}
	t.keys = tree.NewPathKeys(leaf, nil, nil)
	out, err := t.Commit(&CommitOptions{ForcePath: true})
	if err != nil {
		b.Fatalf("commit as leaf %d: %v", leaf, err)
	}
	return out.Commit
}

var benchSizes = []int{10, 100, 1000, 10000}

func BenchmarkCommitAdd(b *testing.B) {
	for _, populated := range []bool{false, true} {
		for _, n := range benchSizes {
			name := fmt.Sprintf("bare/%d", n)
			if populated {
				name = fmt.Sprintf("populated/%d", n)
			}
			b.Run(name, func(b *testing.B) {
				f := getFixture(b, n, populated)
				kp, _ := newKP(b, 1, "new")
				p, err := AddProposal(kp)
				if err != nil {
					b.Fatal(err)
				}
				var out *CommitOutput
				b.ResetTimer()
				for b.Loop() {
					if out, err = f.g0.Commit(&CommitOptions{Proposals: []*Proposal{p}}); err != nil {
						b.Fatal(err)
					}
					f.g0.DiscardPendingCommit()
				}
				b.ReportMetric(float64(len(out.Commit)), "commit-bytes")
				b.ReportMetric(float64(len(out.Welcome)), "welcome-bytes")
				rt, err := f.g0.RatchetTree()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(len(rt))/float64(n), "tree-bytes/member")
			})
		}
	}
}

func BenchmarkProcessAdd(b *testing.B) {
	for _, populated := range []bool{false, true} {
		for _, n := range benchSizes {
			name := fmt.Sprintf("bare/%d", n)
			if populated {
				name = fmt.Sprintf("populated/%d", n)
			}
			b.Run(name, func(b *testing.B) {
				f := getFixture(b, n, populated)
				kp, _ := newKP(b, 1, "new")
				p, err := AddProposal(kp)
				if err != nil {
					b.Fatal(err)
				}
				out, err := f.g0.Commit(&CommitOptions{Proposals: []*Proposal{p}})
				if err != nil {
					b.Fatal(err)
				}
				f.g0.DiscardPendingCommit()
				b.ResetTimer()
				for b.Loop() {
					// Processing never mutates the pre-commit state it
					// reads, so a shallow copy is a fresh receiver.
					g := *f.g1
					// The copy must not erase f.g1's epoch on merge.
					g.secretTree, g.encryptionSecret = nil, nil
					s := &g.secrets
					for _, p := range []*[]byte{&s.senderData, &s.exporter, &s.authenticator, &s.external, &s.confirmation, &s.membership, &s.init} {
						*p = bytes.Clone(*p)
					}
					if _, err := g.ProcessMessage(out.Commit); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkJoinFromWelcome(b *testing.B) {
	for _, populated := range []bool{false, true} {
		n := 1000
		b.Run(fmt.Sprintf("populated=%v/%d", populated, n), func(b *testing.B) {
			f := getFixture(b, n, populated)
			kp, priv := newKP(b, 1, "new")
			p, err := AddProposal(kp)
			if err != nil {
				b.Fatal(err)
			}
			out, err := f.g0.Commit(&CommitOptions{Proposals: []*Proposal{p}, InlineTree: true})
			if err != nil {
				b.Fatal(err)
			}
			f.g0.DiscardPendingCommit()
			b.ResetTimer()
			for b.Loop() {
				if _, err := JoinFromWelcome(nil, out.Welcome, kp, priv, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out.Welcome)), "welcome-bytes")
		})
	}
}

func BenchmarkApplicationMessage1KiB(b *testing.B) {
	f := getFixture(b, 100, true)
	msg := make([]byte, 1024)
	b.SetBytes(1024)
	b.ResetTimer()
	for b.Loop() {
		ct, err := f.g0.EncryptApplication(msg, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.g1.ProcessMessage(ct); err != nil {
			b.Fatal(err)
		}
	}
}
