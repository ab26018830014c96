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

func init() { register("key-schedule", runKeySchedule) }

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
