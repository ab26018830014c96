package tree

import (
	"crypto/rand"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// HPKE label for path secrets (RFC 9420 §7.6).
const labelUpdatePathNode = "UpdatePathNode"

// PathKeys holds the HPKE private keys one member knows (RFC 9420 §4.2): its
// leaf's, and those of the parent nodes above it for which it received or
// generated path secrets. Each key is stored with its public key so keys that
// no longer match the tree can be dropped (Prune). The zero value is not
// usable; build one with NewPathKeys or UnmarshalMLS.
type PathKeys struct {
	leaf uint32
	keys map[uint32]nodeKey // node index → key pair
}

type nodeKey struct{ priv, pub []byte }

// NewPathKeys returns the private state of the member at leaf, knowing only
// its leaf key pair.
func NewPathKeys(leaf uint32, leafPriv, leafPub []byte) *PathKeys {
	return &PathKeys{leaf: leaf, keys: map[uint32]nodeKey{2 * leaf: {priv: leafPriv, pub: leafPub}}}
}

// LeafIndex returns the member's leaf index.
func (k *PathKeys) LeafIndex() uint32 { return k.leaf }

// Clone returns an independent copy (key bytes are shared; they are never
// modified in place).
func (k *PathKeys) Clone() *PathKeys {
	return &PathKeys{leaf: k.leaf, keys: maps.Clone(k.keys)}
}

// SetLeafKey replaces the leaf key pair, as when the member's own Update
// proposal is committed.
func (k *PathKeys) SetLeafKey(priv, pub []byte) { k.keys[2*k.leaf] = nodeKey{priv: priv, pub: pub} }

// PrivateKey returns the private key the member holds for node n.
func (k *PathKeys) PrivateKey(n uint32) ([]byte, bool) {
	nk, ok := k.keys[n]
	return nk.priv, ok
}

// Nodes returns the node indices the member holds keys for, ascending.
func (k *PathKeys) Nodes() []uint32 {
	return slices.Sorted(maps.Keys(k.keys))
}

// SetPathSecret stores the key pair derived from pathSecret for node n
// (RFC 9420 §7.4: node_secret = DeriveSecret(path_secret, "node"),
// key pair = DeriveKeyPair(node_secret)) and returns its public key.
func (k *PathKeys) SetPathSecret(suite *ciphersuite.Suite, n uint32, pathSecret []byte) ([]byte, error) {
	priv, pub, err := nodeKeyPair(suite, pathSecret)
	if err != nil {
		return nil, err
	}
	k.keys[n] = nodeKey{priv: priv, pub: pub}
	return pub, nil
}

// Prune drops every key that no longer matches the public key of its node in
// t (blanked or replaced nodes), so outdated keys are deleted (RFC 9420 §7.5).
func (k *PathKeys) Prune(t *Tree) {
	for n, nk := range k.keys {
		if n >= t.Width() || string(t.encryptionKey(n)) != string(nk.pub) {
			delete(k.keys, n)
		}
	}
}

// CheckConsistent verifies that every key the member holds is for a
// non-blank node of t on its own path whose public key matches.
func (k *PathKeys) CheckConsistent(t *Tree) error {
	for n, nk := range k.keys {
		if n >= t.Width() || !isAncestorOrSelf(n, 2*k.leaf) {
			return fmt.Errorf("%w: key for node %d, not on the path of leaf %d", ErrInvalidTree, n, k.leaf)
		}
		if pub := t.encryptionKey(n); pub == nil || string(pub) != string(nk.pub) {
			return fmt.Errorf("%w: private key for node %d does not match the tree", ErrInvalidTree, n)
		}
	}
	return nil
}

// Implant installs the path secret a joiner receives in a Welcome
// (RFC 9420 §12.4.3.1): pathSecret belongs to the lowest common ancestor of
// the joiner's leaf and the committer's; each following non-blank ancestor
// gets the next secret of the chain. Every derived public key must equal the
// node's public key in t.
func (k *PathKeys) Implant(t *Tree, committer uint32, pathSecret []byte) error {
	if committer == k.leaf || committer >= t.LeafCount() || k.leaf >= t.LeafCount() {
		return fmt.Errorf("implant path secret: %w", ErrInvalidLeafIndex)
	}
	root := t.Root()
	n := CommonAncestor(k.leaf, committer)
	ps := pathSecret
	for {
		if pub := t.encryptionKey(n); pub != nil {
			derived, err := k.SetPathSecret(t.suite, n, ps)
			if err != nil {
				return fmt.Errorf("implant path secret at node %d: %w", n, err)
			}
			if string(derived) != string(pub) {
				delete(k.keys, n)
				return fmt.Errorf("implant path secret: %w: derived key for node %d does not match the tree", ErrInvalidUpdatePath, n)
			}
			var err2 error
			if ps, err2 = t.suite.DeriveSecret(ps, "path"); err2 != nil {
				return fmt.Errorf("implant path secret: %w", err2)
			}
		}
		if n == root {
			return nil
		}
		n = parent(n)
	}
}

// MarshalMLS encodes the private state for persistence:
// uint32 leaf, then a vector of {uint32 node; opaque priv<V>; opaque pub<V>}
// in ascending node order. The encoding contains private keys; store it
// encrypted.
func (k *PathKeys) MarshalMLS(w *codec.Writer) {
	w.WriteUint32(k.leaf)
	w.WriteVector(func(w *codec.Writer) {
		for _, n := range k.Nodes() {
			nk := k.keys[n]
			w.WriteUint32(n)
			w.WriteOpaque(nk.priv)
			w.WriteOpaque(nk.pub)
		}
	})
}

// UnmarshalMLS decodes what MarshalMLS wrote.
func (k *PathKeys) UnmarshalMLS(r *codec.Reader) error {
	leaf, err := r.ReadUint32()
	if err != nil {
		return fmt.Errorf("path keys: %w", err)
	}
	keys := map[uint32]nodeKey{}
	err = r.ReadVector(func(r *codec.Reader) error {
		n, err := r.ReadUint32()
		if err != nil {
			return err
		}
		priv, err := r.ReadOpaque()
		if err != nil {
			return err
		}
		pub, err := r.ReadOpaque()
		if err != nil {
			return err
		}
		if _, dup := keys[n]; dup {
			return fmt.Errorf("%w: duplicate node %d", codec.ErrInvalidValue, n)
		}
		keys[n] = nodeKey{priv: priv, pub: pub}
		return nil
	})
	if err != nil {
		return fmt.Errorf("path keys: %w", err)
	}
	k.leaf, k.keys = leaf, keys
	return nil
}

// nodeKeyPair derives a node's HPKE key pair from its path secret
// (RFC 9420 §7.4).
func nodeKeyPair(suite *ciphersuite.Suite, pathSecret []byte) (priv, pub []byte, err error) {
	nodeSecret, err := suite.DeriveSecret(pathSecret, "node")
	if err != nil {
		return nil, nil, fmt.Errorf("derive node secret: %w", err)
	}
	priv, pub, err = suite.DeriveKEMKeyPair(nodeSecret)
	if err != nil {
		return nil, nil, fmt.Errorf("derive node key pair: %w", err)
	}
	return priv, pub, nil
}

// PathParams describes an UpdatePath to create.
type PathParams struct {
	// Leaf is the committer's leaf index; the leaf must be non-blank (for an
	// external commit, add the joiner's leaf with AddLeaf first).
	Leaf uint32
	// LeafNode is the template of the committer's new leaf: its signature
	// key, credential, capabilities and extensions are kept; encryption key,
	// leaf_node_source (commit), lifetime (none), parent_hash and signature
	// are set here.
	LeafNode *wire.LeafNode
	// Signer signs the new leaf with the template's signature key.
	Signer *ciphersuite.Signer
	// GroupID is the signature context of the new leaf.
	GroupID []byte
	// Exclude lists the leaves added by this Commit, which receive their
	// path secret in the Welcome instead (RFC 9420 §7.6, §12.4.2).
	Exclude []uint32
	// GroupContext returns the encoded provisional GroupContext for the tree
	// hash of the updated tree; it is the HPKE context (RFC 9420 §12.4.2).
	GroupContext func(treeHash []byte) ([]byte, error)
	// LeafSecret, if set, replaces the random leaf secret (tests only).
	LeafSecret []byte
}

// PathResult is the outcome of CreateUpdatePath.
type PathResult struct {
	// Path is the UpdatePath for the Commit.
	Path *wire.UpdatePath
	// Keys is the committer's new private state: its new leaf key and the
	// keys of its filtered direct path. It replaces the old PathKeys.
	Keys *PathKeys
	// CommitSecret is path_secret[n+1] (RFC 9420 §12.4.2).
	CommitSecret []byte
	// GroupContext is the encoded provisional GroupContext that was used.
	GroupContext []byte

	committer   uint32
	fdp         []uint32
	pathSecrets [][]byte // per node of fdp
}

// PathSecretFor returns the path secret a new member at leaf receives in its
// Welcome: the one of the lowest common ancestor of its leaf and the
// committer's (RFC 9420 §12.4.2). It returns nil if that node is not on the
// committer's filtered direct path (it always is for a leaf of the tree).
func (r *PathResult) PathSecretFor(leaf uint32) []byte {
	lca := CommonAncestor(r.committer, leaf)
	for m, n := range r.fdp {
		if n == lca {
			return r.pathSecrets[m]
		}
	}
	return nil
}

// CreateUpdatePath refreshes the committer's leaf and filtered direct path
// and encrypts the new path secrets to the rest of the group (RFC 9420 §7.4–
// §7.6, §12.4.2): it blanks the direct path, derives a path secret and key
// pair per filtered-direct-path node from a fresh leaf secret, sets parent
// hashes from the root down (§7.9), re-signs the leaf with its parent hash,
// then encrypts each path secret to the resolution of the node's copath child
// (without the Exclude leaves), using the provisional GroupContext as
// context. The tree is modified; on error it is left in an unspecified
// state, so callers work on a Clone.
func (t *Tree) CreateUpdatePath(p PathParams) (*PathResult, error) {
	suite := t.suite
	if t.Leaf(p.Leaf) == nil {
		return nil, fmt.Errorf("create update path: %w: leaf %d is blank", ErrInvalidLeafIndex, p.Leaf)
	}
	if p.LeafNode == nil || p.Signer == nil || p.GroupContext == nil {
		return nil, fmt.Errorf("create update path: missing leaf node template, signer or group context")
	}
	leafSecret := p.LeafSecret
	if leafSecret == nil {
		leafSecret = make([]byte, suite.Nh())
		if _, err := rand.Read(leafSecret); err != nil {
			return nil, fmt.Errorf("create update path: %w", err)
		}
	}
	leafPriv, leafPub, err := nodeKeyPair(suite, leafSecret)
	if err != nil {
		return nil, fmt.Errorf("create update path: leaf: %w", err)
	}
	fdp, copath := t.filteredDirectPath(p.Leaf)
	res := &PathResult{
		Keys:        NewPathKeys(p.Leaf, leafPriv, leafPub),
		committer:   p.Leaf,
		fdp:         fdp,
		pathSecrets: make([][]byte, len(fdp)),
	}
	pubs := make([][]byte, len(fdp))
	ps := leafSecret
	for m, n := range fdp {
		if ps, err = suite.DeriveSecret(ps, "path"); err != nil {
			return nil, fmt.Errorf("create update path: %w", err)
		}
		res.pathSecrets[m] = ps
		if pubs[m], err = res.Keys.SetPathSecret(suite, n, ps); err != nil {
			return nil, fmt.Errorf("create update path: node %d: %w", n, err)
		}
	}
	if res.CommitSecret, err = suite.DeriveSecret(ps, "path"); err != nil {
		return nil, fmt.Errorf("create update path: commit secret: %w", err)
	}

	leafParentHash, err := t.applyPath(p.Leaf, fdp, copath, pubs)
	if err != nil {
		return nil, fmt.Errorf("create update path: %w", err)
	}
	ln := *p.LeafNode
	ln.EncryptionKey = leafPub
	ln.LeafNodeSource = wire.LeafNodeSourceCommit
	ln.Lifetime = nil
	ln.ParentHash = leafParentHash
	ln.Signature = nil
	tbs, err := ln.TBS(p.GroupID, p.Leaf)
	if err != nil {
		return nil, fmt.Errorf("create update path: encode LeafNodeTBS: %w", err)
	}
	if ln.Signature, err = p.Signer.SignWithLabel(labelLeafNodeTBS, tbs); err != nil {
		return nil, fmt.Errorf("create update path: sign leaf: %w", err)
	}
	t.setLeaf(p.Leaf, &ln)

	treeHash, err := t.RootHash()
	if err != nil {
		return nil, fmt.Errorf("create update path: %w", err)
	}
	gc, err := p.GroupContext(treeHash)
	if err != nil {
		return nil, fmt.Errorf("create update path: provisional group context: %w", err)
	}
	res.GroupContext = gc
	exclude := excludeSet(p.Exclude)
	up := &wire.UpdatePath{LeafNode: ln, Nodes: make([]wire.UpdatePathNode, len(fdp))}
	var jobs []encryptJob
	for m := range fdp {
		resolution := t.resolve(copath[m], exclude, nil)
		up.Nodes[m] = wire.UpdatePathNode{EncryptionKey: pubs[m], EncryptedPathSecret: make([]wire.HPKECiphertext, len(resolution))}
		for j, r := range resolution {
			jobs = append(jobs, encryptJob{pub: t.encryptionKey(r), secret: res.pathSecrets[m], out: &up.Nodes[m].EncryptedPathSecret[j], node: r})
		}
	}
	if err := runEncryptJobs(suite, gc, jobs); err != nil {
		return nil, fmt.Errorf("create update path: %w", err)
	}
	res.Path = up
	return res, nil
}

// encryptJob is one HPKE encryption of a path secret to a resolution node.
type encryptJob struct {
	pub, secret []byte
	out         *wire.HPKECiphertext
	node        uint32
}

// runEncryptJobs performs the encryptions, spread over up to GOMAXPROCS
// goroutines when there are many (a tree fresh from Adds has resolutions as
// large as the group). Each job writes only its own slot, so the result does
// not depend on scheduling; the error reported is that of the first failing
// job in order.
func runEncryptJobs(suite *ciphersuite.Suite, groupContext []byte, jobs []encryptJob) error {
	do := func(j *encryptJob) error {
		kem, ct, err := suite.EncryptWithLabel(j.pub, labelUpdatePathNode, groupContext, j.secret)
		if err != nil {
			return fmt.Errorf("encrypt to node %d: %w", j.node, err)
		}
		*j.out = wire.HPKECiphertext{KEMOutput: kem, Ciphertext: ct}
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), len(jobs)/16)
	if workers <= 1 {
		for i := range jobs {
			if err := do(&jobs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(jobs); i += workers {
				errs[i] = do(&jobs[i])
			}
		}()
	}
	wg.Wait()
	return firstNonNil(errs)
}

func excludeSet(leaves []uint32) map[uint32]bool {
	if len(leaves) == 0 {
		return nil
	}
	m := make(map[uint32]bool, len(leaves))
	for _, l := range leaves {
		m[l] = true
	}
	return m
}

// applyPath blanks the direct path of leaf, sets the filtered direct path
// nodes to fresh parent nodes with the given public keys and no unmerged
// leaves, and fills in their parent hashes from the root down (RFC 9420
// §7.5, §7.9). It returns the parent hash the leaf must carry. copath[m] is
// the copath child of fdp[m]; its tree hash is the original sibling tree hash
// because the new node has no unmerged leaves.
func (t *Tree) applyPath(leaf uint32, fdp, copath []uint32, pubs [][]byte) ([]byte, error) {
	t.blankDirectPath(2 * leaf)
	above := []byte{}
	nodes := make([]*wire.ParentNode, len(fdp))
	for m := len(fdp) - 1; m >= 0; m-- {
		nodes[m] = &wire.ParentNode{EncryptionKey: pubs[m], ParentHash: above}
		sth, err := t.hash(copath[m])
		if err != nil {
			return nil, err
		}
		if above, err = t.parentHash(pubs[m], above, sth); err != nil {
			return nil, err
		}
	}
	for m, n := range fdp {
		t.setParent(n, nodes[m])
	}
	return above, nil
}

// MergeUpdatePath merges another member's UpdatePath into the tree's public
// state (RFC 9420 §7.5): the path must have one node per node of the sender's
// filtered direct path, and none of its public keys may already appear in the
// tree (§12.4.2); the direct path is blanked, the filtered direct path set to
// the path's keys with no unmerged leaves, parent hashes recomputed, and the
// leaf's parent_hash must equal the hash for the first path node. The sender's
// leaf is replaced by path.LeafNode. Validate the LeafNode (ValidateLeafNode
// with source commit) before merging. On error the tree is left in an
// unspecified state, so callers work on a Clone.
func (t *Tree) MergeUpdatePath(sender uint32, path *wire.UpdatePath) error {
	if t.Leaf(sender) == nil {
		return fmt.Errorf("merge update path: %w: sender leaf %d is blank", ErrInvalidLeafIndex, sender)
	}
	if path.LeafNode.LeafNodeSource != wire.LeafNodeSourceCommit {
		return fmt.Errorf("merge update path: %w: leaf_node_source %d", ErrInvalidUpdatePath, path.LeafNode.LeafNodeSource)
	}
	fdp, copath := t.filteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return fmt.Errorf("merge update path: %w: %d nodes for a filtered direct path of %d", ErrInvalidUpdatePath, len(path.Nodes), len(fdp))
	}
	seen := make(map[string]bool, len(fdp)+1)
	pubs := make([][]byte, len(fdp))
	for m := range path.Nodes {
		pubs[m] = path.Nodes[m].EncryptionKey
	}
	for m, k := range pubs {
		if n, dup := t.encKeys.get(k); dup || seen[string(k)] {
			return fmt.Errorf("merge update path: %w: key of path node %d already used by node %d", ErrDuplicateKey, m, n)
		}
		seen[string(k)] = true
	}
	// The leaf key may already sit at the sender's own leaf when an external
	// joiner's leaf was added with AddLeaf first; ValidateLeafNode rejects a
	// committer reusing its previous key.
	lk := path.LeafNode.EncryptionKey
	if n, dup := t.encKeys.get(lk); (dup && n != 2*sender) || seen[string(lk)] {
		return fmt.Errorf("merge update path: %w: leaf encryption key already used by node %d", ErrDuplicateKey, n)
	}
	leafParentHash, err := t.applyPath(sender, fdp, copath, pubs)
	if err != nil {
		return fmt.Errorf("merge update path: %w", err)
	}
	if string(path.LeafNode.ParentHash) != string(leafParentHash) {
		return fmt.Errorf("merge update path: %w: leaf parent_hash does not match the path", ErrInvalidParentHash)
	}
	ln := path.LeafNode
	t.setLeaf(sender, &ln)
	return nil
}

// DecryptedPath is what a member learns from another member's UpdatePath.
type DecryptedPath struct {
	// Keys is the member's new private state: its old keys minus those of
	// the sender's direct path, plus the keys of the common path.
	Keys *PathKeys
	// PathSecret is the secret decrypted for the lowest common ancestor.
	PathSecret []byte
	// CommitSecret is path_secret[n+1] (RFC 9420 §12.4.2).
	CommitSecret []byte
}

// DecryptUpdatePath recovers the path secrets of sender's UpdatePath that the
// member holding k may know (RFC 9420 §7.5): t is the tree after
// MergeUpdatePath, exclude the leaves added by the same Commit, and
// groupContext the encoded provisional GroupContext. It finds the filtered
// direct path node whose copath child covers the member, decrypts with the
// member's key for a node of that child's resolution, derives the secrets up
// to the root, and checks each derived public key against the tree. Every
// path node must carry one ciphertext per node of its copath resolution.
// k itself is not modified.
func (k *PathKeys) DecryptUpdatePath(t *Tree, sender uint32, path *wire.UpdatePath, exclude []uint32, groupContext []byte) (*DecryptedPath, error) {
	suite := t.suite
	if sender == k.leaf {
		return nil, fmt.Errorf("decrypt update path: %w: own path", ErrInvalidLeafIndex)
	}
	if sender >= t.LeafCount() || k.leaf >= t.LeafCount() {
		return nil, fmt.Errorf("decrypt update path: %w", ErrInvalidLeafIndex)
	}
	fdp, copath := t.filteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return nil, fmt.Errorf("decrypt update path: %w: %d nodes for a filtered direct path of %d", ErrInvalidUpdatePath, len(path.Nodes), len(fdp))
	}
	ex := excludeSet(exclude)
	me := 2 * k.leaf
	start := -1
	var resolution []uint32
	var priv []byte
	var ct *wire.HPKECiphertext
	for m := range fdp {
		resolution = t.resolve(copath[m], ex, resolution[:0])
		if len(path.Nodes[m].EncryptedPathSecret) != len(resolution) {
			return nil, fmt.Errorf("decrypt update path: %w: node %d has %d ciphertexts for a resolution of %d", ErrInvalidUpdatePath, fdp[m], len(path.Nodes[m].EncryptedPathSecret), len(resolution))
		}
		if start >= 0 || !isAncestorOrSelf(copath[m], me) {
			continue
		}
		start = m
		for j, r := range resolution {
			if nk, ok := k.keys[r]; ok && string(nk.pub) == string(t.encryptionKey(r)) {
				priv, ct = nk.priv, &path.Nodes[m].EncryptedPathSecret[j]
				break
			}
		}
	}
	if start < 0 {
		return nil, fmt.Errorf("decrypt update path: %w: leaf %d is not covered by the path of leaf %d", ErrInvalidUpdatePath, k.leaf, sender)
	}
	if ct == nil {
		return nil, fmt.Errorf("decrypt update path: %w", ErrNoPrivateKey)
	}
	ps, err := suite.DecryptWithLabel(priv, labelUpdatePathNode, groupContext, ct.KEMOutput, ct.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("decrypt update path: %w", err)
	}
	out := &DecryptedPath{Keys: k.Clone(), PathSecret: ps}
	for _, n := range t.DirectPath(2 * sender) {
		delete(out.Keys.keys, n)
	}
	for m := start; m < len(fdp); m++ {
		pub, err := out.Keys.SetPathSecret(suite, fdp[m], ps)
		if err != nil {
			return nil, fmt.Errorf("decrypt update path: node %d: %w", fdp[m], err)
		}
		if string(pub) != string(path.Nodes[m].EncryptionKey) {
			return nil, fmt.Errorf("decrypt update path: %w: derived key for node %d does not match", ErrInvalidUpdatePath, fdp[m])
		}
		if ps, err = suite.DeriveSecret(ps, "path"); err != nil {
			return nil, fmt.Errorf("decrypt update path: %w", err)
		}
	}
	out.CommitSecret = ps
	return out, nil
}
