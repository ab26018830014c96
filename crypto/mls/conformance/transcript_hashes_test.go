package conformance

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/ciphersuite"
	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/keyschedule"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

func init() { register("transcript-hashes", runTranscriptHashes) }

// transcriptHashesCase is one case of transcript-hashes.json
// (test-vectors.md, "Transcript Hashes").
type transcriptHashesCase struct {
	CipherSuite                  uint16   `json:"cipher_suite"`
	ConfirmationKey              hexBytes `json:"confirmation_key"`
	AuthenticatedContent         hexBytes `json:"authenticated_content"`
	InterimTranscriptHashBefore  hexBytes `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAfter hexBytes `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter   hexBytes `json:"interim_transcript_hash_after"`
}

// runTranscriptHashes decodes the commit's AuthenticatedContent, updates the
// transcript hashes with it and checks its confirmation tag (RFC 9420 §6.1,
// §8.2).
func runTranscriptHashes(t *testing.T, raw json.RawMessage) {
	var c transcriptHashesCase
	decodeCase(t, raw, &c)
	s, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	var ac wire.AuthenticatedContent
	if err := codec.Unmarshal(c.AuthenticatedContent, &ac); err != nil {
		t.Fatalf("authenticated_content: %v", err)
	}
	if again, err := codec.Marshal(&ac); err != nil || !bytes.Equal(again, c.AuthenticatedContent) {
		t.Fatalf("authenticated_content does not re-encode byte for byte: %v", err)
	}
	input, err := ac.ConfirmedTranscriptHashInput()
	if err != nil {
		t.Fatalf("confirmed transcript hash input: %v", err)
	}
	confirmed := keyschedule.ConfirmedTranscriptHash(s, c.InterimTranscriptHashBefore, input)
	if !bytes.Equal(confirmed, c.ConfirmedTranscriptHashAfter) {
		t.Errorf("confirmed transcript hash = %x, want %x", confirmed, []byte(c.ConfirmedTranscriptHashAfter))
	}
	tag := ac.Auth.ConfirmationTag
	if got := keyschedule.ConfirmationTag(s, c.ConfirmationKey, c.ConfirmedTranscriptHashAfter); !bytes.Equal(got, tag) {
		t.Errorf("confirmation tag = %x, content carries %x", got, tag)
	}
	interim := keyschedule.InterimTranscriptHash(s, confirmed, tag)
	if !bytes.Equal(interim, c.InterimTranscriptHashAfter) {
		t.Errorf("interim transcript hash = %x, want %x", interim, []byte(c.InterimTranscriptHashAfter))
	}
	// The interim hash is Hash(confirmed || InterimTranscriptHashInput).
	in, err := wire.InterimTranscriptHashInput(tag)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Hash(append(bytes.Clone(confirmed), in...)), interim) {
		t.Error("interim transcript hash differs from Hash(confirmed || InterimTranscriptHashInput)")
	}
}
