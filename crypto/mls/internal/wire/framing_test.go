package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

func sampleKeyPackage() KeyPackage {
	return KeyPackage{Version: 1, CipherSuite: 1, InitKey: []byte("init"), LeafNode: sampleLeaf(LeafNodeSourceKeyPackage), Signature: []byte("s")}
}

func sampleProposals() []Proposal {
	kp := sampleKeyPackage()
	return []Proposal{
		{ProposalType: ProposalTypeAdd, Add: &Add{KeyPackage: kp}},
		{ProposalType: ProposalTypeUpdate, Update: &Update{LeafNode: sampleLeaf(LeafNodeSourceUpdate)}},
		{ProposalType: ProposalTypeRemove, Remove: &Remove{Removed: 7}},
		{ProposalType: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{PSKType: PSKTypeExternal, ID: []byte("id"), Nonce: []byte("n")}}},
		{ProposalType: ProposalTypePSK, PreSharedKey: &PreSharedKey{PSK: PreSharedKeyID{PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageBranch, GroupID: []byte("g"), PSKEpoch: 3, Nonce: []byte("n")}}},
		{ProposalType: ProposalTypeReInit, ReInit: &ReInit{GroupID: []byte("g2"), Version: 1, CipherSuite: 3, Extensions: []Extension{{ExtensionType: 0x0a0a}}}},
		{ProposalType: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: []byte("kem")}},
		{ProposalType: ProposalTypeGroupContextExtensions, GroupContextExtensions: &GroupContextExtensions{Extensions: []Extension{{ExtensionType: 3, ExtensionData: []byte{0, 0, 0}}}}},
	}
}

func sampleCommit() Commit {
	ps := sampleProposals()
	leaf := sampleLeaf(LeafNodeSourceCommit)
	return Commit{
		Proposals: []ProposalOrRef{
			{Type: ProposalOrRefTypeProposal, Proposal: &ps[2]},
			{Type: ProposalOrRefTypeReference, Reference: []byte("0123456789abcdef0123456789abcdef")},
		},
		Path: &UpdatePath{LeafNode: leaf, Nodes: []UpdatePathNode{{EncryptionKey: []byte("k"), EncryptedPathSecret: []HPKECiphertext{{KEMOutput: []byte("e"), Ciphertext: []byte("c")}}}}},
	}
}

func sampleGroupContext() GroupContext {
	return GroupContext{Version: 1, CipherSuite: 1, GroupID: []byte("group"), Epoch: 5, TreeHash: []byte("th"), ConfirmedTranscriptHash: []byte("cth")}
}

func sampleGroupInfo() GroupInfo {
	return GroupInfo{GroupContext: sampleGroupContext(), Extensions: []Extension{{ExtensionType: ExtensionTypeExternalPub, ExtensionData: []byte{1, 9}}},
		ConfirmationTag: []byte("tag"), Signer: 2, Signature: []byte("sig")}
}

func sampleWelcome() Welcome {
	return Welcome{CipherSuite: 1, Secrets: []EncryptedGroupSecrets{{NewMember: []byte("ref"), EncryptedGroupSecrets: HPKECiphertext{KEMOutput: []byte("e"), Ciphertext: []byte("c")}}},
		EncryptedGroupInfo: []byte("egi")}
}

// sampleMessages returns one MLSMessage of every wire format, with public
// messages from every sender type and content type.
func sampleMessages() []MLSMessage {
	commit := sampleCommit()
	ps := sampleProposals()
	kp := sampleKeyPackage()
	gi := sampleGroupInfo()
	wl := sampleWelcome()
	pub := func(s Sender, ct ContentType) MLSMessage {
		fc := FramedContent{GroupID: []byte("group"), Epoch: 5, Sender: s, AuthenticatedData: []byte("ad"), ContentType: ct}
		auth := FramedContentAuthData{Signature: []byte("sig")}
		switch ct {
		case ContentTypeApplication:
			fc.ApplicationData = []byte("hello")
		case ContentTypeProposal:
			fc.Proposal = &ps[0]
		case ContentTypeCommit:
			fc.Commit = &commit
			auth.ConfirmationTag = []byte("ctag")
		}
		pm := &PublicMessage{Content: fc, Auth: auth}
		if s.SenderType == SenderTypeMember {
			pm.MembershipTag = []byte("mtag")
		}
		return MLSMessage{Version: 1, WireFormat: WireFormatPublicMessage, PublicMessage: pm}
	}
	return []MLSMessage{
		pub(Sender{SenderType: SenderTypeMember, LeafIndex: 3}, ContentTypeApplication),
		pub(Sender{SenderType: SenderTypeMember, LeafIndex: 3}, ContentTypeProposal),
		pub(Sender{SenderType: SenderTypeMember, LeafIndex: 3}, ContentTypeCommit),
		pub(Sender{SenderType: SenderTypeExternal, SenderIndex: 1}, ContentTypeProposal),
		pub(Sender{SenderType: SenderTypeNewMemberProposal}, ContentTypeProposal),
		pub(Sender{SenderType: SenderTypeNewMemberCommit}, ContentTypeCommit),
		{Version: 1, WireFormat: WireFormatPrivateMessage, PrivateMessage: &PrivateMessage{GroupID: []byte("g"), Epoch: 1, ContentType: ContentTypeApplication,
			AuthenticatedData: []byte("ad"), EncryptedSenderData: []byte("esd"), Ciphertext: []byte("ct")}},
		{Version: 1, WireFormat: WireFormatWelcome, Welcome: &wl},
		{Version: 1, WireFormat: WireFormatGroupInfo, GroupInfo: &gi},
		{Version: 1, WireFormat: WireFormatKeyPackage, KeyPackage: &kp},
	}
}

func TestFramingRoundTrips(t *testing.T) {
	for _, p := range sampleProposals() {
		roundTrip(t, "proposal", &p, &Proposal{})
	}
	c := sampleCommit()
	roundTrip(t, "commit", &c, &Commit{})
	roundTrip(t, "commit without path", &Commit{}, &Commit{})
	for _, m := range sampleMessages() {
		roundTrip(t, "mls message", &m, &MLSMessage{})
	}
	gs := GroupSecrets{JoinerSecret: []byte("j"), PathSecret: &PathSecret{PathSecret: []byte("p")},
		PSKs: []PreSharedKeyID{{PSKType: PSKTypeExternal, ID: []byte("x"), Nonce: []byte("n")}}}
	roundTrip(t, "group secrets", &gs, &GroupSecrets{})
	roundTrip(t, "group secrets without path secret", &GroupSecrets{JoinerSecret: []byte("j")}, &GroupSecrets{})
	es := ExternalSenders{{SignatureKey: []byte("k"), Credential: Credential{CredentialType: CredentialTypeBasic, Identity: []byte("hub")}}}
	roundTrip(t, "external senders", &es, &ExternalSenders{})
	rc := RequiredCapabilities{ExtensionTypes: []ExtensionType{5}, ProposalTypes: []ProposalType{0x0a0a}, CredentialTypes: []CredentialType{2}}
	roundTrip(t, "required capabilities", &rc, &RequiredCapabilities{})
	roundTrip(t, "external pub", &ExternalPub{ExternalPub: []byte("pk")}, &ExternalPub{})
	roundTrip(t, "sender data", &SenderData{LeafIndex: 1, Generation: 2, ReuseGuard: [4]byte{1, 2, 3, 4}}, &SenderData{})
	ac := AuthenticatedContent{WireFormat: WireFormatPrivateMessage, Content: *sampleMessages()[2].PublicMessage.Content.clone(), Auth: FramedContentAuthData{Signature: []byte("s"), ConfirmationTag: []byte("t")}}
	roundTrip(t, "authenticated content", &ac, &AuthenticatedContent{})
}

// clone returns a shallow copy, enough for tests that only read.
func (f *FramedContent) clone() *FramedContent { c := *f; return &c }

func TestExtensionHelpers(t *testing.T) {
	es := ExternalSenders{{SignatureKey: []byte("k"), Credential: Credential{CredentialType: CredentialTypeBasic, Identity: []byte("hub")}}}
	ext, err := NewExtension(ExtensionTypeExternalSenders, &es)
	if err != nil {
		t.Fatal(err)
	}
	var got ExternalSenders
	ok, err := DecodeExtension([]Extension{{ExtensionType: 1}, ext}, ExtensionTypeExternalSenders, &got)
	if !ok || err != nil || len(got) != 1 || !bytes.Equal(got[0].Credential.Identity, []byte("hub")) {
		t.Fatalf("DecodeExtension = %v, %v, %+v", ok, err, got)
	}
	if ok, err := DecodeExtension(nil, ExtensionTypeExternalSenders, &got); ok || err != nil {
		t.Fatalf("absent extension: %v, %v", ok, err)
	}
	bad := []Extension{{ExtensionType: ExtensionTypeExternalPub, ExtensionData: []byte{5, 1}}}
	if _, err := DecodeExtension(bad, ExtensionTypeExternalPub, &ExternalPub{}); !errors.Is(err, codec.ErrTruncated) {
		t.Fatalf("truncated extension data: %v", err)
	}
}

func TestPublicMessageMembershipTagOnlyForMembers(t *testing.T) {
	for _, m := range sampleMessages() {
		if m.PublicMessage == nil {
			continue
		}
		b, err := codec.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		hasTag := bytes.HasSuffix(b, append([]byte{4}, "mtag"...))
		if want := m.PublicMessage.Content.Sender.SenderType == SenderTypeMember; hasTag != want {
			t.Errorf("sender type %d: membership tag encoded = %v, want %v", m.PublicMessage.Content.Sender.SenderType, hasTag, want)
		}
	}
}

func TestFramedContentTBSIncludesContextForMembersOnly(t *testing.T) {
	gc := sampleGroupContext()
	gcBytes, _ := codec.Marshal(&gc)
	for _, m := range sampleMessages() {
		if m.PublicMessage == nil {
			continue
		}
		ac := m.PublicMessage.AuthenticatedContent()
		st := ac.Content.Sender.SenderType
		needs := st == SenderTypeMember || st == SenderTypeNewMemberCommit
		if _, err := ac.TBS(nil); (err != nil) != needs {
			t.Errorf("sender type %d: TBS without context error = %v, want error %v", st, err, needs)
		}
		tbs, err := ac.TBS(&gc)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasSuffix(tbs, gcBytes) != needs {
			t.Errorf("sender type %d: context in TBS = %v, want %v", st, !needs, needs)
		}
		if !bytes.HasPrefix(tbs, []byte{0, 1, 0, 1}) {
			t.Errorf("TBS does not start with mls10 and mls_public_message: %x", tbs[:4])
		}
		tbm, err := ac.TBM(&gc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(tbm, tbs) || len(tbm) <= len(tbs) {
			t.Errorf("TBM is not TBS followed by the auth data")
		}
	}
}

func TestTranscriptHashInputs(t *testing.T) {
	m := sampleMessages()[2] // member commit
	ac := m.PublicMessage.AuthenticatedContent()
	in, err := ac.ConfirmedTranscriptHashInput()
	if err != nil {
		t.Fatal(err)
	}
	content, _ := codec.Marshal(&ac.Content)
	want := append(append([]byte{0, 1}, content...), append([]byte{3}, "sig"...)...)
	if !bytes.Equal(in, want) {
		t.Errorf("ConfirmedTranscriptHashInput = %x, want %x", in, want)
	}
	app := sampleMessages()[0].PublicMessage.AuthenticatedContent()
	if _, err := app.ConfirmedTranscriptHashInput(); err == nil {
		t.Error("ConfirmedTranscriptHashInput accepted application content")
	}
	if in, _ := InterimTranscriptHashInput([]byte("tag")); !bytes.Equal(in, []byte{3, 't', 'a', 'g'}) {
		t.Errorf("InterimTranscriptHashInput = %x", in)
	}
}

func TestPrivateMessageContentPadding(t *testing.T) {
	commit := sampleCommit()
	ps := sampleProposals()
	for _, c := range []PrivateMessageContent{
		{ContentType: ContentTypeApplication, ApplicationData: []byte("hi"), Auth: FramedContentAuthData{Signature: []byte("s")}, Padding: 17},
		{ContentType: ContentTypeProposal, Proposal: &ps[5], Auth: FramedContentAuthData{Signature: []byte("s")}},
		{ContentType: ContentTypeCommit, Commit: &commit, Auth: FramedContentAuthData{Signature: []byte("s"), ConfirmationTag: []byte("t")}, Padding: 3},
	} {
		b, err := codec.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		got := PrivateMessageContent{ContentType: c.ContentType}
		if err := codec.Unmarshal(b, &got); err != nil {
			t.Fatalf("content type %d: %v", c.ContentType, err)
		}
		if got.Padding != c.Padding {
			t.Errorf("content type %d: padding %d, want %d", c.ContentType, got.Padding, c.Padding)
		}
		b2, _ := codec.Marshal(&got)
		if !bytes.Equal(b, b2) {
			t.Errorf("content type %d: round trip changed the encoding", c.ContentType)
		}
		b[len(b)-1] = 1
		if c.Padding > 0 {
			if err := codec.Unmarshal(b, &PrivateMessageContent{ContentType: c.ContentType}); !errors.Is(err, codec.ErrInvalidValue) {
				t.Errorf("content type %d: non-zero padding: %v, want ErrInvalidValue", c.ContentType, err)
			}
		}
	}
	if err := codec.Unmarshal([]byte{0, 0}, &PrivateMessageContent{}); !errors.Is(err, ErrUnknownValue) {
		t.Errorf("content type 0: %v, want ErrUnknownValue", err)
	}
}

func TestFramingRejectsUnknownSelectors(t *testing.T) {
	cases := map[string]struct {
		data []byte
		v    codec.Unmarshaler
	}{
		"version mls20":        {[]byte{0, 2, 0, 1}, &MLSMessage{}},
		"wire format 6":        {[]byte{0, 1, 0, 6}, &MLSMessage{}},
		"sender type 5":        {[]byte{5}, &Sender{}},
		"proposal or ref 3":    {[]byte{3}, &ProposalOrRef{}},
		"psk type 3":           {[]byte{3, 0}, &PreSharedKeyID{}},
		"psk usage 4":          {[]byte{2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, &PreSharedKeyID{}},
		"content type 4":       {[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0}, &PrivateMessage{}},
		"framed content 0":     {[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0}, &FramedContent{}},
		"authenticated wf key": {[]byte{0, 5}, &AuthenticatedContent{}},
	}
	for name, c := range cases {
		if err := codec.Unmarshal(c.data, c.v); !errors.Is(err, ErrUnknownValue) {
			t.Errorf("%s: %v, want ErrUnknownValue", name, err)
		}
	}
}

func TestCommitProposalCountIsBounded(t *testing.T) {
	var w codec.Writer
	w.WriteVector(func(w *codec.Writer) {
		for range MaxProposalsPerCommit + 1 {
			w.WriteUint8(uint8(ProposalOrRefTypeReference))
			w.WriteOpaque(nil)
		}
	})
	w.WriteOptional(false, nil)
	b, _ := w.Bytes()
	if err := codec.Unmarshal(b, &Commit{}); !errors.Is(err, ErrTooMany) {
		t.Fatalf("%d proposals: %v, want ErrTooMany", MaxProposalsPerCommit+1, err)
	}
}

func TestGroupInfoTBSOmitsOnlySignature(t *testing.T) {
	gi := sampleGroupInfo()
	full, _ := codec.Marshal(&gi)
	tbs, err := gi.TBS()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(tbs, append([]byte{3}, "sig"...)...), full) {
		t.Errorf("GroupInfo is not TBS || signature")
	}
}

func TestPSKLabel(t *testing.T) {
	id := PreSharedKeyID{PSKType: PSKTypeExternal, ID: []byte{0xaa}, Nonce: []byte{0xbb}}
	got, err := PSKLabel(&id, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 1, 0xaa, 1, 0xbb, 0, 1, 0, 2}
	if !bytes.Equal(got, want) {
		t.Errorf("PSKLabel = %x, want %x", got, want)
	}
}

func TestUpdatePathNodeCountIsBounded(t *testing.T) {
	up := UpdatePath{LeafNode: sampleLeaf(LeafNodeSourceCommit), Nodes: make([]UpdatePathNode, MaxUpdatePathNodes+1)}
	b, _ := codec.Marshal(&up)
	if err := codec.Unmarshal(b, &UpdatePath{}); !errors.Is(err, ErrTooMany) {
		t.Fatalf("%d nodes: %v, want ErrTooMany", MaxUpdatePathNodes+1, err)
	}
	up.Nodes = up.Nodes[:MaxUpdatePathNodes]
	b, _ = codec.Marshal(&up)
	if err := codec.Unmarshal(b, &UpdatePath{}); err != nil {
		t.Fatalf("%d nodes: %v", MaxUpdatePathNodes, err)
	}
}

func TestDuplicateExtensionsRejectedInLongLists(t *testing.T) {
	for _, n := range []int{2, 8, 9, 20} {
		es := make([]Extension, n)
		for i := range es {
			es[i].ExtensionType = ExtensionType(100 + i)
		}
		es[n-1].ExtensionType = es[0].ExtensionType
		b, _ := codec.Marshal(&GroupContextExtensions{Extensions: es})
		if err := codec.Unmarshal(b, &GroupContextExtensions{}); !errors.Is(err, codec.ErrInvalidValue) {
			t.Errorf("%d extensions with a duplicate: %v, want ErrInvalidValue", n, err)
		}
		es[n-1].ExtensionType = 1
		b, _ = codec.Marshal(&GroupContextExtensions{Extensions: es})
		if err := codec.Unmarshal(b, &GroupContextExtensions{}); err != nil {
			t.Errorf("%d distinct extensions: %v", n, err)
		}
	}
}
