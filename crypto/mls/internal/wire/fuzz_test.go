package wire

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// vectorSeeds adds to f the given fields of the first cases of messages.json
// when the MLS test vectors are present (MLS_TEST_VECTORS, default
// /work/shared/mls-test-vectors relative to the repository). The fuzz targets
// work without them: every target also has hand-built seeds.
func vectorSeeds(f *testing.F, fields ...string) {
	dir := os.Getenv("MLS_TEST_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "..", "..", "shared", "mls-test-vectors")
	}
	data, err := os.ReadFile(filepath.Join(dir, "messages.json"))
	if err != nil {
		return
	}
	var cases []map[string]string
	if json.Unmarshal(data, &cases) != nil {
		return
	}
	// The cases repeat the same structures for each cipher suite; a handful
	// gives the fuzzer every shape.
	for i, c := range cases {
		if i == 14 {
			break
		}
		for _, name := range fields {
			if b, err := hex.DecodeString(c[name]); err == nil && len(b) > 0 {
				f.Add(b)
			}
		}
	}
}

func addSeed(f *testing.F, v codec.Marshaler) {
	b, err := codec.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
}

func FuzzMLSMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		addSeed(f, &m)
	}
	vectorSeeds(f, "mls_welcome", "mls_group_info", "mls_key_package", "public_message_application",
		"public_message_proposal", "public_message_commit", "private_message")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[MLSMessage](t, data) })
}

func FuzzWelcome(f *testing.F) {
	wl := sampleWelcome()
	addSeed(f, &wl)
	addSeed(f, &Welcome{})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[Welcome](t, data) })
}

func FuzzGroupInfo(f *testing.F) {
	gi := sampleGroupInfo()
	addSeed(f, &gi)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[GroupInfo](t, data) })
}

func FuzzGroupSecrets(f *testing.F) {
	addSeed(f, &GroupSecrets{JoinerSecret: []byte("j"), PathSecret: &PathSecret{PathSecret: []byte("p")},
		PSKs: []PreSharedKeyID{{PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageReInit, GroupID: []byte("g"), PSKEpoch: 1}}})
	vectorSeeds(f, "group_secrets")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[GroupSecrets](t, data) })
}

func FuzzCommit(f *testing.F) {
	c := sampleCommit()
	addSeed(f, &c)
	addSeed(f, &Commit{})
	vectorSeeds(f, "commit")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[Commit](t, data) })
}

// FuzzProposalBodies decodes every proposal kind, chosen by the first byte,
// so the fuzzer reaches each body directly as the vectors encode them.
func FuzzProposalBodies(f *testing.F) {
	for _, p := range sampleProposals() {
		b, err := codec.Marshal(&p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b) // proposal type (2 bytes) then body: b[1] selects the body
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		body := data[2:]
		switch ProposalType(data[1] % 8) {
		case ProposalTypeAdd:
			fuzzRoundTrip[Add](t, body)
		case ProposalTypeUpdate:
			fuzzRoundTrip[Update](t, body)
		case ProposalTypeRemove:
			fuzzRoundTrip[Remove](t, body)
		case ProposalTypePSK:
			fuzzRoundTrip[PreSharedKey](t, body)
		case ProposalTypeReInit:
			fuzzRoundTrip[ReInit](t, body)
		case ProposalTypeExternalInit:
			fuzzRoundTrip[ExternalInit](t, body)
		case ProposalTypeGroupContextExtensions:
			fuzzRoundTrip[GroupContextExtensions](t, body)
		default:
			fuzzRoundTrip[Proposal](t, data)
		}
	})
}

// FuzzPrivateMessageContent decodes a decrypted PrivateMessage plaintext
// whose content type is the first byte.
func FuzzPrivateMessageContent(f *testing.F) {
	commit := sampleCommit()
	for _, c := range []PrivateMessageContent{
		{ContentType: ContentTypeApplication, ApplicationData: []byte("hi"), Auth: FramedContentAuthData{Signature: []byte("s")}, Padding: 4},
		{ContentType: ContentTypeCommit, Commit: &commit, Auth: FramedContentAuthData{Signature: []byte("s"), ConfirmationTag: []byte("t")}},
	} {
		b, err := codec.Marshal(&c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append([]byte{byte(c.ContentType)}, b...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		c := PrivateMessageContent{ContentType: ContentType(data[0])}
		if err := codec.Unmarshal(data[1:], &c); err != nil {
			return
		}
		b, err := codec.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != string(data[1:]) {
			t.Fatalf("re-encoding differs:\n got %x\nwant %x", b, data[1:])
		}
	})
}

func FuzzExternalSenders(f *testing.F) {
	addSeed(f, &ExternalSenders{{SignatureKey: []byte("k"), Credential: Credential{CredentialType: CredentialTypeBasic, Identity: []byte("hub")}}})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzRoundTrip[ExternalSenders](t, data) })
}
