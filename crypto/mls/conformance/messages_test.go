package conformance

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

func init() { register("messages", runMessages) }

// messagesCase is one case of messages.json: each field holds the encoding
// of one RFC 9420 structure (test-vectors.md, "Messages").
type messagesCase struct {
	MLSWelcome   hexBytes `json:"mls_welcome"`
	MLSGroupInfo hexBytes `json:"mls_group_info"`
	MLSKeyPkg    hexBytes `json:"mls_key_package"`

	RatchetTree  hexBytes `json:"ratchet_tree"`
	GroupSecrets hexBytes `json:"group_secrets"`

	AddProposal                    hexBytes `json:"add_proposal"`
	UpdateProposal                 hexBytes `json:"update_proposal"`
	RemoveProposal                 hexBytes `json:"remove_proposal"`
	PreSharedKeyProposal           hexBytes `json:"pre_shared_key_proposal"`
	ReInitProposal                 hexBytes `json:"re_init_proposal"`
	ExternalInitProposal           hexBytes `json:"external_init_proposal"`
	GroupContextExtensionsProposal hexBytes `json:"group_context_extensions_proposal"`

	Commit hexBytes `json:"commit"`

	PublicMessageApplication hexBytes `json:"public_message_application"`
	PublicMessageProposal    hexBytes `json:"public_message_proposal"`
	PublicMessageCommit      hexBytes `json:"public_message_commit"`
	PrivateMessage           hexBytes `json:"private_message"`
}

// mlsMessageOf returns an MLSMessage decoder that also checks the wire format
// and, for public messages, the content type.
type mlsMessageCheck struct {
	wire.MLSMessage
	wantFormat  wire.WireFormat
	wantContent wire.ContentType
}

// runMessages decodes every structure of a case and re-encodes it, which must
// reproduce the input byte for byte (RFC 9420 structures have one encoding).
func runMessages(t *testing.T, raw json.RawMessage) {
	var c messagesCase
	decodeCase(t, raw, &c)
	msg := func(f wire.WireFormat, ct wire.ContentType) *mlsMessageCheck {
		return &mlsMessageCheck{wantFormat: f, wantContent: ct}
	}
	fields := []struct {
		name string
		data hexBytes
		v    interface {
			codec.Marshaler
			codec.Unmarshaler
		}
	}{
		{"mls_welcome", c.MLSWelcome, msg(wire.WireFormatWelcome, 0)},
		{"mls_group_info", c.MLSGroupInfo, msg(wire.WireFormatGroupInfo, 0)},
		{"mls_key_package", c.MLSKeyPkg, msg(wire.WireFormatKeyPackage, 0)},
		{"ratchet_tree", c.RatchetTree, &wire.RatchetTree{}},
		{"group_secrets", c.GroupSecrets, &wire.GroupSecrets{}},
		{"add_proposal", c.AddProposal, &wire.Add{}},
		{"update_proposal", c.UpdateProposal, &wire.Update{}},
		{"remove_proposal", c.RemoveProposal, &wire.Remove{}},
		{"pre_shared_key_proposal", c.PreSharedKeyProposal, &wire.PreSharedKey{}},
		{"re_init_proposal", c.ReInitProposal, &wire.ReInit{}},
		{"external_init_proposal", c.ExternalInitProposal, &wire.ExternalInit{}},
		{"group_context_extensions_proposal", c.GroupContextExtensionsProposal, &wire.GroupContextExtensions{}},
		{"commit", c.Commit, &wire.Commit{}},
		{"public_message_application", c.PublicMessageApplication, msg(wire.WireFormatPublicMessage, wire.ContentTypeApplication)},
		{"public_message_proposal", c.PublicMessageProposal, msg(wire.WireFormatPublicMessage, wire.ContentTypeProposal)},
		{"public_message_commit", c.PublicMessageCommit, msg(wire.WireFormatPublicMessage, wire.ContentTypeCommit)},
		{"private_message", c.PrivateMessage, msg(wire.WireFormatPrivateMessage, 0)},
	}
	present := 0
	for _, f := range fields {
		if f.data == nil {
			continue
		}
		present++
		if err := codec.Unmarshal(f.data, f.v); err != nil {
			t.Errorf("%s: decode: %v", f.name, err)
			continue
		}
		if m, ok := f.v.(*mlsMessageCheck); ok {
			if m.WireFormat != m.wantFormat {
				t.Errorf("%s: wire format %d, want %d", f.name, m.WireFormat, m.wantFormat)
			}
			if m.wantContent != 0 && m.PublicMessage.Content.ContentType != m.wantContent {
				t.Errorf("%s: content type %d, want %d", f.name, m.PublicMessage.Content.ContentType, m.wantContent)
			}
		}
		got, err := codec.Marshal(f.v)
		if err != nil {
			t.Errorf("%s: re-encode: %v", f.name, err)
			continue
		}
		if !bytes.Equal(got, f.data) {
			t.Errorf("%s: re-encoding differs from the vector:\n got %x\nwant %x", f.name, got, []byte(f.data))
		}
	}
	if present == 0 {
		t.Fatal("case holds none of the message fields")
	}
}
