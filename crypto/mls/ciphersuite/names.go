package ciphersuite

import (
	"fmt"
	"strconv"
	"strings"
)

// names are the registry names of the supported suites (RFC 9420 §17.1,
// draft-ietf-mls-pq-ciphersuites-06 §3.1).
var names = map[ID]string{
	MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519:        "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519",
	MLS_128_DHKEMP256_AES128GCM_SHA256_P256:             "MLS_128_DHKEMP256_AES128GCM_SHA256_P256",
	MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519: "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519",
	MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448:            "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448",
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521:             "MLS_256_DHKEMP521_AES256GCM_SHA512_P521",
	MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448:     "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448",
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384:             "MLS_256_DHKEMP384_AES256GCM_SHA384_P384",
	MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519:     "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519",
	MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87:          "MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87",
}

// Name returns the suite's registry name, or its hexadecimal value if
// unknown. (ID has no String method so that %x and %v keep printing the
// number.)
func (id ID) Name() string {
	if n, ok := names[id]; ok {
		return n
	}
	return fmt.Sprintf("%#04x", uint16(id))
}

// PostQuantum reports whether the suite's KEM resists a quantum attacker
// (ML-KEM alone or in a hybrid), so that recorded traffic stays
// confidential; signatures may still be classical.
func (id ID) PostQuantum() bool {
	return id == MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519 || id == MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87
}

// ParseID parses a suite given by registry name (case-insensitive, e.g.
// "MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519") or by number in
// decimal or 0x-hexadecimal (e.g. "0xf001", "1"). It returns ErrUnsupported
// for a suite this package does not implement.
func ParseID(s string) (ID, error) {
	s = strings.TrimSpace(s)
	for id, n := range names {
		if strings.EqualFold(n, s) {
			return id, nil
		}
	}
	v, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrUnsupported, s)
	}
	if _, ok := suites[ID(v)]; !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnsupported, s)
	}
	return ID(v), nil
}

// SignatureScheme returns the TLS SignatureScheme name of the suite's
// signature algorithm (RFC 9420 §17.1, RFC 8446 §4.2.3), e.g. "ed25519",
// or "" for an unsupported suite. Suites with the same scheme accept the
// same signature keys, so one device key serves rooms of either suite
// (0x0001, 0x0003 and 0xF001 all use ed25519).
func (id ID) SignatureScheme() string {
	s, ok := suites[id]
	if !ok {
		return ""
	}
	switch s.sig {
	case sigEd25519:
		return "ed25519"
	case sigEd448:
		return "ed448"
	case sigMLDSA87:
		return "mldsa87"
	}
	switch s.curve.Params().BitSize {
	case 256:
		return "ecdsa_secp256r1_sha256"
	case 384:
		return "ecdsa_secp384r1_sha384"
	}
	return "ecdsa_secp521r1_sha512"
}
