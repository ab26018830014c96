package conformance

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/tree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

func init() { register("treekem", runTreeKEM) }

// treeKEMCase is one case of treekem.json (test-vectors.md, "TreeKEM").
type treeKEMCase struct {
	CipherSuite             uint16   `json:"cipher_suite"`
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes `json:"ratchet_tree"`
	LeavesPrivate           []struct {
		Index          uint32   `json:"index"`
		EncryptionPriv hexBytes `json:"encryption_priv"`
		SignaturePriv  hexBytes `json:"signature_priv"`
		PathSecrets    []struct {
			Node       uint32   `json:"node"`
			PathSecret hexBytes `json:"path_secret"`
		} `json:"path_secrets"`
	} `json:"leaves_private"`
	UpdatePaths []struct {
		Sender        uint32     `json:"sender"`
		UpdatePath    hexBytes   `json:"update_path"`
		PathSecrets   []hexBytes `json:"path_secrets"`
		CommitSecret  hexBytes   `json:"commit_secret"`
		TreeHashAfter hexBytes   `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// runTreeKEM processes every update path with every other leaf's private
// state, then has every sender generate a fresh UpdatePath that all other
// leaves process (RFC 9420 §7.4–§7.6, §12.4.2).
func runTreeKEM(t *testing.T, raw json.RawMessage) {
	var c treeKEMCase
	decodeCase(t, raw, &c)
	suite, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	base, err := tree.Decode(suite, c.RatchetTree)
	if err != nil {
		t.Fatalf("decode ratchet_tree: %v", err)
	}
	if err := base.VerifyParentHashes(); err != nil {
		t.Fatalf("ratchet_tree parent hashes: %v", err)
	}
	groupContext := func(treeHash []byte) ([]byte, error) {
		gc := wire.GroupContext{
			Version:                 wire.ProtocolVersionMLS10,
			CipherSuite:             ciphersuite.ID(c.CipherSuite),
			GroupID:                 c.GroupID,
			Epoch:                   c.Epoch,
			TreeHash:                treeHash,
			ConfirmedTranscriptHash: c.ConfirmedTranscriptHash,
		}
		return codec.Marshal(&gc)
	}

	// Private state per leaf, checked against the public tree.
	keys := map[uint32]*tree.PathKeys{}
	signers := map[uint32]*ciphersuite.Signer{}
	for _, lp := range c.LeavesPrivate {
		leaf := base.Leaf(lp.Index)
		if leaf == nil {
			t.Fatalf("leaves_private names blank leaf %d", lp.Index)
		}
		k := tree.NewPathKeys(lp.Index, lp.EncryptionPriv, leaf.EncryptionKey)
		for _, ps := range lp.PathSecrets {
			if _, err := k.SetPathSecret(suite, ps.Node, ps.PathSecret); err != nil {
				t.Fatalf("leaf %d: path secret for node %d: %v", lp.Index, ps.Node, err)
			}
		}
		if err := k.CheckConsistent(base); err != nil {
			t.Fatalf("leaf %d private state: %v", lp.Index, err)
		}
		keys[lp.Index] = k
		s, err := suite.NewSigner(lp.SignaturePriv)
		if err != nil {
			t.Fatalf("leaf %d signature key: %v", lp.Index, err)
		}
		signers[lp.Index] = s
	}

	for ui, u := range c.UpdatePaths {
		var path wire.UpdatePath
		if err := codec.Unmarshal(u.UpdatePath, &path); err != nil {
			t.Fatalf("update path %d: decode: %v", ui, err)
		}
		// (a) Process the given path with every other leaf's private state.
		merged := base.Clone()
		check := tree.LeafCheck{Source: wire.LeafNodeSourceCommit, GroupID: c.GroupID, LeafIndex: u.Sender}
		if err := merged.ValidateLeafNode(&path.LeafNode, check, nil); err != nil {
			t.Errorf("update path %d: leaf node: %v", ui, err)
		}
		if err := merged.MergeUpdatePath(u.Sender, &path); err != nil {
			t.Fatalf("update path %d: merge: %v", ui, err)
		}
		th, err := merged.RootHash()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(th, u.TreeHashAfter) {
			t.Errorf("update path %d: tree hash after = %x, want %x", ui, th, []byte(u.TreeHashAfter))
		}
		if err := merged.VerifyParentHashes(); err != nil {
			t.Errorf("update path %d: tree after merge: %v", ui, err)
		}
		gc, err := groupContext(th)
		if err != nil {
			t.Fatal(err)
		}
		for j, k := range keys {
			if j == u.Sender {
				continue
			}
			dp, err := k.DecryptUpdatePath(merged, u.Sender, &path, nil, gc)
			if err != nil {
				t.Errorf("update path %d: leaf %d: %v", ui, j, err)
				continue
			}
			if int(j) >= len(u.PathSecrets) || !bytes.Equal(dp.PathSecret, u.PathSecrets[j]) {
				t.Errorf("update path %d: leaf %d decrypted path secret %x", ui, j, dp.PathSecret)
			}
			if !bytes.Equal(dp.CommitSecret, u.CommitSecret) {
				t.Errorf("update path %d: leaf %d commit secret = %x, want %x", ui, j, dp.CommitSecret, []byte(u.CommitSecret))
			}
			if err := dp.Keys.CheckConsistent(merged); err != nil {
				t.Errorf("update path %d: leaf %d keys after: %v", ui, j, err)
			}
		}

		// (b) The sender creates a fresh path; every other leaf processes it.
		signer, ok := signers[u.Sender]
		if !ok {
			t.Fatalf("update path %d: no private state for sender %d", ui, u.Sender)
		}
		created := base.Clone()
		res, err := created.CreateUpdatePath(tree.PathParams{
			Leaf:         u.Sender,
			LeafNode:     base.Leaf(u.Sender),
			Signer:       signer,
			GroupID:      c.GroupID,
			GroupContext: groupContext,
		})
		if err != nil {
			t.Fatalf("update path %d: create: %v", ui, err)
		}
		if err := res.Keys.CheckConsistent(created); err != nil {
			t.Errorf("update path %d: committer keys: %v", ui, err)
		}
		if err := created.VerifyParentHashes(); err != nil {
			t.Errorf("update path %d: created tree: %v", ui, err)
		}
		// Round-trip the path through its encoding, as a receiver would.
		enc, err := codec.Marshal(res.Path)
		if err != nil {
			t.Fatal(err)
		}
		var path2 wire.UpdatePath
		if err := codec.Unmarshal(enc, &path2); err != nil {
			t.Fatalf("update path %d: decode created path: %v", ui, err)
		}
		recv := base.Clone()
		if err := recv.ValidateLeafNode(&path2.LeafNode, check, nil); err != nil {
			t.Errorf("update path %d: created leaf node: %v", ui, err)
		}
		if err := recv.MergeUpdatePath(u.Sender, &path2); err != nil {
			t.Fatalf("update path %d: merge created path: %v", ui, err)
		}
		th2, _ := recv.RootHash()
		want, _ := created.RootHash()
		if !bytes.Equal(th2, want) {
			t.Errorf("update path %d: receiver tree hash %x, committer %x", ui, th2, want)
		}
		gc2, err := groupContext(th2)
		if err != nil {
			t.Fatal(err)
		}
		for j, k := range keys {
			if j == u.Sender {
				continue
			}
			dp, err := k.DecryptUpdatePath(recv, u.Sender, &path2, nil, gc2)
			if err != nil {
				t.Errorf("update path %d: leaf %d processing created path: %v", ui, j, err)
				continue
			}
			if !bytes.Equal(dp.CommitSecret, res.CommitSecret) {
				t.Errorf("update path %d: leaf %d commit secret %x, committer %x", ui, j, dp.CommitSecret, res.CommitSecret)
			}
			if got := res.PathSecretFor(j); !bytes.Equal(got, dp.PathSecret) {
				t.Errorf("update path %d: PathSecretFor(%d) = %x, leaf decrypted %x", ui, j, got, dp.PathSecret)
			}
		}
	}
}
