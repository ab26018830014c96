package mls

import (
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// TestCommitValidation has a member create commits that break the rules of
// RFC 9420 §12.2 and §12.4 and checks that every other member refuses them
// and stays in its epoch.
func TestCommitValidation(t *testing.T) {
	kpA, _ := newKP(t, 1, "x")
	addA, err := AddProposal(kpA)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		props  func(w *world) []*Proposal
		noPath bool
		// applyFails marks lists that cannot even be applied (RFC 9420
		// §12.3); the committer's apply, shared with receivers, refuses.
		applyFails bool
	}{
		{"committer removes itself", func(w *world) []*Proposal { return []*Proposal{RemoveProposal(0)} }, false, true},
		{"same leaf removed twice", func(w *world) []*Proposal { return []*Proposal{RemoveProposal(2), RemoveProposal(2)} }, false, true},
		{"remove of a blank leaf", func(w *world) []*Proposal { return []*Proposal{RemoveProposal(9)} }, false, true},
		{"same key package added twice", func(w *world) []*Proposal { return []*Proposal{addA, addA} }, false, false},
		{"two GroupContextExtensions", func(w *world) []*Proposal {
			return []*Proposal{GroupContextExtensionsProposal(nil), GroupContextExtensionsProposal(nil)}
		}, false, false},
		{"ReInit with another proposal", func(w *world) []*Proposal {
			return []*Proposal{ReInitProposal([]byte("g2"), 1, nil), addA}
		}, false, false},
		{"ExternalInit in a member commit", func(w *world) []*Proposal {
			return []*Proposal{{wire.Proposal{ProposalType: wire.ProposalTypeExternalInit, ExternalInit: &wire.ExternalInit{KEMOutput: []byte{1}}}}}
		}, false, false},
		{"Update by value", func(w *world) []*Proposal {
			ln := *w.members[0].g.tree.Leaf(0)
			return []*Proposal{{wire.Proposal{ProposalType: wire.ProposalTypeUpdate, Update: &wire.Update{LeafNode: ln}}}}
		}, false, false},
		{"Remove without the required path", func(w *world) []*Proposal { return []*Proposal{RemoveProposal(2)} }, true, false},
		{"empty commit without path", func(w *world) []*Proposal { return nil }, true, false},
		{"GroupContextExtensions with an unsupported extension", func(w *world) []*Proposal {
			return []*Proposal{GroupContextExtensionsProposal([]wire.Extension{{ExtensionType: 0xff00, ExtensionData: []byte{0}}})}
		}, false, false},
		{"resumption PSK of an unknown epoch", func(w *world) []*Proposal {
			return []*Proposal{w.members[0].g.ResumptionPSKProposal(77)}
		}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, 1, 13)
			w.add(w.members[0], 3, true)
			a := w.members[0].g
			a.test.noValidate, a.test.noPath = true, c.noPath
			out, err := a.Commit(&CommitOptions{Proposals: c.props(w)})
			if c.applyFails {
				if err == nil {
					t.Fatal("commit of an inapplicable proposal list was built")
				}
				return
			}
			if err != nil {
				t.Fatalf("committer: %v", err)
			}
			for _, o := range w.members[1:] {
				ep := o.g.Epoch()
				_, err := o.g.ProcessMessage(out.Commit)
				if err == nil {
					t.Fatalf("%s accepted the commit", o.name)
				}
				if !errors.Is(err, ErrInvalidCommit) && !errors.Is(err, ErrUnknownPSK) {
					t.Errorf("%s: error %v is not ErrInvalidCommit", o.name, err)
				}
				if o.g.Epoch() != ep {
					t.Fatalf("%s moved to epoch %d", o.name, o.g.Epoch())
				}
			}
			// The group still works after the refusal.
			a.DiscardPendingCommit()
			a.test.noValidate, a.test.noPath = false, false
			w.commit(w.members[1], &CommitOptions{ForcePath: true}, nil, nil, nil)
		})
	}
}

// TestReAddAfterRemove checks the §12.2 exception: an Add of a client
// already in the group is valid when the same commit removes it.
func TestReAddAfterRemove(t *testing.T) {
	w := newWorld(t, 1, 19)
	w.add(w.members[0], 2, true)
	victim := w.members[2]
	leaf := victim.g.LeafIndex()
	// The same signature key (same client) in a fresh KeyPackage.
	kp, priv, err := NewKeyPackage(1, victim.g.tree.Leaf(leaf).Credential, victim.g.sigKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	add, err := AddProposal(kp)
	if err != nil {
		t.Fatal(err)
	}
	// Without the Remove the Add is refused.
	if _, err := w.members[0].g.Commit(&CommitOptions{Proposals: []*Proposal{add}}); !errors.Is(err, ErrInvalidCommit) {
		t.Fatalf("re-add without remove: %v", err)
	}
	w.commit(w.members[0], &CommitOptions{Proposals: []*Proposal{RemoveProposal(leaf), add}, InlineTree: true}, [][]byte{kp}, []*KeyPackagePrivate{priv}, []string{"readded"})
	if len(w.members) != 3 {
		t.Fatalf("%d members", len(w.members))
	}
}
