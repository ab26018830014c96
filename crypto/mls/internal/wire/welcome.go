package wire

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// PathSecret carries the path secret of the lowest common ancestor of a
// joiner and the committer (RFC 9420 §12.4.3.1).
type PathSecret struct{ PathSecret []byte }

// GroupSecrets is the plaintext of an EncryptedGroupSecrets (RFC 9420
// §12.4.3.1). PathSecret is nil when the commit had no path or the joiner's
// common ancestor received none.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   *PathSecret
	PSKs         []PreSharedKeyID
}

// MarshalMLS encodes the group secrets.
func (g *GroupSecrets) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(g.JoinerSecret)
	w.WriteOptional(g.PathSecret != nil, func(w *codec.Writer) { w.WriteOpaque(g.PathSecret.PathSecret) })
	WritePreSharedKeyIDs(w, g.PSKs)
}

// UnmarshalMLS decodes group secrets.
func (g *GroupSecrets) UnmarshalMLS(r *codec.Reader) error {
	*g = GroupSecrets{}
	var err error
	if g.JoinerSecret, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("group secrets joiner secret: %w", err)
	}
	present, err := r.ReadOptional()
	if err != nil {
		return fmt.Errorf("group secrets path secret: %w", err)
	}
	if present {
		g.PathSecret = &PathSecret{}
		if g.PathSecret.PathSecret, err = r.ReadOpaque(); err != nil {
			return fmt.Errorf("group secrets path secret: %w", err)
		}
	}
	if err = ReadPreSharedKeyIDs(r, &g.PSKs); err != nil {
		return fmt.Errorf("group secrets psks: %w", err)
	}
	return nil
}

// EncryptedGroupSecrets is the GroupSecrets for one new member, HPKE-encrypted
// to its KeyPackage's init key and named by its KeyPackageRef (RFC 9420
// §12.4.3.1).
type EncryptedGroupSecrets struct {
	NewMember             []byte
	EncryptedGroupSecrets HPKECiphertext
}

// MarshalMLS encodes the entry.
func (e *EncryptedGroupSecrets) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(e.NewMember)
	e.EncryptedGroupSecrets.MarshalMLS(w)
}

// UnmarshalMLS decodes an entry.
func (e *EncryptedGroupSecrets) UnmarshalMLS(r *codec.Reader) error {
	*e = EncryptedGroupSecrets{}
	var err error
	if e.NewMember, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("encrypted group secrets new member: %w", err)
	}
	if err = e.EncryptedGroupSecrets.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("encrypted group secrets: %w", err)
	}
	return nil
}

// Welcome invites new members into a group (RFC 9420 §12.4.3.1).
type Welcome struct {
	CipherSuite        ciphersuite.ID
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

// MarshalMLS encodes the Welcome.
func (wl *Welcome) MarshalMLS(w *codec.Writer) {
	w.WriteUint16(uint16(wl.CipherSuite))
	w.WriteVector(func(w *codec.Writer) {
		for i := range wl.Secrets {
			wl.Secrets[i].MarshalMLS(w)
		}
	})
	w.WriteOpaque(wl.EncryptedGroupInfo)
}

// UnmarshalMLS decodes a Welcome with at most MaxWelcomeSecrets entries.
func (wl *Welcome) UnmarshalMLS(r *codec.Reader) error {
	*wl = Welcome{}
	cs, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("welcome cipher suite: %w", err)
	}
	wl.CipherSuite = ciphersuite.ID(cs)
	err = r.ReadVector(func(r *codec.Reader) error {
		if len(wl.Secrets) >= MaxWelcomeSecrets {
			return fmt.Errorf("%w: more than %d secrets", ErrTooMany, MaxWelcomeSecrets)
		}
		var e EncryptedGroupSecrets
		if err := e.UnmarshalMLS(r); err != nil {
			return err
		}
		wl.Secrets = append(wl.Secrets, e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("welcome secrets: %w", err)
	}
	if wl.EncryptedGroupInfo, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("welcome encrypted group info: %w", err)
	}
	return nil
}

// GroupInfo describes a group for joiners, signed by a member (RFC 9420
// §12.4.3). Signer is the signing member's leaf index.
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      []Extension
	ConfirmationTag []byte
	Signer          uint32
	Signature       []byte
}

func (g *GroupInfo) marshalContent(w *codec.Writer) {
	g.GroupContext.MarshalMLS(w)
	WriteExtensions(w, g.Extensions)
	w.WriteOpaque(g.ConfirmationTag)
	w.WriteUint32(g.Signer)
}

// MarshalMLS encodes the GroupInfo.
func (g *GroupInfo) MarshalMLS(w *codec.Writer) {
	g.marshalContent(w)
	w.WriteOpaque(g.Signature)
}

// TBS returns the GroupInfoTBS encoding its signature covers (RFC 9420
// §12.4.3): every field but the signature.
func (g *GroupInfo) TBS() ([]byte, error) {
	var w codec.Writer
	g.marshalContent(&w)
	return w.Bytes()
}

// UnmarshalMLS decodes a GroupInfo.
func (g *GroupInfo) UnmarshalMLS(r *codec.Reader) error {
	*g = GroupInfo{}
	var err error
	if err = g.GroupContext.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("group info: %w", err)
	}
	if err = ReadExtensions(r, &g.Extensions); err != nil {
		return fmt.Errorf("group info extensions: %w", err)
	}
	if g.ConfirmationTag, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("group info confirmation tag: %w", err)
	}
	if g.Signer, err = r.ReadUint32(); err != nil {
		return fmt.Errorf("group info signer: %w", err)
	}
	if g.Signature, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("group info signature: %w", err)
	}
	return nil
}

// ExternalSender is a party outside the group allowed to send proposals
// (RFC 9420 §12.1.8.1).
type ExternalSender struct {
	SignatureKey []byte
	Credential   Credential
}

// MarshalMLS encodes the external sender.
func (e *ExternalSender) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(e.SignatureKey)
	e.Credential.MarshalMLS(w)
}

// UnmarshalMLS decodes an external sender.
func (e *ExternalSender) UnmarshalMLS(r *codec.Reader) error {
	*e = ExternalSender{}
	var err error
	if e.SignatureKey, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("external sender signature key: %w", err)
	}
	if err = e.Credential.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("external sender: %w", err)
	}
	return nil
}

// ExternalSenders is the extension_data of the external_senders group
// context extension (RFC 9420 §12.1.8.1): ExternalSender external_senders<V>.
// Senders are addressed by their index in this list.
type ExternalSenders []ExternalSender

// MarshalMLS encodes the list.
func (es *ExternalSenders) MarshalMLS(w *codec.Writer) {
	w.WriteVector(func(w *codec.Writer) {
		for i := range *es {
			(*es)[i].MarshalMLS(w)
		}
	})
}

// UnmarshalMLS decodes the list, at most MaxExternalSenders entries.
func (es *ExternalSenders) UnmarshalMLS(r *codec.Reader) error {
	*es = nil
	err := r.ReadVector(func(r *codec.Reader) error {
		if len(*es) >= MaxExternalSenders {
			return fmt.Errorf("%w: more than %d external senders", ErrTooMany, MaxExternalSenders)
		}
		var e ExternalSender
		if err := e.UnmarshalMLS(r); err != nil {
			return err
		}
		*es = append(*es, e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("external senders: %w", err)
	}
	return nil
}

// RequiredCapabilities is the extension_data of the required_capabilities
// group context extension (RFC 9420 §11.1): what every member must support
// beyond the defaults.
type RequiredCapabilities struct {
	ExtensionTypes  []ExtensionType
	ProposalTypes   []ProposalType
	CredentialTypes []CredentialType
}

// MarshalMLS encodes the required capabilities.
func (c *RequiredCapabilities) MarshalMLS(w *codec.Writer) {
	writeU16s(w, c.ExtensionTypes)
	writeU16s(w, c.ProposalTypes)
	writeU16s(w, c.CredentialTypes)
}

// UnmarshalMLS decodes required capabilities.
func (c *RequiredCapabilities) UnmarshalMLS(r *codec.Reader) error {
	if err := readU16s(r, &c.ExtensionTypes); err != nil {
		return fmt.Errorf("required capabilities extensions: %w", err)
	}
	if err := readU16s(r, &c.ProposalTypes); err != nil {
		return fmt.Errorf("required capabilities proposals: %w", err)
	}
	if err := readU16s(r, &c.CredentialTypes); err != nil {
		return fmt.Errorf("required capabilities credentials: %w", err)
	}
	return nil
}

// ExternalPub is the extension_data of the external_pub GroupInfo extension
// (RFC 9420 §12.4.3.2): the HPKE public key external joiners encapsulate to.
type ExternalPub struct{ ExternalPub []byte }

// MarshalMLS encodes the extension data.
func (e *ExternalPub) MarshalMLS(w *codec.Writer) { w.WriteOpaque(e.ExternalPub) }

// UnmarshalMLS decodes the extension data.
func (e *ExternalPub) UnmarshalMLS(r *codec.Reader) error {
	var err error
	if e.ExternalPub, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("external pub: %w", err)
	}
	return nil
}

// ApplicationID is the extension_data of the application_id LeafNode
// extension (RFC 9420 §5.3.3).
type ApplicationID struct{ ApplicationID []byte }

// MarshalMLS encodes the extension data.
func (a *ApplicationID) MarshalMLS(w *codec.Writer) { w.WriteOpaque(a.ApplicationID) }

// UnmarshalMLS decodes the extension data.
func (a *ApplicationID) UnmarshalMLS(r *codec.Reader) error {
	var err error
	if a.ApplicationID, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("application id: %w", err)
	}
	return nil
}

// FindExtension returns the data of the extension of type t in es and
// whether it is present.
func FindExtension(es []Extension, t ExtensionType) ([]byte, bool) {
	for _, e := range es {
		if e.ExtensionType == t {
			return e.ExtensionData, true
		}
	}
	return nil, false
}

// DecodeExtension decodes the extension of type t in es into v. It reports
// false, with a nil error, when the extension is absent; the extension data
// must be exactly one encoded v.
func DecodeExtension(es []Extension, t ExtensionType, v codec.Unmarshaler) (bool, error) {
	data, ok := FindExtension(es, t)
	if !ok {
		return false, nil
	}
	if err := codec.Unmarshal(data, v); err != nil {
		return true, fmt.Errorf("extension %#04x: %w", uint16(t), err)
	}
	return true, nil
}

// NewExtension encodes v as the data of an extension of type t.
func NewExtension(t ExtensionType, v codec.Marshaler) (Extension, error) {
	data, err := codec.Marshal(v)
	if err != nil {
		return Extension{}, fmt.Errorf("extension %#04x: %w", uint16(t), err)
	}
	return Extension{ExtensionType: t, ExtensionData: data}, nil
}
