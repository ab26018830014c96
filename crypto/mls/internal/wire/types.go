// Package wire defines the RFC 9420 structures that travel on the wire or
// are hashed and signed, each with MarshalMLS and UnmarshalMLS in the TLS
// presentation language of package codec, plus the to-be-signed, to-be-MACed
// and hash-input encodings built from them (LeafNodeTBS, KeyPackageTBS,
// FramedContentTBS, AuthenticatedContentTBM, transcript hash inputs,
// GroupInfoTBS, TreeHashInput, ParentHashInput, PSKLabel).
//
// Decoding is strict: the protocol version of an MLSMessage must be mls10,
// and enum values that select a structure's body (wire format, content type,
// sender type, proposal type, credential type, leaf node source, node type,
// PSK type) must be known, or ErrUnknownValue is returned. Extension types and
// capability lists are open and round-trip unchanged (RFC 9420 §13), as do
// GREASE values there. Every decoded value re-encodes to the bytes it came
// from. Memory is bounded by the input: the codec checks each length against
// the bytes that remain, and vectors of small elements that decode into large
// Go values also have element-count limits (limits.go).
package wire

import (
	"errors"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// ErrUnknownValue means an enum value that selects a structure's body is not
// one this package knows, so the rest cannot be decoded.
var ErrUnknownValue = errors.New("mls wire: unknown value")

// ProtocolVersion is an MLS protocol version (RFC 9420 §6).
type ProtocolVersion uint16

// ProtocolVersionMLS10 is mls10.
const ProtocolVersionMLS10 ProtocolVersion = 1

// CredentialType identifies a credential format (RFC 9420 §5.3).
type CredentialType uint16

// Credential types of RFC 9420 §17.5.
const (
	CredentialTypeBasic CredentialType = 1
	CredentialTypeX509  CredentialType = 2
)

// ExtensionType identifies an extension (RFC 9420 §13.4).
type ExtensionType uint16

// Extension types of RFC 9420 §17.3.
const (
	ExtensionTypeApplicationID        ExtensionType = 1
	ExtensionTypeRatchetTree          ExtensionType = 2
	ExtensionTypeRequiredCapabilities ExtensionType = 3
	ExtensionTypeExternalPub          ExtensionType = 4
	ExtensionTypeExternalSenders      ExtensionType = 5
)

// ProposalType identifies a proposal (RFC 9420 §12.1).
type ProposalType uint16

// Proposal types of RFC 9420 §17.4.
const (
	ProposalTypeAdd                    ProposalType = 1
	ProposalTypeUpdate                 ProposalType = 2
	ProposalTypeRemove                 ProposalType = 3
	ProposalTypePSK                    ProposalType = 4
	ProposalTypeReInit                 ProposalType = 5
	ProposalTypeExternalInit           ProposalType = 6
	ProposalTypeGroupContextExtensions ProposalType = 7
)

// LeafNodeSource says how a LeafNode came to be (RFC 9420 §7.2).
type LeafNodeSource uint8

// Leaf node sources.
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

// NodeType distinguishes leaf and parent nodes (RFC 9420 §7.8).
type NodeType uint8

// Node types.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// Credential binds identities to a signature key (RFC 9420 §5.3).
// Identity is set for basic credentials, Certificates (DER, end-entity
// first) for X.509.
type Credential struct {
	CredentialType CredentialType
	Identity       []byte
	Certificates   [][]byte
}

// MarshalMLS encodes the credential.
func (c *Credential) MarshalMLS(w *codec.Writer) {
	w.WriteUint16(uint16(c.CredentialType))
	switch c.CredentialType {
	case CredentialTypeBasic:
		w.WriteOpaque(c.Identity)
	case CredentialTypeX509:
		w.WriteVector(func(w *codec.Writer) {
			for _, x := range c.Certificates {
				w.WriteOpaque(x)
			}
		})
	}
}

// UnmarshalMLS decodes a credential; unknown types fail with ErrUnknownValue.
func (c *Credential) UnmarshalMLS(r *codec.Reader) error {
	t, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	*c = Credential{CredentialType: CredentialType(t)}
	switch c.CredentialType {
	case CredentialTypeBasic:
		if c.Identity, err = r.ReadOpaque(); err != nil {
			return fmt.Errorf("credential identity: %w", err)
		}
		return nil
	case CredentialTypeX509:
		err = r.ReadVector(func(r *codec.Reader) error {
			b, err := r.ReadOpaque()
			c.Certificates = append(c.Certificates, b)
			return err
		})
		if err != nil {
			return fmt.Errorf("credential certificates: %w", err)
		}
		return nil
	}
	return fmt.Errorf("%w: credential type %d", ErrUnknownValue, t)
}

// Capabilities lists what a client supports (RFC 9420 §7.2). Unknown
// (GREASE) values round-trip.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []ciphersuite.ID
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

func writeU16s[T ~uint16](w *codec.Writer, xs []T) {
	w.WriteVector(func(w *codec.Writer) {
		for _, x := range xs {
			w.WriteUint16(uint16(x))
		}
	})
}

// readU16s reads a vector of uint16 values. Its byte length fixes the
// element count, so the slice is allocated once.
func readU16s[T ~uint16](r *codec.Reader, xs *[]T) error {
	*xs = nil
	return r.ReadNested(func(r *codec.Reader) error {
		if r.Len()%2 != 0 {
			return fmt.Errorf("%w: vector of uint16 has odd length %d", codec.ErrTruncated, r.Len())
		}
		if r.Len() > 0 {
			*xs = make([]T, 0, r.Len()/2)
		}
		for !r.Empty() {
			v, err := r.ReadUint16()
			if err != nil {
				return err
			}
			*xs = append(*xs, T(v))
		}
		return nil
	})
}

// MarshalMLS encodes the capabilities.
func (c *Capabilities) MarshalMLS(w *codec.Writer) {
	writeU16s(w, c.Versions)
	writeU16s(w, c.CipherSuites)
	writeU16s(w, c.Extensions)
	writeU16s(w, c.Proposals)
	writeU16s(w, c.Credentials)
}

// UnmarshalMLS decodes capabilities.
func (c *Capabilities) UnmarshalMLS(r *codec.Reader) error {
	if err := readU16s(r, &c.Versions); err != nil {
		return fmt.Errorf("capabilities versions: %w", err)
	}
	if err := readU16s(r, &c.CipherSuites); err != nil {
		return fmt.Errorf("capabilities cipher suites: %w", err)
	}
	if err := readU16s(r, &c.Extensions); err != nil {
		return fmt.Errorf("capabilities extensions: %w", err)
	}
	if err := readU16s(r, &c.Proposals); err != nil {
		return fmt.Errorf("capabilities proposals: %w", err)
	}
	if err := readU16s(r, &c.Credentials); err != nil {
		return fmt.Errorf("capabilities credentials: %w", err)
	}
	return nil
}

// Extension is a typed, opaque extension value (RFC 9420 §13.4).
type Extension struct {
	ExtensionType ExtensionType
	ExtensionData []byte
}

// WriteExtensions writes Extension extensions<V>.
func WriteExtensions(w *codec.Writer, es []Extension) {
	w.WriteVector(func(w *codec.Writer) {
		for _, e := range es {
			w.WriteUint16(uint16(e.ExtensionType))
			w.WriteOpaque(e.ExtensionData)
		}
	})
}

// ReadExtensions reads Extension extensions<V>. Duplicate extension types
// are rejected (RFC 9420 §13.4).
func ReadExtensions(r *codec.Reader, es *[]Extension) error {
	*es = nil
	seen := map[ExtensionType]bool{}
	return r.ReadVector(func(r *codec.Reader) error {
		t, err := r.ReadUint16()
		if err != nil {
			return err
		}
		d, err := r.ReadOpaque()
		if err != nil {
			return err
		}
		if seen[ExtensionType(t)] {
			return fmt.Errorf("%w: duplicate extension %#04x", codec.ErrInvalidValue, t)
		}
		seen[ExtensionType(t)] = true
		*es = append(*es, Extension{ExtensionType: ExtensionType(t), ExtensionData: d})
		return nil
	})
}

// Lifetime bounds a key_package leaf's validity, in seconds since the Unix
// epoch (RFC 9420 §7.2).
type Lifetime struct{ NotBefore, NotAfter uint64 }
