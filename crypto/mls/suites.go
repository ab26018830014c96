package mls

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
)

// Post-quantum cipher suites (draft-ietf-mls-pq-ciphersuites-06) under
// private-use codepoints; see package ciphersuite for their definitions. A
// room chooses its suite when its group is created (CreateGroup); members'
// KeyPackages must be of the same suite.
const (
	// SuiteXWing is MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519
	// (0xF001): X-Wing hybrid KEM, classical Ed25519 signatures.
	SuiteXWing = ciphersuite.MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519
	// SuiteMLKEM1024MLDSA87 is MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87
	// (0xF002): ML-KEM-1024 and ML-DSA-87 signatures.
	SuiteMLKEM1024MLDSA87 = ciphersuite.MLS_256_MLKEM1024_AES256GCM_SHA384_MLDSA87
	// SuiteDefault is the classical suite 0x0001 of RFC 9420.
	SuiteDefault = ciphersuite.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
)

// ParseCipherSuite parses a cipher suite given by registry name
// (case-insensitive) or number ("0xf001", "1"), e.g. from a command-line
// flag or a room's settings. It fails, wrapping ciphersuite.ErrUnsupported,
// for a suite this package does not implement.
func ParseCipherSuite(s string) (CipherSuite, error) {
	id, err := ciphersuite.ParseID(s)
	if err != nil {
		return 0, fmt.Errorf("mls: %w", err)
	}
	return id, nil
}

// CipherSuiteName returns the registry name of a cipher suite, or its
// number in hexadecimal if unknown.
func CipherSuiteName(s CipherSuite) string { return s.Name() }
