package conformance

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls"
)

// TestPublicGroupFollowsPassiveClientVectors runs a hub's view of each
// group (mls.PublicGroup, no secrets) beside the passive client of the
// official passive-client vectors: from the member's GroupInfo it follows
// every epoch whose handshake messages are PublicMessages (other
// implementations' commits), and after each its ratchet tree must equal the
// member's. An epoch with a PrivateMessage handshake cannot be observed; the
// observer restarts from the member's next GroupInfo, as a hub would be
// handed one.
func TestPublicGroupFollowsPassiveClientVectors(t *testing.T) {
	dir := vectorsDir()
	files, _ := filepath.Glob(filepath.Join(dir, "passive-client-*.json"))
	if len(files) == 0 {
		t.Skipf("no passive-client vectors in %s; set MLS_TEST_VECTORS to their directory", dir)
	}
	observed, unobservable := 0, 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var cases []passiveClientCase
		if err := json.Unmarshal(data, &cases); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for ci, c := range cases {
			psks := map[string][]byte{}
			for _, p := range c.ExternalPSKs {
				psks[string(p.PSKID)] = p.PSK
			}
			cfg := &mls.Config{ExternalPSK: func(id []byte) ([]byte, bool) { s, ok := psks[string(id)]; return s, ok }, RetainedResumptionPSKs: 1 << 20}
			priv := &mls.KeyPackagePrivate{InitKey: c.InitPriv, EncryptionKey: c.EncryptionPriv, SignatureKey: c.SignaturePriv}
			g, err := mls.JoinFromWelcome(cfg, c.Welcome, c.KeyPackage, priv, c.RatchetTree)
			if err != nil {
				t.Fatalf("%s case %d: join: %v", filepath.Base(path), ci, err)
			}
			var pg *mls.PublicGroup
			for ei, e := range c.Epochs {
				if pg == nil {
					gi, err := g.GroupInfo(true, false)
					if err != nil {
						t.Fatal(err)
					}
					if pg, err = mls.NewPublicGroup(nil, gi, nil); err != nil {
						t.Fatalf("%s case %d epoch %d: NewPublicGroup: %v", filepath.Base(path), ci, ei, err)
					}
				}
				public := isPublicMessage(e.Commit)
				for _, p := range e.Proposals {
					public = public && isPublicMessage(p)
				}
				for j, p := range e.Proposals {
					if _, err := g.ProcessMessage(p); err != nil {
						t.Fatalf("epoch %d proposal %d: %v", ei, j, err)
					}
					if public {
						if _, err := pg.StoreProposal(p); err != nil {
							t.Fatalf("%s case %d (suite %#04x) epoch %d: observer refused proposal %d: %v", filepath.Base(path), ci, c.CipherSuite, ei, j, err)
						}
					}
				}
				if _, err := g.ProcessMessage(e.Commit); err != nil {
					t.Fatalf("epoch %d commit: %v", ei, err)
				}
				if !public {
					unobservable++
					pg = nil
					continue
				}
				if _, err := pg.ProcessCommit(e.Commit); err != nil {
					t.Fatalf("%s case %d (suite %#04x) epoch %d: observer refused the commit: %v", filepath.Base(path), ci, c.CipherSuite, ei, err)
				}
				want, _ := g.RatchetTree()
				got, _ := pg.RatchetTree()
				if pg.Epoch() != g.Epoch() || !bytes.Equal(got, want) {
					t.Fatalf("%s case %d (suite %#04x) epoch %d: observer's tree differs from the member's", filepath.Base(path), ci, c.CipherSuite, ei)
				}
				observed++
			}
		}
	}
	t.Logf("observed %d commits of other implementations; %d epochs had PrivateMessage handshakes", observed, unobservable)
	if observed == 0 {
		t.Fatal("no vector epoch could be observed")
	}
}

// isPublicMessage reports whether an encoded MLSMessage (uint16 version,
// uint16 wire_format) is a PublicMessage (wire format 1, RFC 9420 §6).
func isPublicMessage(m []byte) bool { return len(m) >= 4 && m[2] == 0 && m[3] == 1 }
