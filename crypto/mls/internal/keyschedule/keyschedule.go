// Package keyschedule implements the MLS key schedule (RFC 9420 §8): the
// joiner, welcome and epoch secrets and everything derived from the epoch
// secret, the PSK secret (§8.4), the exporter (§8.5), the external key pair
// (§8.3), transcript hashes (§8.2) and the confirmation tag (§6.1).
package keyschedule

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// Epoch holds the secrets of one epoch (RFC 9420 §8, Table 4). Callers
// delete what they have consumed (RFC 9420 §9.2) by dropping the references.
type Epoch struct {
	JoinerSecret       []byte
	WelcomeSecret      []byte
	EpochSecret        []byte
	SenderDataSecret   []byte
	EncryptionSecret   []byte
	ExporterSecret     []byte
	EpochAuthenticator []byte
	ExternalSecret     []byte
	ConfirmationKey    []byte
	MembershipKey      []byte
	ResumptionPSK      []byte
	InitSecret         []byte // init_secret for the next epoch
}

// Erase zeroes every secret of the epoch in place (RFC 9420 §9.2: delete
// what is no longer needed). Slices handed out earlier share the memory and
// are zeroed too, so callers copy what must outlive the epoch, e.g. the
// resumption PSK and the next init secret, before erasing.
func (e *Epoch) Erase() {
	for _, b := range [][]byte{e.JoinerSecret, e.WelcomeSecret, e.EpochSecret, e.SenderDataSecret, e.EncryptionSecret,
		e.ExporterSecret, e.EpochAuthenticator, e.ExternalSecret, e.ConfirmationKey, e.MembershipKey, e.ResumptionPSK, e.InitSecret} {
		clear(b)
	}
}

// JoinerSecret computes ExpandWithLabel(Extract(init_secret_[n-1],
// commit_secret), "joiner", GroupContext_[n], Nh) (RFC 9420 §8).
func JoinerSecret(suite *ciphersuite.Suite, prevInitSecret, commitSecret, groupContext []byte) ([]byte, error) {
	prk := suite.Extract(prevInitSecret, commitSecret)
	js, err := suite.ExpandWithLabel(prk, "joiner", groupContext, suite.Nh())
	if err != nil {
		return nil, fmt.Errorf("joiner secret: %w", err)
	}
	return js, nil
}

// memberSecret is Extract(joiner_secret, psk_secret) (RFC 9420 §8); a nil
// pskSecret means Nh zero bytes (no PSKs).
func memberSecret(suite *ciphersuite.Suite, joinerSecret, pskSecret []byte) []byte {
	if pskSecret == nil {
		pskSecret = make([]byte, suite.Nh())
	}
	return suite.Extract(joinerSecret, pskSecret)
}

// WelcomeSecret is DeriveSecret(Extract(joiner_secret, psk_secret),
// "welcome") (RFC 9420 §8), the secret a new member needs before it knows the
// GroupContext: it decrypts the GroupInfo of a Welcome (§12.4.3.1). A nil
// pskSecret means no PSKs.
func WelcomeSecret(suite *ciphersuite.Suite, joinerSecret, pskSecret []byte) ([]byte, error) {
	ws, err := suite.DeriveSecret(memberSecret(suite, joinerSecret, pskSecret), "welcome")
	if err != nil {
		return nil, fmt.Errorf("welcome secret: %w", err)
	}
	return ws, nil
}

// FromJoiner derives the epoch's secrets from the joiner secret, the PSK
// secret (nil means Nh zero bytes) and the encoded GroupContext (RFC 9420 §8).
func FromJoiner(suite *ciphersuite.Suite, joinerSecret, pskSecret, groupContext []byte) (*Epoch, error) {
	member := memberSecret(suite, joinerSecret, pskSecret)
	e := &Epoch{JoinerSecret: bytes.Clone(joinerSecret)} // Erase must not zero the caller's copy
	var err error
	if e.WelcomeSecret, err = suite.DeriveSecret(member, "welcome"); err != nil {
		return nil, fmt.Errorf("welcome secret: %w", err)
	}
	if e.EpochSecret, err = suite.ExpandWithLabel(member, "epoch", groupContext, suite.Nh()); err != nil {
		return nil, fmt.Errorf("epoch secret: %w", err)
	}
	for _, d := range []struct {
		label string
		dst   *[]byte
	}{
		{"sender data", &e.SenderDataSecret},
		{"encryption", &e.EncryptionSecret},
		{"exporter", &e.ExporterSecret},
		{"external", &e.ExternalSecret},
		{"confirm", &e.ConfirmationKey},
		{"membership", &e.MembershipKey},
		{"resumption", &e.ResumptionPSK},
		{"authentication", &e.EpochAuthenticator},
		{"init", &e.InitSecret},
	} {
		if *d.dst, err = suite.DeriveSecret(e.EpochSecret, d.label); err != nil {
			return nil, fmt.Errorf("%s secret: %w", d.label, err)
		}
	}
	return e, nil
}

// Derive runs the whole schedule for a new epoch from the previous init
// secret, the commit secret, the PSK secret (nil for none) and the encoded
// GroupContext of the new epoch.
func Derive(suite *ciphersuite.Suite, prevInitSecret, commitSecret, pskSecret, groupContext []byte) (*Epoch, error) {
	js, err := JoinerSecret(suite, prevInitSecret, commitSecret, groupContext)
	if err != nil {
		return nil, err
	}
	return FromJoiner(suite, js, pskSecret, groupContext)
}

// WelcomeKeyNonce derives the key and nonce that encrypt the GroupInfo in a
// Welcome (RFC 9420 §12.4.3.1).
func WelcomeKeyNonce(suite *ciphersuite.Suite, welcomeSecret []byte) (key, nonce []byte, err error) {
	if key, err = suite.ExpandWithLabel(welcomeSecret, "key", nil, suite.Nk()); err != nil {
		return nil, nil, err
	}
	if nonce, err = suite.ExpandWithLabel(welcomeSecret, "nonce", nil, suite.Nn()); err != nil {
		return nil, nil, err
	}
	return key, nonce, nil
}

// Export is MLS-Exporter(label, context, length) = ExpandWithLabel(
// DeriveSecret(exporter_secret, label), "exported", Hash(context), length)
// (RFC 9420 §8.5).
func Export(suite *ciphersuite.Suite, exporterSecret []byte, label string, context []byte, length int) ([]byte, error) {
	s, err := suite.DeriveSecret(exporterSecret, label)
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	out, err := suite.ExpandWithLabel(s, "exported", suite.Hash(context), length)
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	return out, nil
}

// externalInitLabel is the HPKE exporter context of the external init
// secret (RFC 9420 §8.3).
const externalInitLabel = "MLS 1.0 external init secret"

// ExternalInitSender is the joiner's side of an external commit (RFC 9420
// §8.3): it sets up an HPKE base-mode context to the group's external_pub
// and exports the init_secret that replaces the previous epoch's. kemOutput
// goes into the ExternalInit proposal.
func ExternalInitSender(suite *ciphersuite.Suite, externalPub []byte) (kemOutput, initSecret []byte, err error) {
	kemOutput, initSecret, err = suite.ExportSender(externalPub, nil, []byte(externalInitLabel), suite.Nh())
	if err != nil {
		return nil, nil, fmt.Errorf("external init: %w", err)
	}
	return kemOutput, initSecret, nil
}

// ExternalInitReceiver is the members' side of an external commit (RFC 9420
// §8.3): with the external private key of the epoch (ExternalKeyPair) it
// recovers the init_secret from the ExternalInit proposal's kem_output.
func ExternalInitReceiver(suite *ciphersuite.Suite, externalPriv, kemOutput []byte) ([]byte, error) {
	s, err := suite.ExportReceiver(externalPriv, kemOutput, nil, []byte(externalInitLabel), suite.Nh())
	if err != nil {
		return nil, fmt.Errorf("external init: %w", err)
	}
	return s, nil
}

// ExternalKeyPair derives the group's external HPKE key pair from the
// external secret (RFC 9420 §8.3).
func ExternalKeyPair(suite *ciphersuite.Suite, externalSecret []byte) (priv, pub []byte, err error) {
	return suite.DeriveKEMKeyPair(externalSecret)
}

// PSK is one pre-shared key, in the order of the PreSharedKey proposals
// (RFC 9420 §8.4). ID is the encoded PreSharedKeyID (codec.Marshal of a
// wire.PreSharedKeyID).
type PSK struct {
	ID     []byte
	Secret []byte
}

// NewPSK pairs a PreSharedKeyID with its secret for PSKSecret.
func NewPSK(id *wire.PreSharedKeyID, secret []byte) (PSK, error) {
	b, err := codec.Marshal(id)
	if err != nil {
		return PSK{}, fmt.Errorf("encode psk id: %w", err)
	}
	return PSK{ID: b, Secret: secret}, nil
}

// PSKSecret combines PSKs into psk_secret (RFC 9420 §8.4): with
// psk_input_[i] = ExpandWithLabel(Extract(0, psk_[i]), "derived psk",
// PSKLabel{id, index, count}, Nh), psk_secret_[i+1] = Extract(psk_input_[i],
// psk_secret_[i]) from psk_secret_[0] = 0. No PSKs give Nh zero bytes.
func PSKSecret(suite *ciphersuite.Suite, psks []PSK) ([]byte, error) {
	zero := make([]byte, suite.Nh())
	secret := zero
	if len(psks) > 0xffff {
		return nil, fmt.Errorf("psk secret: %d psks", len(psks))
	}
	for i, p := range psks {
		var w codec.Writer
		w.WriteRaw(p.ID)
		w.WriteUint16(uint16(i))
		w.WriteUint16(uint16(len(psks)))
		label, err := w.Bytes()
		if err != nil {
			return nil, fmt.Errorf("psk label: %w", err)
		}
		in, err := suite.ExpandWithLabel(suite.Extract(zero, p.Secret), "derived psk", label, suite.Nh())
		if err != nil {
			return nil, fmt.Errorf("psk input %d: %w", i, err)
		}
		secret = suite.Extract(in, secret)
	}
	return secret, nil
}

// ConfirmedTranscriptHash is Hash(interim_transcript_hash_[n-1] ||
// ConfirmedTranscriptHashInput) (RFC 9420 §8.2); input is the encoded
// ConfirmedTranscriptHashInput (wire_format, FramedContent, signature).
func ConfirmedTranscriptHash(suite *ciphersuite.Suite, interimBefore, input []byte) []byte {
	return suite.Hash(append(append([]byte(nil), interimBefore...), input...))
}

// InterimTranscriptHash is Hash(confirmed_transcript_hash ||
// InterimTranscriptHashInput{confirmation_tag}) (RFC 9420 §8.2).
func InterimTranscriptHash(suite *ciphersuite.Suite, confirmed, confirmationTag []byte) []byte {
	var w codec.Writer
	w.WriteRaw(confirmed)
	w.WriteOpaque(confirmationTag)
	b, _ := w.Bytes() // a MAC always fits a varint length
	return suite.Hash(b)
}

// ConfirmationTag is MAC(confirmation_key, confirmed_transcript_hash)
// (RFC 9420 §6.1).
func ConfirmationTag(suite *ciphersuite.Suite, confirmationKey, confirmedTranscriptHash []byte) []byte {
	return suite.MAC(confirmationKey, confirmedTranscriptHash)
}

// ErrConfirmationTag means a commit's or GroupInfo's confirmation tag does
// not match the key schedule of its epoch.
var ErrConfirmationTag = errors.New("mls key schedule: invalid confirmation tag")

// VerifyConfirmationTag checks tag against MAC(confirmation_key,
// confirmed_transcript_hash) in constant time (RFC 9420 §6.1, §12.4.2,
// §12.4.3.1) and fails with ErrConfirmationTag otherwise.
func VerifyConfirmationTag(suite *ciphersuite.Suite, confirmationKey, confirmedTranscriptHash, tag []byte) error {
	if !hmac.Equal(ConfirmationTag(suite, confirmationKey, confirmedTranscriptHash), tag) {
		return ErrConfirmationTag
	}
	return nil
}
