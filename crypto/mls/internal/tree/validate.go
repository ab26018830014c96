package tree

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// Signature labels (RFC 9420 §5.1.2, §7.2, §10).
const (
	labelLeafNodeTBS   = "LeafNodeTBS"
	labelKeyPackageTBS = "KeyPackageTBS"
)

// protocolVersionMLS10 is mls10 (RFC 9420 §6).
const protocolVersionMLS10 = 1

// extensionTypeRequiredCapabilities is required_capabilities (RFC 9420 §17.3).
const extensionTypeRequiredCapabilities = 3

// CredentialValidator is the application's Authentication Service
// (RFC 9420 §5.3.1): it decides whether a credential legitimately binds its
// presented identities to signatureKey — for a basic credential typically by
// looking the identity up, for X.509 by verifying the chain and that the
// end-entity key equals signatureKey. It returns nil to accept.
type CredentialValidator interface {
	ValidateCredential(cred *wire.Credential, signatureKey []byte) error
}

// CredentialValidatorFunc adapts a function to CredentialValidator.
type CredentialValidatorFunc func(cred *wire.Credential, signatureKey []byte) error

// ValidateCredential calls f.
func (f CredentialValidatorFunc) ValidateCredential(cred *wire.Credential, signatureKey []byte) error {
	return f(cred, signatureKey)
}

// Policy holds the application's choices for LeafNode and KeyPackage
// validation.
type Policy struct {
	// Credentials validates every credential; nil accepts every credential
	// (only for tests and tools — an application must supply one).
	Credentials CredentialValidator
	// Now is the current time for lifetime checks; the zero time skips them
	// (RFC 9420 §7.3 makes the check RECOMMENDED for received leaf nodes).
	Now time.Time
	// MaxLifetime is the longest accepted not_after − not_before of a
	// key_package leaf (RFC 9420 §7.2); zero means no limit.
	MaxLifetime time.Duration
	// RequiredCapabilities holds the group's required_capabilities
	// extension (RFC 9420 §11.1), or nil if it has none.
	RequiredCapabilities *RequiredCapabilities
}

// RequiredCapabilities is the required_capabilities GroupContext extension
// (RFC 9420 §11.1).
type RequiredCapabilities struct {
	ExtensionTypes  []uint16
	ProposalTypes   []uint16
	CredentialTypes []uint16
}

// ParseRequiredCapabilities finds and decodes the required_capabilities
// extension among GroupContext extensions; it returns nil if absent.
func ParseRequiredCapabilities(exts []wire.Extension) (*RequiredCapabilities, error) {
	for _, e := range exts {
		if uint16(e.ExtensionType) != extensionTypeRequiredCapabilities {
			continue
		}
		var rc RequiredCapabilities
		r := codec.NewReader(e.ExtensionData)
		for _, dst := range []*[]uint16{&rc.ExtensionTypes, &rc.ProposalTypes, &rc.CredentialTypes} {
			err := r.ReadVector(func(r *codec.Reader) error {
				v, err := r.ReadUint16()
				*dst = append(*dst, v)
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("required_capabilities extension: %w", err)
			}
		}
		if err := r.Finish(); err != nil {
			return nil, fmt.Errorf("required_capabilities extension: %w", err)
		}
		return &rc, nil
	}
	return nil, nil
}

// isDefaultExtension reports extension types every client implements, which
// capabilities must not list (RFC 9420 §7.2).
func isDefaultExtension(t uint16) bool { return t >= 1 && t <= 5 }

// isDefaultProposal reports proposal types every client implements (RFC 9420 §7.2).
func isDefaultProposal(t uint16) bool { return t >= 1 && t <= 7 }

// LeafCheck says where a LeafNode being validated appears.
type LeafCheck struct {
	// Source is the leaf_node_source the context requires: key_package for
	// a KeyPackage or Add, update for an Update proposal, commit for an
	// UpdatePath.
	Source wire.LeafNodeSource
	// GroupID and LeafIndex are the signature context for the update and
	// commit sources; LeafIndex is also the leaf being replaced, whose own
	// keys do not count as duplicates of the signature key.
	GroupID   []byte
	LeafIndex uint32
}

// ValidateLeafNode checks a LeafNode that is about to enter the tree — from
// an Add's KeyPackage, an Update proposal or an UpdatePath — against the
// rules of RFC 9420 §7.3: credential, signature, required capabilities,
// credential types supported by all members and all in-use types supported by
// it, lifetime, extensions listed in capabilities, leaf_node_source, and
// uniqueness of its encryption key in the whole tree and of its signature key
// among the other members. For update and commit, the encryption key must
// also differ from the replaced leaf's (it is part of the tree).
func (t *Tree) ValidateLeafNode(ln *wire.LeafNode, c LeafCheck, pol *Policy) error {
	if err := validateLeafAlone(t.suite, ln, c, pol, true); err != nil {
		return err
	}
	except := -1
	if c.Source != wire.LeafNodeSourceKeyPackage {
		except = int(c.LeafIndex)
	}
	if err := t.checkCredentialTypes(ln, except); err != nil {
		return err
	}
	if n, dup := t.encKeys.get(ln.EncryptionKey); dup {
		return fmt.Errorf("%w: leaf encryption key already used by node %d", ErrDuplicateKey, n)
	}
	if i, dup := t.sigKeys.get(ln.SignatureKey); dup && int(i) != except {
		return fmt.Errorf("%w: signature key already used by leaf %d", ErrDuplicateKey, i)
	}
	return nil
}

// validateLeafAlone runs the checks of RFC 9420 §7.3 that need no other
// member: credential, signature, required capabilities, lifetime,
// extensions and source.
func validateLeafAlone(suite *ciphersuite.Suite, ln *wire.LeafNode, c LeafCheck, pol *Policy, verifySig bool) error {
	if ln == nil {
		return fmt.Errorf("%w: missing", ErrInvalidLeafNode)
	}
	if ln.LeafNodeSource != c.Source {
		return fmt.Errorf("%w: leaf_node_source %d, want %d", ErrInvalidLeafNode, ln.LeafNodeSource, c.Source)
	}
	if pol == nil {
		pol = &Policy{}
	}
	if pol.Credentials != nil {
		if err := pol.Credentials.ValidateCredential(&ln.Credential, ln.SignatureKey); err != nil {
			return fmt.Errorf("%w: credential rejected: %w", ErrInvalidLeafNode, err)
		}
	}
	if verifySig {
		if err := verifyLeafSignature(suite, ln, c.GroupID, c.LeafIndex); err != nil {
			return err
		}
	}
	caps := &ln.Capabilities
	// RFC 9420 §7.3 does not require capabilities to list the group's
	// version and cipher suite (the official vectors have leaves that do
	// not), so they are not checked here.
	if !has(caps.Credentials, uint16(ln.Credential.CredentialType)) {
		return fmt.Errorf("%w: credential type %d not in own capabilities", ErrInvalidLeafNode, ln.Credential.CredentialType)
	}
	for _, e := range ln.Extensions {
		et := uint16(e.ExtensionType)
		if !isDefaultExtension(et) && !has(caps.Extensions, et) {
			return fmt.Errorf("%w: extension %#04x not in capabilities", ErrInvalidLeafNode, et)
		}
	}
	if rc := pol.RequiredCapabilities; rc != nil {
		for _, et := range rc.ExtensionTypes {
			if !isDefaultExtension(et) && !has(caps.Extensions, et) {
				return fmt.Errorf("%w: lacks required extension %#04x", ErrInvalidLeafNode, et)
			}
		}
		for _, pt := range rc.ProposalTypes {
			if !isDefaultProposal(pt) && !has(caps.Proposals, pt) {
				return fmt.Errorf("%w: lacks required proposal %#04x", ErrInvalidLeafNode, pt)
			}
		}
		for _, ct := range rc.CredentialTypes {
			if !has(caps.Credentials, ct) {
				return fmt.Errorf("%w: lacks required credential type %d", ErrInvalidLeafNode, ct)
			}
		}
	}
	if ln.LeafNodeSource == wire.LeafNodeSourceKeyPackage {
		if ln.Lifetime == nil {
			return fmt.Errorf("%w: key_package leaf without lifetime", ErrInvalidLeafNode)
		}
		nb, na := ln.Lifetime.NotBefore, ln.Lifetime.NotAfter
		if nb > na {
			return fmt.Errorf("%w: lifetime ends before it starts", ErrInvalidLeafNode)
		}
		if !pol.Now.IsZero() {
			now := pol.Now.Unix()
			if now < 0 || uint64(now) < nb || uint64(now) > na {
				return fmt.Errorf("%w: outside its lifetime", ErrInvalidLeafNode)
			}
		}
		if pol.MaxLifetime > 0 && na-nb > uint64(pol.MaxLifetime/time.Second) {
			return fmt.Errorf("%w: lifetime longer than %v", ErrInvalidLeafNode, pol.MaxLifetime)
		}
	}
	return nil
}

// verifyLeafSignature checks SignWithLabel(., "LeafNodeTBS", LeafNodeTBS),
// whose context includes the group id and leaf index for the update and
// commit sources (RFC 9420 §7.2).
func verifyLeafSignature(suite *ciphersuite.Suite, ln *wire.LeafNode, groupID []byte, leafIndex uint32) error {
	tbs, err := ln.TBS(groupID, leafIndex)
	if err != nil {
		return fmt.Errorf("%w: encode LeafNodeTBS: %w", ErrInvalidLeafNode, err)
	}
	if err := suite.VerifyWithLabel(ln.SignatureKey, labelLeafNodeTBS, tbs, ln.Signature); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidLeafNode, err)
	}
	return nil
}

// checkCredentialTypes checks that ln's credential type is supported by every
// member and that ln supports every credential type in use (RFC 9420 §7.3),
// ignoring leaf except (the leaf ln replaces), or none if except < 0.
func (t *Tree) checkCredentialTypes(ln *wire.LeafNode, except int) error {
	ct := uint16(ln.Credential.CredentialType)
	for i, m := range t.leaves {
		if m == nil || i == except {
			continue
		}
		if !has(m.Capabilities.Credentials, ct) {
			return fmt.Errorf("%w: credential type %d not supported by leaf %d", ErrInvalidLeafNode, ct, i)
		}
		if !has(ln.Capabilities.Credentials, uint16(m.Credential.CredentialType)) {
			return fmt.Errorf("%w: does not support credential type %d of leaf %d", ErrInvalidLeafNode, m.Credential.CredentialType, i)
		}
	}
	return nil
}

// ValidateKeyPackage checks a KeyPackage on its own (RFC 9420 §10.1): version
// mls10, the given cipher suite, its leaf node valid for source key_package
// (RFC 9420 §7.3 checks that need no group), the KeyPackage signature by the
// leaf's signature key, and init_key different from the leaf encryption key.
func ValidateKeyPackage(suite *ciphersuite.Suite, kp *wire.KeyPackage, pol *Policy) error {
	if kp == nil {
		return fmt.Errorf("%w: missing", ErrInvalidKeyPackage)
	}
	if uint16(kp.Version) != protocolVersionMLS10 {
		return fmt.Errorf("%w: version %d", ErrInvalidKeyPackage, kp.Version)
	}
	if uint16(kp.CipherSuite) != uint16(suite.ID()) {
		return fmt.Errorf("%w: cipher suite %#04x, group uses %#04x", ErrInvalidKeyPackage, uint16(kp.CipherSuite), uint16(suite.ID()))
	}
	if err := validateLeafAlone(suite, &kp.LeafNode, LeafCheck{Source: wire.LeafNodeSourceKeyPackage}, pol, true); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	tbs, err := kp.TBS()
	if err != nil {
		return fmt.Errorf("%w: encode KeyPackageTBS: %w", ErrInvalidKeyPackage, err)
	}
	if err := suite.VerifyWithLabel(kp.LeafNode.SignatureKey, labelKeyPackageTBS, tbs, kp.Signature); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidKeyPackage, err)
	}
	if string(kp.InitKey) == string(kp.LeafNode.EncryptionKey) {
		return fmt.Errorf("%w: init_key equals the leaf encryption key", ErrInvalidKeyPackage)
	}
	return nil
}

// ValidateAdd checks the KeyPackage of an Add proposal against this tree:
// ValidateKeyPackage plus the group-dependent leaf checks of RFC 9420 §7.3
// (credential types, key uniqueness). The caller checks the rule that the
// client is not already a member "according to the application".
func (t *Tree) ValidateAdd(kp *wire.KeyPackage, pol *Policy) error {
	if err := ValidateKeyPackage(t.suite, kp, pol); err != nil {
		return err
	}
	ln := &kp.LeafNode
	if err := t.checkCredentialTypes(ln, -1); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKeyPackage, err)
	}
	if n, dup := t.encKeys.get(ln.EncryptionKey); dup {
		return fmt.Errorf("%w: %w: encryption key already used by node %d", ErrInvalidKeyPackage, ErrDuplicateKey, n)
	}
	if i, dup := t.sigKeys.get(ln.SignatureKey); dup {
		return fmt.Errorf("%w: %w: signature key already used by leaf %d", ErrInvalidKeyPackage, ErrDuplicateKey, i)
	}
	return nil
}

// Validate checks the integrity of a tree received when joining a group
// (RFC 9420 §12.4.3.1): every non-blank parent is parent-hash valid
// (§7.9.2); every leaf is a valid LeafNode for its source (§7.3, signatures
// checked with groupID and the leaf index as context, in parallel across
// cores); credential types are mutually supported; encryption keys of all
// nodes and signature keys of all leaves are unique; and every unmerged leaf
// is a non-blank descendant listed by each non-blank parent between it and
// the parent that lists it. The caller compares RootHash with the
// GroupContext's tree_hash.
func (t *Tree) Validate(groupID []byte, pol *Policy) error {
	if pol == nil {
		pol = &Policy{}
	}
	if t.MemberCount() == 0 {
		return fmt.Errorf("%w: no members", ErrInvalidTree)
	}
	// Uniqueness across the whole tree.
	enc := make(map[string]uint32, 2*len(t.leaves))
	sig := make(map[string]uint32, len(t.leaves))
	for n := uint32(0); n < t.Width(); n++ {
		k := t.encryptionKey(n)
		if k == nil {
			continue
		}
		if prev, dup := enc[string(k)]; dup {
			return fmt.Errorf("%w: %w: nodes %d and %d share an encryption key", ErrInvalidTree, ErrDuplicateKey, prev, n)
		}
		enc[string(k)] = n
		if n%2 == 0 {
			sk := t.leaves[n/2].SignatureKey
			if prev, dup := sig[string(sk)]; dup {
				return fmt.Errorf("%w: %w: leaves %d and %d share a signature key", ErrInvalidTree, ErrDuplicateKey, prev, n/2)
			}
			sig[string(sk)] = n / 2
		}
	}
	// Unmerged leaves (§12.4.3.1).
	for pi, pn := range t.parents {
		if pn == nil {
			continue
		}
		p := uint32(2*pi + 1)
		for _, u := range pn.UnmergedLeaves {
			if t.leaves[u] == nil {
				return fmt.Errorf("%w: unmerged leaf %d of node %d is blank", ErrInvalidTree, u, p)
			}
			for x := parent(2 * u); x != p; x = parent(x) {
				if q := t.parents[x/2]; q != nil {
					if _, ok := slices.BinarySearch(q.UnmergedLeaves, u); !ok {
						return fmt.Errorf("%w: leaf %d unmerged at node %d but not at node %d below it", ErrInvalidTree, u, p, x)
					}
				}
			}
		}
	}
	// Leaf nodes without signatures, then signatures in parallel.
	inUse := map[uint16]bool{}
	for _, m := range t.leaves {
		if m != nil {
			inUse[uint16(m.Credential.CredentialType)] = true
		}
	}
	for i, m := range t.leaves {
		if m == nil {
			continue
		}
		c := LeafCheck{Source: m.LeafNodeSource, GroupID: groupID, LeafIndex: uint32(i)}
		if m.LeafNodeSource != wire.LeafNodeSourceKeyPackage && m.LeafNodeSource != wire.LeafNodeSourceUpdate && m.LeafNodeSource != wire.LeafNodeSourceCommit {
			return fmt.Errorf("%w: leaf %d: %w: leaf_node_source %d", ErrInvalidTree, i, ErrInvalidLeafNode, m.LeafNodeSource)
		}
		if err := validateLeafAlone(t.suite, m, c, pol, false); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalidTree, i, err)
		}
		for ct := range inUse {
			if !has(m.Capabilities.Credentials, ct) {
				return fmt.Errorf("%w: leaf %d: %w: does not support credential type %d in use", ErrInvalidTree, i, ErrInvalidLeafNode, ct)
			}
		}
	}
	if err := t.verifyLeafSignatures(groupID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	if err := t.VerifyParentHashes(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidTree, err)
	}
	return nil
}

// verifyLeafSignatures verifies every leaf's signature, spreading the leaves
// over up to GOMAXPROCS goroutines. The result is deterministic: the error of
// the lowest failing leaf index.
func (t *Tree) verifyLeafSignatures(groupID []byte) error {
	members := t.Members()
	workers := runtime.GOMAXPROCS(0)
	if max := len(members) / 32; workers > max {
		workers = max
	}
	if workers <= 1 {
		for _, i := range members {
			if err := verifyLeafSignature(t.suite, t.leaves[i], groupID, i); err != nil {
				return fmt.Errorf("leaf %d: %w", i, err)
			}
		}
		return nil
	}
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	chunk := (len(members) + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo := w * chunk
		hi := min(lo+chunk, len(members))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := lo; k < hi; k++ {
				i := members[k]
				if err := verifyLeafSignature(t.suite, t.leaves[i], groupID, i); err != nil {
					errs[k] = fmt.Errorf("leaf %d: %w", i, err)
					return // later leaves of this chunk are not needed: an earlier error wins
				}
			}
		}()
	}
	wg.Wait()
	return firstNonNil(errs)
}

func firstNonNil(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// has reports whether a capability list (of any uint16-based enum type of
// the wire package) contains v. Unknown (GREASE) values never match.
func has[T ~uint16](xs []T, v uint16) bool {
	for _, x := range xs {
		if uint16(x) == v {
			return true
		}
	}
	return false
}
