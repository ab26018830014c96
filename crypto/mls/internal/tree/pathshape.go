package tree

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// CheckPathCiphertexts checks what a party without private keys can check
// of sender's UpdatePath (RFC 9420 §7.6, §12.4.2): one path node per node of
// the filtered direct path, and for each one ciphertext per node of its
// copath child's resolution, leaving out exclude (the leaves the same
// commit adds). t is the tree after MergeUpdatePath, as for
// DecryptUpdatePath, which makes the same checks for members.
func (t *Tree) CheckPathCiphertexts(sender uint32, path *wire.UpdatePath, exclude []uint32) error {
	if sender >= t.LeafCount() {
		return fmt.Errorf("check update path: %w", ErrInvalidLeafIndex)
	}
	fdp, copath := t.filteredDirectPath(sender)
	if len(path.Nodes) != len(fdp) {
		return fmt.Errorf("check update path: %w: %d nodes for a filtered direct path of %d", ErrInvalidUpdatePath, len(path.Nodes), len(fdp))
	}
	ex := excludeSet(exclude)
	var resolution []uint32
	for m := range fdp {
		resolution = t.resolve(copath[m], ex, resolution[:0])
		if len(path.Nodes[m].EncryptedPathSecret) != len(resolution) {
			return fmt.Errorf("check update path: %w: node %d has %d ciphertexts for a resolution of %d", ErrInvalidUpdatePath, fdp[m], len(path.Nodes[m].EncryptedPathSecret), len(resolution))
		}
	}
	return nil
}
