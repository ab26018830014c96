package wire

import (
	"fmt"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// ContentType says what a FramedContent carries (RFC 9420 §6).
type ContentType uint8

// Content types.
const (
	ContentTypeApplication ContentType = 1
	ContentTypeProposal    ContentType = 2
	ContentTypeCommit      ContentType = 3
)

func readContentType(r *codec.Reader) (ContentType, error) {
	v, err := r.ReadUint8()
	if err != nil {
		return 0, fmt.Errorf("content type: %w", err)
	}
	ct := ContentType(v)
	if ct < ContentTypeApplication || ct > ContentTypeCommit {
		return 0, fmt.Errorf("%w: content type %d", ErrUnknownValue, v)
	}
	return ct, nil
}

// SenderType says who sent a message (RFC 9420 §6).
type SenderType uint8

// Sender types.
const (
	SenderTypeMember            SenderType = 1
	SenderTypeExternal          SenderType = 2
	SenderTypeNewMemberProposal SenderType = 3
	SenderTypeNewMemberCommit   SenderType = 4
)

// WireFormat identifies the kind of an MLSMessage (RFC 9420 §6, §17.2).
type WireFormat uint16

// Wire formats.
const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// Sender identifies the sender of a message (RFC 9420 §6). LeafIndex is set
// for members, SenderIndex (an index into the external_senders extension)
// for external senders; new members carry neither.
type Sender struct {
	SenderType  SenderType
	LeafIndex   uint32
	SenderIndex uint32
}

// MarshalMLS encodes the sender.
func (s *Sender) MarshalMLS(w *codec.Writer) {
	w.WriteUint8(uint8(s.SenderType))
	switch s.SenderType {
	case SenderTypeMember:
		w.WriteUint32(s.LeafIndex)
	case SenderTypeExternal:
		w.WriteUint32(s.SenderIndex)
	}
}

// UnmarshalMLS decodes a sender; an unknown type fails with ErrUnknownValue.
func (s *Sender) UnmarshalMLS(r *codec.Reader) error {
	t, err := r.ReadUint8()
	if err != nil {
		return fmt.Errorf("sender type: %w", err)
	}
	*s = Sender{SenderType: SenderType(t)}
	switch s.SenderType {
	case SenderTypeMember:
		if s.LeafIndex, err = r.ReadUint32(); err != nil {
			return fmt.Errorf("sender leaf index: %w", err)
		}
	case SenderTypeExternal:
		if s.SenderIndex, err = r.ReadUint32(); err != nil {
			return fmt.Errorf("sender index: %w", err)
		}
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
	default:
		return fmt.Errorf("%w: sender type %d", ErrUnknownValue, t)
	}
	return nil
}

// contentBody holds the content_type-selected body shared by FramedContent
// and PrivateMessageContent (RFC 9420 §6, §6.3.1).
func writeContentBody(w *codec.Writer, ct ContentType, app []byte, p *Proposal, c *Commit) {
	switch ct {
	case ContentTypeApplication:
		w.WriteOpaque(app)
	case ContentTypeProposal:
		p.MarshalMLS(w)
	case ContentTypeCommit:
		c.MarshalMLS(w)
	}
}

func readContentBody(r *codec.Reader, ct ContentType) (app []byte, p *Proposal, c *Commit, err error) {
	switch ct {
	case ContentTypeApplication:
		if app, err = r.ReadOpaque(); err != nil {
			return nil, nil, nil, fmt.Errorf("application data: %w", err)
		}
		if app == nil {
			app = []byte{}
		}
	case ContentTypeProposal:
		p = &Proposal{}
		err = p.UnmarshalMLS(r)
	case ContentTypeCommit:
		c = &Commit{}
		err = c.UnmarshalMLS(r)
	default:
		err = fmt.Errorf("%w: content type %d", ErrUnknownValue, ct)
	}
	return app, p, c, err
}

// FramedContent is the authenticated content of a handshake or application
// message (RFC 9420 §6). Exactly the field matching ContentType is set.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          *Proposal
	Commit            *Commit
}

// MarshalMLS encodes the framed content.
func (f *FramedContent) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(f.GroupID)
	w.WriteUint64(f.Epoch)
	f.Sender.MarshalMLS(w)
	w.WriteOpaque(f.AuthenticatedData)
	w.WriteUint8(uint8(f.ContentType))
	writeContentBody(w, f.ContentType, f.ApplicationData, f.Proposal, f.Commit)
}

// UnmarshalMLS decodes framed content; unknown sender or content types fail
// with ErrUnknownValue.
func (f *FramedContent) UnmarshalMLS(r *codec.Reader) error {
	*f = FramedContent{}
	var err error
	if f.GroupID, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("framed content group id: %w", err)
	}
	if f.Epoch, err = r.ReadUint64(); err != nil {
		return fmt.Errorf("framed content epoch: %w", err)
	}
	if err = f.Sender.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("framed content: %w", err)
	}
	if f.AuthenticatedData, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("framed content authenticated data: %w", err)
	}
	if f.ContentType, err = readContentType(r); err != nil {
		return fmt.Errorf("framed content: %w", err)
	}
	if f.ApplicationData, f.Proposal, f.Commit, err = readContentBody(r, f.ContentType); err != nil {
		return fmt.Errorf("framed content: %w", err)
	}
	return nil
}

// FramedContentAuthData authenticates a FramedContent (RFC 9420 §6.1): the
// sender's signature and, for commits only, the confirmation tag. Its
// encoding depends on the content type, so it has MarshalFor/UnmarshalFor
// instead of MarshalMLS/UnmarshalMLS.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte
}

// MarshalFor encodes the auth data of content of type ct.
func (a *FramedContentAuthData) MarshalFor(w *codec.Writer, ct ContentType) {
	w.WriteOpaque(a.Signature)
	if ct == ContentTypeCommit {
		w.WriteOpaque(a.ConfirmationTag)
	}
}

// UnmarshalFor decodes the auth data of content of type ct.
func (a *FramedContentAuthData) UnmarshalFor(r *codec.Reader, ct ContentType) error {
	*a = FramedContentAuthData{}
	var err error
	if a.Signature, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	if ct == ContentTypeCommit {
		if a.ConfirmationTag, err = r.ReadOpaque(); err != nil {
			return fmt.Errorf("confirmation tag: %w", err)
		}
	}
	return nil
}

// AuthenticatedContent is framed content with its authentication, as
// processed independently of its wire format (RFC 9420 §6.1).
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

// MarshalMLS encodes the authenticated content.
func (a *AuthenticatedContent) MarshalMLS(w *codec.Writer) {
	w.WriteUint16(uint16(a.WireFormat))
	a.Content.MarshalMLS(w)
	a.Auth.MarshalFor(w, a.Content.ContentType)
}

// UnmarshalMLS decodes authenticated content. The wire format must be
// public or private message.
func (a *AuthenticatedContent) UnmarshalMLS(r *codec.Reader) error {
	*a = AuthenticatedContent{}
	wf, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("authenticated content wire format: %w", err)
	}
	a.WireFormat = WireFormat(wf)
	if a.WireFormat != WireFormatPublicMessage && a.WireFormat != WireFormatPrivateMessage {
		return fmt.Errorf("%w: authenticated content wire format %d", ErrUnknownValue, wf)
	}
	if err := a.Content.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("authenticated content: %w", err)
	}
	if err := a.Auth.UnmarshalFor(r, a.Content.ContentType); err != nil {
		return fmt.Errorf("authenticated content auth: %w", err)
	}
	return nil
}

// writeFramedContentTBS writes FramedContentTBS (RFC 9420 §6.1).
func writeFramedContentTBS(w *codec.Writer, wf WireFormat, content *FramedContent, ctx *GroupContext) error {
	w.WriteUint16(uint16(ProtocolVersionMLS10))
	w.WriteUint16(uint16(wf))
	content.MarshalMLS(w)
	switch content.Sender.SenderType {
	case SenderTypeMember, SenderTypeNewMemberCommit:
		if ctx == nil {
			return fmt.Errorf("framed content tbs: sender type %d needs the group context", content.Sender.SenderType)
		}
		ctx.MarshalMLS(w)
	}
	return nil
}

// FramedContentTBS returns the FramedContentTBS encoding that the sender's
// signature covers (RFC 9420 §6.1): version, wire format, content and, for
// member and new_member_commit senders, the group context ctx (which may be
// nil for other senders).
func FramedContentTBS(wf WireFormat, content *FramedContent, ctx *GroupContext) ([]byte, error) {
	var w codec.Writer
	if err := writeFramedContentTBS(&w, wf, content, ctx); err != nil {
		return nil, err
	}
	return w.Bytes()
}

// TBS returns the FramedContentTBS of a (RFC 9420 §6.1); see FramedContentTBS.
func (a *AuthenticatedContent) TBS(ctx *GroupContext) ([]byte, error) {
	return FramedContentTBS(a.WireFormat, &a.Content, ctx)
}

// TBM returns the AuthenticatedContentTBM encoding that a PublicMessage's
// membership tag covers (RFC 9420 §6.2): FramedContentTBS, then the auth data.
func (a *AuthenticatedContent) TBM(ctx *GroupContext) ([]byte, error) {
	var w codec.Writer
	if err := writeFramedContentTBS(&w, a.WireFormat, &a.Content, ctx); err != nil {
		return nil, err
	}
	a.Auth.MarshalFor(&w, a.Content.ContentType)
	return w.Bytes()
}

// ConfirmedTranscriptHashInput returns the encoding of
// ConfirmedTranscriptHashInput{wire_format, content, signature} for a
// commit (RFC 9420 §8.2).
func (a *AuthenticatedContent) ConfirmedTranscriptHashInput() ([]byte, error) {
	if a.Content.ContentType != ContentTypeCommit {
		return nil, fmt.Errorf("confirmed transcript hash input: content type %d is not commit", a.Content.ContentType)
	}
	var w codec.Writer
	w.WriteUint16(uint16(a.WireFormat))
	a.Content.MarshalMLS(&w)
	w.WriteOpaque(a.Auth.Signature)
	return w.Bytes()
}

// InterimTranscriptHashInput returns the encoding of
// InterimTranscriptHashInput{confirmation_tag} (RFC 9420 §8.2).
func InterimTranscriptHashInput(confirmationTag []byte) ([]byte, error) {
	var w codec.Writer
	w.WriteOpaque(confirmationTag)
	return w.Bytes()
}

// PublicMessage is a signed, unencrypted handshake or application message
// (RFC 9420 §6.2). MembershipTag is present exactly for member senders.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte
}

// MarshalMLS encodes the public message.
func (p *PublicMessage) MarshalMLS(w *codec.Writer) {
	p.Content.MarshalMLS(w)
	p.Auth.MarshalFor(w, p.Content.ContentType)
	if p.Content.Sender.SenderType == SenderTypeMember {
		w.WriteOpaque(p.MembershipTag)
	}
}

// UnmarshalMLS decodes a public message.
func (p *PublicMessage) UnmarshalMLS(r *codec.Reader) error {
	*p = PublicMessage{}
	if err := p.Content.UnmarshalMLS(r); err != nil {
		return fmt.Errorf("public message: %w", err)
	}
	if err := p.Auth.UnmarshalFor(r, p.Content.ContentType); err != nil {
		return fmt.Errorf("public message auth: %w", err)
	}
	if p.Content.Sender.SenderType == SenderTypeMember {
		var err error
		if p.MembershipTag, err = r.ReadOpaque(); err != nil {
			return fmt.Errorf("public message membership tag: %w", err)
		}
	}
	return nil
}

// AuthenticatedContent returns the AuthenticatedContent carried by p, with
// wire format mls_public_message. It shares p's slices.
func (p *PublicMessage) AuthenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: p.Content, Auth: p.Auth}
}

// PrivateMessage is an encrypted handshake or application message
// (RFC 9420 §6.3).
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

// MarshalMLS encodes the private message.
func (p *PrivateMessage) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(p.GroupID)
	w.WriteUint64(p.Epoch)
	w.WriteUint8(uint8(p.ContentType))
	w.WriteOpaque(p.AuthenticatedData)
	w.WriteOpaque(p.EncryptedSenderData)
	w.WriteOpaque(p.Ciphertext)
}

// UnmarshalMLS decodes a private message; an unknown content type fails
// with ErrUnknownValue.
func (p *PrivateMessage) UnmarshalMLS(r *codec.Reader) error {
	*p = PrivateMessage{}
	var err error
	if p.GroupID, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("private message group id: %w", err)
	}
	if p.Epoch, err = r.ReadUint64(); err != nil {
		return fmt.Errorf("private message epoch: %w", err)
	}
	if p.ContentType, err = readContentType(r); err != nil {
		return fmt.Errorf("private message: %w", err)
	}
	if p.AuthenticatedData, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("private message authenticated data: %w", err)
	}
	if p.EncryptedSenderData, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("private message encrypted sender data: %w", err)
	}
	if p.Ciphertext, err = r.ReadOpaque(); err != nil {
		return fmt.Errorf("private message ciphertext: %w", err)
	}
	return nil
}

// ContentAAD returns the PrivateContentAAD of p (RFC 9420 §6.3.1).
func (p *PrivateMessage) ContentAAD() ([]byte, error) {
	a := PrivateContentAAD{GroupID: p.GroupID, Epoch: p.Epoch, ContentType: p.ContentType, AuthenticatedData: p.AuthenticatedData}
	return codec.Marshal(&a)
}

// SenderDataAAD returns the SenderDataAAD of p (RFC 9420 §6.3.2).
func (p *PrivateMessage) SenderDataAAD() ([]byte, error) {
	a := SenderDataAAD{GroupID: p.GroupID, Epoch: p.Epoch, ContentType: p.ContentType}
	return codec.Marshal(&a)
}

// SenderData identifies the sender and key generation of a PrivateMessage
// (RFC 9420 §6.3.2).
type SenderData struct {
	LeafIndex  uint32
	Generation uint32
	ReuseGuard [4]byte
}

// MarshalMLS encodes the sender data.
func (s *SenderData) MarshalMLS(w *codec.Writer) {
	w.WriteUint32(s.LeafIndex)
	w.WriteUint32(s.Generation)
	w.WriteRaw(s.ReuseGuard[:])
}

// UnmarshalMLS decodes sender data.
func (s *SenderData) UnmarshalMLS(r *codec.Reader) error {
	var err error
	if s.LeafIndex, err = r.ReadUint32(); err != nil {
		return fmt.Errorf("sender data leaf index: %w", err)
	}
	if s.Generation, err = r.ReadUint32(); err != nil {
		return fmt.Errorf("sender data generation: %w", err)
	}
	g, err := r.ReadRaw(4)
	if err != nil {
		return fmt.Errorf("sender data reuse guard: %w", err)
	}
	copy(s.ReuseGuard[:], g)
	return nil
}

// SenderDataAAD is the AEAD associated data of the sender data encryption
// (RFC 9420 §6.3.2).
type SenderDataAAD struct {
	GroupID     []byte
	Epoch       uint64
	ContentType ContentType
}

// MarshalMLS encodes the associated data.
func (s *SenderDataAAD) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(s.GroupID)
	w.WriteUint64(s.Epoch)
	w.WriteUint8(uint8(s.ContentType))
}

// PrivateContentAAD is the AEAD associated data of the content encryption
// (RFC 9420 §6.3.1).
type PrivateContentAAD struct {
	GroupID           []byte
	Epoch             uint64
	ContentType       ContentType
	AuthenticatedData []byte
}

// MarshalMLS encodes the associated data.
func (p *PrivateContentAAD) MarshalMLS(w *codec.Writer) {
	w.WriteOpaque(p.GroupID)
	w.WriteUint64(p.Epoch)
	w.WriteUint8(uint8(p.ContentType))
	w.WriteOpaque(p.AuthenticatedData)
}

// PrivateMessageContent is the plaintext of a PrivateMessage (RFC 9420
// §6.3.1): the content body selected by ContentType, the auth data, and
// Padding zero bytes. ContentType is not itself encoded (it travels in the
// PrivateMessage); set it before UnmarshalMLS.
type PrivateMessageContent struct {
	ContentType     ContentType
	ApplicationData []byte
	Proposal        *Proposal
	Commit          *Commit
	Auth            FramedContentAuthData
	Padding         int
}

// MarshalMLS encodes the plaintext, followed by Padding zero bytes.
func (c *PrivateMessageContent) MarshalMLS(w *codec.Writer) {
	writeContentBody(w, c.ContentType, c.ApplicationData, c.Proposal, c.Commit)
	c.Auth.MarshalFor(w, c.ContentType)
	if c.Padding > 0 {
		w.WriteRaw(make([]byte, c.Padding))
	}
}

// UnmarshalMLS decodes the plaintext of content type c.ContentType and
// consumes the rest of r as padding. The content's length follows from its
// own encoding; every byte after the auth data must be zero (RFC 9420
// §6.3.1), otherwise it fails with codec.ErrInvalidValue.
func (c *PrivateMessageContent) UnmarshalMLS(r *codec.Reader) error {
	ct := c.ContentType
	*c = PrivateMessageContent{ContentType: ct}
	var err error
	if c.ApplicationData, c.Proposal, c.Commit, err = readContentBody(r, ct); err != nil {
		return fmt.Errorf("private message content: %w", err)
	}
	if err = c.Auth.UnmarshalFor(r, ct); err != nil {
		return fmt.Errorf("private message content auth: %w", err)
	}
	pad, err := r.ReadRaw(r.Len())
	if err != nil {
		return fmt.Errorf("private message content padding: %w", err)
	}
	for _, b := range pad {
		if b != 0 {
			return fmt.Errorf("%w: non-zero padding", codec.ErrInvalidValue)
		}
	}
	c.Padding = len(pad)
	return nil
}

// FramedContent returns the FramedContent that c carries, completed with
// the fields of the PrivateMessage m and the decrypted sender leaf index
// (RFC 9420 §6.3.1).
func (c *PrivateMessageContent) FramedContent(m *PrivateMessage, leafIndex uint32) FramedContent {
	return FramedContent{
		GroupID:           m.GroupID,
		Epoch:             m.Epoch,
		Sender:            Sender{SenderType: SenderTypeMember, LeafIndex: leafIndex},
		AuthenticatedData: m.AuthenticatedData,
		ContentType:       m.ContentType,
		ApplicationData:   c.ApplicationData,
		Proposal:          c.Proposal,
		Commit:            c.Commit,
	}
}

// MLSMessage is the outermost MLS message (RFC 9420 §6): a version (only
// mls10 is accepted) and a wire format selecting exactly one of the
// pointer fields.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

// MarshalMLS encodes the message. The field selected by WireFormat must be set.
func (m *MLSMessage) MarshalMLS(w *codec.Writer) {
	w.WriteUint16(uint16(m.Version))
	w.WriteUint16(uint16(m.WireFormat))
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage.MarshalMLS(w)
	case WireFormatPrivateMessage:
		m.PrivateMessage.MarshalMLS(w)
	case WireFormatWelcome:
		m.Welcome.MarshalMLS(w)
	case WireFormatGroupInfo:
		m.GroupInfo.MarshalMLS(w)
	case WireFormatKeyPackage:
		m.KeyPackage.MarshalMLS(w)
	}
}

// UnmarshalMLS decodes a message. A version other than mls10 or an unknown
// wire format fails with ErrUnknownValue.
func (m *MLSMessage) UnmarshalMLS(r *codec.Reader) error {
	*m = MLSMessage{}
	v, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("mls message version: %w", err)
	}
	m.Version = ProtocolVersion(v)
	if m.Version != ProtocolVersionMLS10 {
		return fmt.Errorf("%w: protocol version %d", ErrUnknownValue, v)
	}
	wf, err := r.ReadUint16()
	if err != nil {
		return fmt.Errorf("mls message wire format: %w", err)
	}
	m.WireFormat = WireFormat(wf)
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = &PublicMessage{}
		err = m.PublicMessage.UnmarshalMLS(r)
	case WireFormatPrivateMessage:
		m.PrivateMessage = &PrivateMessage{}
		err = m.PrivateMessage.UnmarshalMLS(r)
	case WireFormatWelcome:
		m.Welcome = &Welcome{}
		err = m.Welcome.UnmarshalMLS(r)
	case WireFormatGroupInfo:
		m.GroupInfo = &GroupInfo{}
		err = m.GroupInfo.UnmarshalMLS(r)
	case WireFormatKeyPackage:
		m.KeyPackage = &KeyPackage{}
		err = m.KeyPackage.UnmarshalMLS(r)
	default:
		return fmt.Errorf("%w: wire format %d", ErrUnknownValue, wf)
	}
	if err != nil {
		return fmt.Errorf("mls message: %w", err)
	}
	return nil
}
