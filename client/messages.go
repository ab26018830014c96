package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/crypto/identity"
)

// Sent identifies a message the session sent.
type Sent struct {
	Seq int64  `json:"seq"` // the room's sequence number
	ID  string `json:"id"`  // the content message id
}

// Decode decodes and validates the content of a TypeContent message.
func (m Message) Decode() (*content.Message, error) {
	if m.Type != TypeContent {
		return nil, fmt.Errorf("message %d of %s is a %s message, not content", m.Seq, m.Room, m.Type)
	}
	return content.Decode(m.Content)
}

// SendContent sends body as a content message, answering or referring to
// the message with content id inReplyTo if not empty.
func (s *Session) SendContent(ctx context.Context, roomID string, body content.Body, inReplyTo string) (Sent, error) {
	m := content.New(body)
	m.InReplyTo = inReplyTo
	raw, err := content.Encode(m)
	if err != nil {
		return Sent{}, err
	}
	seq, err := s.Send(ctx, roomID, raw)
	return Sent{Seq: seq, ID: m.ID}, err
}

// SendText sends markdown text.
func (s *Session) SendText(ctx context.Context, roomID, markdown string) (Sent, error) {
	return s.SendContent(ctx, roomID, &content.Text{Markdown: markdown}, "")
}

// SendFHIR sends a FHIR R4 resource (JSON), which is validated first.
func (s *Session) SendFHIR(ctx context.Context, roomID string, resource []byte) (Sent, error) {
	return s.SendContent(ctx, roomID, &content.FHIR{Resource: resource}, "")
}

// contentAt returns the decoded content message at seq of the room.
func (s *Session) contentAt(ctx context.Context, roomID string, seq int64) (Message, *content.Message, error) {
	m, err := s.Message(ctx, roomID, seq)
	if err != nil {
		return Message{}, nil, err
	}
	c, err := m.Decode()
	if err != nil {
		return m, nil, err
	}
	return m, c, nil
}

// AckAlert acknowledges the sepsis alert at seq of the room.
func (s *Session) AckAlert(ctx context.Context, roomID string, seq int64, note string) (Sent, error) {
	_, c, err := s.contentAt(ctx, roomID, seq)
	if err != nil {
		return Sent{}, err
	}
	alert, ok := c.Body.(*content.Alert)
	if !ok {
		return Sent{}, fmt.Errorf("message %d of %s is not an alert", seq, roomID)
	}
	return s.SendContent(ctx, roomID, &content.AlertAck{AlertEvent: c.ID, AlertID: alert.AlertID, AckedBy: s.prof.UserID,
		Time: content.At(s.now()), Note: note}, c.ID)
}

// RequestConsent sends a consent request carrying a draft or proposed FHIR
// Consent, with an explanation in markdown.
func (s *Session) RequestConsent(ctx context.Context, roomID string, consent []byte, markdown string) (Sent, error) {
	return s.SendContent(ctx, roomID, &content.ConsentRequest{Consent: consent, Markdown: markdown}, "")
}

// consentSignatureLabel is the purpose label of consent signatures made
// with the identity key.
const consentSignatureLabel = "consent"

// consentSignatureAlgorithm names the signature scheme in the response.
const consentSignatureAlgorithm = "ed25519-medicus-identity"

// AnswerConsent answers the consent request at seq: the request's Consent
// becomes active (give) or rejected, and the response is signed with the
// user's identity key, so that every member can verify who consented.
func (s *Session) AnswerConsent(ctx context.Context, roomID string, seq int64, give bool) (Sent, error) {
	_, c, err := s.contentAt(ctx, roomID, seq)
	if err != nil {
		return Sent{}, err
	}
	req, ok := c.Body.(*content.ConsentRequest)
	if !ok || req.Consent == nil {
		return Sent{}, fmt.Errorf("message %d of %s is not a consent request with a Consent", seq, roomID)
	}
	var resource map[string]json.RawMessage
	if err := json.Unmarshal(req.Consent, &resource); err != nil {
		return Sent{}, fmt.Errorf("decode requested consent: %w", err)
	}
	status := "rejected"
	if give {
		status = "active"
	}
	resource["status"], _ = json.Marshal(status)
	resource["dateTime"], _ = json.Marshal(s.now().UTC().Format("2006-01-02T15:04:05Z"))
	consent, err := json.Marshal(resource)
	if err != nil {
		return Sent{}, err
	}
	resp := &content.ConsentResponse{Request: c.ID, Consent: consent, Signer: s.prof.UserID, SignatureAlgorithm: consentSignatureAlgorithm}
	input, err := resp.SigningInput()
	if err != nil {
		return Sent{}, err
	}
	resp.Signature = s.ident.Sign(consentSignatureLabel, input)
	return s.SendContent(ctx, roomID, resp, c.ID)
}

// ConsentRecord is a consent conversation as exported by ExportConsent.
type ConsentRecord struct {
	Room      string          `json:"room"`
	Request   json.RawMessage `json:"request_consent"`
	Requester string          `json:"requested_by"`
	Response  json.RawMessage `json:"consent"`
	Given     bool            `json:"given"`
	Signer    string          `json:"signer"`
	Signature []byte          `json:"signature"`
	Algorithm string          `json:"signature_algorithm"`
	// SignerKey is the signer's identity key the signature verified under;
	// Verified says whether that key was verified by safety number.
	SignerKey []byte `json:"signer_identity_key"`
	Verified  bool   `json:"signer_key_verified"`
}

// ErrConsentSignature means a consent response's signature does not verify
// under the signer's pinned identity key, or the signer is not the member
// who sent it.
var ErrConsentSignature = errors.New("client: consent signature does not verify")

// ExportConsent verifies the consent response at seq (its signature under
// the signer's pinned identity key, and that the signer sent it) and
// returns the record of request and answer.
func (s *Session) ExportConsent(ctx context.Context, roomID string, seq int64) (*ConsentRecord, error) {
	m, c, err := s.contentAt(ctx, roomID, seq)
	if err != nil {
		return nil, err
	}
	resp, ok := c.Body.(*content.ConsentResponse)
	if !ok {
		return nil, fmt.Errorf("message %d of %s is not a consent response", seq, roomID)
	}
	if resp.Signer != m.Sender {
		return nil, fmt.Errorf("%w: signed for %s but sent by %s", ErrConsentSignature, resp.Signer, m.Sender)
	}
	s.mu.Lock()
	p, known := s.pins.Pins[resp.Signer]
	s.mu.Unlock()
	if !known {
		return nil, fmt.Errorf("%w: no identity key known for %s", ErrConsentSignature, resp.Signer)
	}
	input, err := resp.SigningInput()
	if err != nil {
		return nil, err
	}
	if resp.SignatureAlgorithm != consentSignatureAlgorithm || identity.VerifySignature(p.Key, consentSignatureLabel, input, resp.Signature) != nil {
		return nil, fmt.Errorf("%w: response %d of %s", ErrConsentSignature, seq, roomID)
	}
	rec := &ConsentRecord{Room: roomID, Response: resp.Consent, Given: resp.Given(), Signer: resp.Signer, Signature: resp.Signature,
		Algorithm: resp.SignatureAlgorithm, SignerKey: p.Key, Verified: p.Verified}
	// Find the request among the cached messages.
	msgs, err := s.History(ctx, roomID, 1, 100000)
	if err != nil {
		return nil, err
	}
	for _, hm := range msgs {
		if hm.Type != TypeContent {
			continue
		}
		if rc, err := hm.Decode(); err == nil && rc.ID == resp.Request {
			if req, ok := rc.Body.(*content.ConsentRequest); ok {
				rec.Request, rec.Requester = req.Consent, hm.Sender
			}
		}
	}
	return rec, nil
}
