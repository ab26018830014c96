package mls

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// KeyPackageCredential decodes an encoded KeyPackage MLSMessage and returns
// its leaf's credential, signature key and cipher suite, so that an
// application can check who a KeyPackage claims to be before proposing to
// add it. It checks the encoding only: the KeyPackage's signature and the
// credential are validated (RFC 9420 §10.1) when the Add is committed or
// processed.
func KeyPackageCredential(keyPackage []byte) (Credential, []byte, error) {
	m, err := decodeMessage(keyPackage)
	if err != nil {
		return Credential{}, nil, err
	}
	if m.WireFormat != wire.WireFormatKeyPackage {
		return Credential{}, nil, fmt.Errorf("%w: not a KeyPackage", ErrInvalidMessage)
	}
	ln := &m.KeyPackage.LeafNode
	return ln.Credential, ln.SignatureKey, nil
}
