// Package identity binds medicus devices to users: every user holds one
// Ed25519 identity key (on their devices, never on the server), and every
// device's MLS signature key is certified by it in a device credential that
// travels inside the MLS BasicCredential of the device's leaf.
//
// Contacts pin a user's identity key on first use and compare it out of band
// with a safety number (SafetyNumber). A homeserver, which does not hold the
// identity key, cannot make a credential that names one of the user's
// devices, so it cannot add a device to a group (DESIGN.md, principle 2).
package identity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"
)

// Errors callers distinguish with errors.Is.
var (
	// ErrMalformed means a credential or key could not be decoded.
	ErrMalformed = errors.New("identity: malformed credential")
	// ErrBadSignature means a credential's signature does not verify.
	ErrBadSignature = errors.New("identity: credential signature does not verify")
)

// credentialVersion is the first byte of an encoded DeviceCredential.
const credentialVersion = 1

// maxIDLen bounds user and device identifiers in a credential.
const maxIDLen = 255

// credentialLabel separates credential signatures from every other use of
// the identity key.
const credentialLabel = "medicus device credential v1"

// Key is a user's identity key pair.
type Key struct {
	priv ed25519.PrivateKey
}

// GenerateKey returns a fresh identity key.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	return &Key{priv: priv}, nil
}

// KeyFromSeed returns the identity key with the given 32-byte seed, as
// returned by Seed.
func KeyFromSeed(seed []byte) (*Key, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: identity key seed must be %d bytes", ErrMalformed, ed25519.SeedSize)
	}
	return &Key{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// Seed returns the private seed; keep it secret (the client stores it in its
// encrypted state and exports it only encrypted).
func (k *Key) Seed() []byte { return bytes.Clone(k.priv.Seed()) }

// Public returns the public identity key.
func (k *Key) Public() ed25519.PublicKey {
	return bytes.Clone(k.priv.Public().(ed25519.PublicKey))
}

// DeviceCredential certifies that SignatureKey (a device's MLS signature
// public key) belongs to device DeviceID of user UserID, whose identity key
// is IdentityKey.
type DeviceCredential struct {
	UserID      string
	DeviceID    string
	IdentityKey ed25519.PublicKey
	Signature   []byte
}

func signedBytes(userID, deviceID string, signatureKey []byte) []byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte(credentialLabel))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(userID)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(deviceID)) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(signatureKey) })
	return b.BytesOrPanic()
}

// Certify returns the credential binding signatureKey to the device.
func (k *Key) Certify(userID, deviceID string, signatureKey []byte) (*DeviceCredential, error) {
	if err := checkID(userID); err != nil {
		return nil, err
	}
	if err := checkID(deviceID); err != nil {
		return nil, err
	}
	return &DeviceCredential{
		UserID:      userID,
		DeviceID:    deviceID,
		IdentityKey: k.Public(),
		Signature:   ed25519.Sign(k.priv, signedBytes(userID, deviceID, signatureKey)),
	}, nil
}

func checkID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: identifier must be 1-%d bytes", ErrMalformed, maxIDLen)
	}
	return nil
}

// Verify checks that the credential's signature binds signatureKey to its
// user and device under its IdentityKey. Whether IdentityKey is the right
// key for UserID is the caller's decision (see Pins).
func (c *DeviceCredential) Verify(signatureKey []byte) error {
	if len(c.IdentityKey) != ed25519.PublicKeySize {
		return ErrMalformed
	}
	if !ed25519.Verify(c.IdentityKey, signedBytes(c.UserID, c.DeviceID, signatureKey), c.Signature) {
		return fmt.Errorf("%w: device %s of %s", ErrBadSignature, c.DeviceID, c.UserID)
	}
	return nil
}

// Marshal encodes the credential for an MLS BasicCredential identity.
func (c *DeviceCredential) Marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(credentialVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.UserID)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.DeviceID)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.IdentityKey) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.Signature) })
	return b.BytesOrPanic()
}

// ParseCredential decodes a credential made by Marshal. It checks the
// encoding only; call Verify for the signature.
func ParseCredential(data []byte) (*DeviceCredential, error) {
	s := cryptobyte.String(data)
	var version uint8
	var user, device, key, sig cryptobyte.String
	if !s.ReadUint8(&version) || version != credentialVersion ||
		!s.ReadUint8LengthPrefixed(&user) || !s.ReadUint8LengthPrefixed(&device) ||
		!s.ReadUint8LengthPrefixed(&key) || !s.ReadUint8LengthPrefixed(&sig) || !s.Empty() {
		return nil, ErrMalformed
	}
	if len(user) == 0 || len(device) == 0 || len(key) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return nil, ErrMalformed
	}
	return &DeviceCredential{UserID: string(user), DeviceID: string(device), IdentityKey: bytes.Clone(key), Signature: bytes.Clone(sig)}, nil
}

// fingerprintIterations is the number of SHA-512 iterations per user in a
// safety number, as in Signal's displayable fingerprints: it makes finding
// a second key with the same digits costly.
const fingerprintIterations = 5200

// userDigits returns 30 decimal digits derived from a user's id and key.
func userDigits(userID string, key ed25519.PublicKey) string {
	h := sha512.New()
	h.Write([]byte("medicus safety number v1\x00"))
	h.Write(key)
	h.Write([]byte(userID))
	d := h.Sum(nil)
	for range fingerprintIterations - 1 {
		h.Reset()
		h.Write(d)
		h.Write(key)
		d = h.Sum(d[:0])
	}
	var sb strings.Builder
	for i := range 6 {
		// Five bytes give a 40-bit number, shown as 5 digits modulo 100000.
		var v uint64
		for _, c := range d[i*5 : i*5+5] {
			v = v<<8 | uint64(c)
		}
		fmt.Fprintf(&sb, "%05d", v%100000)
	}
	return sb.String()
}

// SafetyNumber returns the 60-digit number two users compare out of band
// (in person, by phone) to confirm that each holds the other's real identity
// key. It is the same for both, whatever the order of the arguments, and is
// shown in 12 groups of five digits.
func SafetyNumber(userA string, keyA ed25519.PublicKey, userB string, keyB ed25519.PublicKey) string {
	a, b := userDigits(userA, keyA), userDigits(userB, keyB)
	if a > b {
		a, b = b, a
	}
	all := a + b
	groups := make([]string, 0, 12)
	for i := 0; i < len(all); i += 5 {
		groups = append(groups, all[i:i+5])
	}
	return strings.Join(groups, " ")
}

// signingInput separates signatures over application data (label says
// which kind) from device credentials and from each other.
func signingInput(label string, msg []byte) []byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte("medicus identity signature v1"))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(label)) })
	b.AddBytes(msg)
	return b.BytesOrPanic()
}

// Sign signs msg with the identity key for the purpose named by label
// (e.g. "consent"), as the user's own statement, e.g. a patient's consent.
func (k *Key) Sign(label string, msg []byte) []byte {
	return ed25519.Sign(k.priv, signingInput(label, msg))
}

// VerifySignature checks a signature made by Sign with the identity key pub.
func VerifySignature(pub ed25519.PublicKey, label string, msg, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, signingInput(label, msg), sig) {
		return ErrBadSignature
	}
	return nil
}
