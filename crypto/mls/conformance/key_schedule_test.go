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

func init() {
	register("key-schedule", runKeySchedule)
	register("psk_secret", runPSKSecret)
	register("transcript-hashes", runTranscriptHashes)
}

// keyScheduleCase is one case of key-schedule.json (test-vectors.md, "Key Schedule").
type keyScheduleCase struct {
	CipherSuite       uint16   `json:"cipher_suite"`
	GroupID           hexBytes `json:"group_id"`
	InitialInitSecret hexBytes `json:"initial_init_secret"`
	Epochs            []struct {
		TreeHash                hexBytes `json:"tree_hash"`
		CommitSecret            hexBytes `json:"commit_secret"`
		PSKSecret               hexBytes `json:"psk_secret"`
		ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
		GroupContext            hexBytes `json:"group_context"`
		JoinerSecret            hexBytes `json:"joiner_secret"`
		WelcomeSecret           hexBytes `json:"welcome_secret"`
		InitSecret              hexBytes `json:"init_secret"`
		SenderDataSecret        hexBytes `json:"sender_data_secret"`
		EncryptionSecret        hexBytes `json:"encryption_secret"`
		ExporterSecret          hexBytes `json:"exporter_secret"`
		EpochAuthenticator      hexBytes `json:"epoch_authenticator"`
		ExternalSecret          hexBytes `json:"external_secret"`
		ConfirmationKey         hexBytes `json:"confirmation_key"`
		MembershipKey           hexBytes `json:"membership_key"`
		ResumptionPSK           hexBytes `json:"resumption_psk"`
		ExternalPub             hexBytes `json:"external_pub"`
		Exporter                struct {
			Label string `json:"label"` // the generator used this text itself as the label

			Context hexBytes `json:"context"`
			Length  int      `json:"length"`
			Secret  hexBytes `json:"secret"`
		} `json:"exporter"`
	} `json:"epochs"`
}

// runKeySchedule derives every epoch's secrets (RFC 9420 §8).
func runKeySchedule(t *testing.T, raw json.RawMessage) {
	var c keyScheduleCase
	decodeCase(t, raw, &c)
	s, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	init := []byte(c.InitialInitSecret)
	for i, e := range c.Epochs {
		gc := wire.GroupContext{
			Version: wire.ProtocolVersionMLS10, CipherSuite: ciphersuite.ID(c.CipherSuite), GroupID: c.GroupID,
			Epoch: uint64(i), TreeHash: e.TreeHash, ConfirmedTranscriptHash: e.ConfirmedTranscriptHash,
		}
		gcb, err := codec.Marshal(&gc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gcb, e.GroupContext) {
			t.Errorf("epoch %d: group context = %x, want %x", i, gcb, []byte(e.GroupContext))
		}
		ep, err := keyschedule.Derive(s, init, e.CommitSecret, e.PSKSecret, gcb)
		if err != nil {
			t.Fatalf("epoch %d: %v", i, err)
		}
		for _, v := range []struct {
			name      string
			got, want []byte
		}{
			{"joiner_secret", ep.JoinerSecret, e.JoinerSecret},
			{"welcome_secret", ep.WelcomeSecret, e.WelcomeSecret},
			{"init_secret", ep.InitSecret, e.InitSecret},
			{"sender_data_secret", ep.SenderDataSecret, e.SenderDataSecret},
			{"encryption_secret", ep.EncryptionSecret, e.EncryptionSecret},
			{"exporter_secret", ep.ExporterSecret, e.ExporterSecret},
			{"epoch_authenticator", ep.EpochAuthenticator, e.EpochAuthenticator},
			{"external_secret", ep.ExternalSecret, e.ExternalSecret},
			{"confirmation_key", ep.ConfirmationKey, e.ConfirmationKey},
			{"membership_key", ep.MembershipKey, e.MembershipKey},
			{"resumption_psk", ep.ResumptionPSK, e.ResumptionPSK},
		} {
			if !bytes.Equal(v.got, v.want) {
				t.Errorf("epoch %d: %s = %x, want %x", i, v.name, v.got, v.want)
			}
		}
		_, pub, err := keyschedule.ExternalKeyPair(s, ep.ExternalSecret)
		if err != nil || !bytes.Equal(pub, e.ExternalPub) {
			t.Errorf("epoch %d: external_pub = %x, %v; want %x", i, pub, err, []byte(e.ExternalPub))
		}
		x := e.Exporter
		if got, err := keyschedule.Export(s, ep.ExporterSecret, x.Label, x.Context, x.Length); err != nil || !bytes.Equal(got, x.Secret) {
			t.Errorf("epoch %d: exporter = %x, %v; want %x", i, got, err, []byte(x.Secret))
		}
		init = ep.InitSecret
	}
}

// pskSecretCase is one case of psk_secret.json (test-vectors.md, "Pre-Shared Keys").
type pskSecretCase struct {
	CipherSuite uint16 `json:"cipher_suite"`
	PSKs        []struct {
		PSKID    hexBytes `json:"psk_id"`
		PSK      hexBytes `json:"psk"`
		PSKNonce hexBytes `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hexBytes `json:"psk_secret"`
}

// runPSKSecret combines external PSKs into psk_secret (RFC 9420 §8.4).
func runPSKSecret(t *testing.T, raw json.RawMessage) {
	var c pskSecretCase
	decodeCase(t, raw, &c)
	s, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	var psks []keyschedule.PSK
	for _, p := range c.PSKs {
		// PreSharedKeyID{psktype = external(1), psk_id, psk_nonce}.
		var w codec.Writer
		w.WriteUint8(1)
		w.WriteOpaque(p.PSKID)
		w.WriteOpaque(p.PSKNonce)
		id, err := w.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		psks = append(psks, keyschedule.PSK{ID: id, Secret: p.PSK})
	}
	got, err := keyschedule.PSKSecret(s, psks)
	if err != nil || !bytes.Equal(got, c.PSKSecret) {
		t.Errorf("psk_secret = %x, %v; want %x", got, err, []byte(c.PSKSecret))
	}
}

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

// runTranscriptHashes updates the transcript hashes with a commit and checks
// its confirmation tag (RFC 9420 §6.1, §8.2).
func runTranscriptHashes(t *testing.T, raw json.RawMessage) {
	var c transcriptHashesCase
	decodeCase(t, raw, &c)
	s, err := ciphersuite.Lookup(ciphersuite.ID(c.CipherSuite))
	if err != nil {
		t.Fatalf("cipher suite %#04x: %v", c.CipherSuite, err)
	}
	input, tag, err := splitCommitContent(c.AuthenticatedContent, s.Nh())
	if err != nil {
		t.Fatalf("authenticated_content: %v", err)
	}
	confirmed := keyschedule.ConfirmedTranscriptHash(s, c.InterimTranscriptHashBefore, input)
	if !bytes.Equal(confirmed, c.ConfirmedTranscriptHashAfter) {
		t.Errorf("confirmed transcript hash = %x, want %x", confirmed, []byte(c.ConfirmedTranscriptHashAfter))
	}
	if got := keyschedule.ConfirmationTag(s, c.ConfirmationKey, c.ConfirmedTranscriptHashAfter); !bytes.Equal(got, tag) {
		t.Errorf("confirmation tag = %x, content carries %x", got, tag)
	}
	interim := keyschedule.InterimTranscriptHash(s, confirmed, tag)
	if !bytes.Equal(interim, c.InterimTranscriptHashAfter) {
		t.Errorf("interim transcript hash = %x, want %x", interim, []byte(c.InterimTranscriptHashAfter))
	}
}

// splitCommitContent splits an encoded AuthenticatedContent carrying a
// Commit into ConfirmedTranscriptHashInput (wire_format, content, signature)
// and the confirmation tag, the trailing opaque<V> MAC of nh bytes. It
// checks the content type is commit by reading the FramedContent header.
func splitCommitContent(ac []byte, nh int) (input, tag []byte, err error) {
	r := codec.NewReader(ac)
	if _, err := r.ReadUint16(); err != nil { // wire_format
		return nil, nil, err
	}
	if _, err := r.ReadOpaque(); err != nil { // group_id
		return nil, nil, err
	}
	if _, err := r.ReadUint64(); err != nil { // epoch
		return nil, nil, err
	}
	st, err := r.ReadUint8() // sender_type
	if err != nil {
		return nil, nil, err
	}
	if st == 1 || st == 2 { // member, external: uint32 index
		if _, err := r.ReadUint32(); err != nil {
			return nil, nil, err
		}
	}
	if _, err := r.ReadOpaque(); err != nil { // authenticated_data
		return nil, nil, err
	}
	ct, err := r.ReadUint8()
	if err != nil {
		return nil, nil, err
	}
	if ct != 3 {
		return nil, nil, codec.ErrInvalidValue
	}
	var w codec.Writer
	w.WriteVarint(uint64(nh))
	prefix, _ := w.Bytes()
	n := len(prefix) + nh
	if len(ac) < n || !bytes.Equal(ac[len(ac)-n:len(ac)-nh], prefix) {
		return nil, nil, codec.ErrInvalidValue
	}
	return ac[:len(ac)-n], ac[len(ac)-nh:], nil
}
