package mls

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
)

var pqSuites = []CipherSuite{SuiteXWing, SuiteMLKEM1024MLDSA87}

// TestPostQuantumKeyPackagesCarryPostQuantumKeys checks the wire encodings
// of draft-ietf-hpke-pq in KeyPackages: X-Wing keys are 1216 bytes
// (ML-KEM-768 encapsulation key + X25519), ML-KEM-1024 keys 1568 bytes, and
// ML-DSA-87 signature keys 2592 bytes with 4627-byte signatures.
func TestPostQuantumKeyPackagesCarryPostQuantumKeys(t *testing.T) {
	for _, tc := range []struct {
		suite            CipherSuite
		hpkePub, sigPub  int
		signature, seedK int
	}{
		{SuiteXWing, 1216, 32, 64, 32},
		{SuiteMLKEM1024MLDSA87, 1568, 2592, 4627, 64},
	} {
		kpMsg, priv := newKP(t, tc.suite, "alice")
		m, err := decodeMessage(kpMsg)
		if err != nil {
			t.Fatal(err)
		}
		kp := m.KeyPackage
		if kp.CipherSuite != tc.suite || len(kp.InitKey) != tc.hpkePub || len(kp.LeafNode.EncryptionKey) != tc.hpkePub {
			t.Errorf("%s: suite %#04x, init key %d bytes, encryption key %d bytes; want %d", tc.suite.Name(), uint16(kp.CipherSuite), len(kp.InitKey), len(kp.LeafNode.EncryptionKey), tc.hpkePub)
		}
		if len(kp.LeafNode.SignatureKey) != tc.sigPub || len(kp.Signature) != tc.signature {
			t.Errorf("%s: signature key %d bytes, signature %d bytes; want %d and %d", tc.suite.Name(), len(kp.LeafNode.SignatureKey), len(kp.Signature), tc.sigPub, tc.signature)
		}
		if len(priv.InitKey) != tc.seedK {
			t.Errorf("%s: init private key %d bytes, want the %d-byte seed", tc.suite.Name(), len(priv.InitKey), tc.seedK)
		}
	}
}

// TestPostQuantumGroupsRefuseOtherSuites checks that a room's suite is
// fixed: a classical KeyPackage cannot be added to a post-quantum group and
// the other way round (RFC 9420 §12.1.1: the KeyPackage's suite must match).
func TestPostQuantumGroupsRefuseOtherSuites(t *testing.T) {
	for _, pair := range [][2]CipherSuite{{SuiteXWing, SuiteDefault}, {SuiteDefault, SuiteXWing}, {SuiteMLKEM1024MLDSA87, SuiteXWing}} {
		w := newWorld(t, pair[0], 1)
		kp, _ := newKP(t, pair[1], "other")
		p, err := AddProposal(kp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.members[0].g.Commit(&CommitOptions{Proposals: []*Proposal{p}}); err == nil {
			t.Errorf("group of %s added a KeyPackage of %s", pair[0].Name(), pair[1].Name())
		}
	}
}

// TestPostQuantumExternalJoinStateAndRemoval runs, in each post-quantum
// suite, what depends on the KEM beyond the lifecycle property test: the
// external key pair derived from external_secret (RFC 9420 §8.3, an HPKE
// DeriveKeyPair of the hybrid KEM), persistence of the group state, and a
// removed member's inability to read.
func TestPostQuantumExternalJoinStateAndRemoval(t *testing.T) {
	for _, s := range pqSuites {
		t.Run(s.Name(), func(t *testing.T) {
			w := newWorld(t, s, 5)
			w.add(w.members[0], 2, true)
			out, err := w.members[0].g.Commit(&CommitOptions{ForcePath: true, ExternalPub: true, InlineTree: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range w.members {
				if _, err := c.g.ProcessMessage(out.Commit); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
			}
			cred, priv := newIdentity(t, s, "joiner")
			g, commit, err := JoinExternal(nil, out.GroupInfo, cred, priv, nil)
			if err != nil {
				t.Fatalf("external join: %v", err)
			}
			for _, c := range w.members {
				if _, err := c.g.ProcessMessage(commit); err != nil {
					t.Fatalf("%s processing the external commit: %v", c.name, err)
				}
			}
			w.members = append(w.members, &client{name: "joiner", g: g})
			w.check()
			st, err := g.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			g2, err := UnmarshalGroup(nil, st)
			if err != nil {
				t.Fatal(err)
			}
			if g2.CipherSuite() != s || !bytes.Equal(g2.EpochAuthenticator(), g.EpochAuthenticator()) {
				t.Fatal("reloaded post-quantum group differs")
			}
			w.removeAndCheck(w.members[0], w.members[1])
			w.check()
		})
	}
}

func TestParseCipherSuite(t *testing.T) {
	for _, s := range SupportedCipherSuites() {
		got, err := ParseCipherSuite(CipherSuiteName(s))
		if err != nil || got != s {
			t.Errorf("ParseCipherSuite(%q) = %#04x, %v", CipherSuiteName(s), uint16(got), err)
		}
	}
	if _, err := ParseCipherSuite("MLS_999"); !errors.Is(err, ciphersuite.ErrUnsupported) {
		t.Errorf("unknown suite: %v, want ErrUnsupported", err)
	}
	if got, _ := ParseCipherSuite("0xf001"); got != SuiteXWing || !got.PostQuantum() {
		t.Errorf("0xf001 parsed as %#04x", uint16(got))
	}
	if SuiteDefault.PostQuantum() {
		t.Error("suite 0x0001 reported post-quantum")
	}
}
