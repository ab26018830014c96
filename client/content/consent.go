package content

import (
	"encoding/json"
	"fmt"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// ConsentRequest asks a patient for consent: either a draft FHIR Consent
// (status draft or proposed) to accept or reject, or a FHIR Questionnaire
// to answer. Exactly one of the two is set.
type ConsentRequest struct {
	Consent       json.RawMessage `json:"consent,omitempty"`
	Questionnaire json.RawMessage `json:"questionnaire,omitempty"`
	// Markdown optionally explains the request in plain words.
	Markdown string `json:"md,omitempty"`

	parsed *Resource
}

// Type returns TypeConsentRequest.
func (*ConsentRequest) Type() Type { return TypeConsentRequest }

// Parsed returns the validated Consent or Questionnaire of a request that
// came from Decode or went through Encode.
func (b *ConsentRequest) Parsed() *Resource { return b.parsed }

func (b *ConsentRequest) validate(*Message) error {
	if (b.Consent == nil) == (b.Questionnaire == nil) {
		return invalid("consent", "exactly one of consent and questionnaire is required")
	}
	if b.Markdown != "" {
		if err := checkMarkdown("md", b.Markdown); err != nil {
			return err
		}
	}
	if b.Consent != nil {
		r, err := ParseFHIR(b.Consent)
		if err != nil {
			return fmt.Errorf("consent: %w", err)
		}
		if r.Consent == nil {
			return invalid("consent", "not a Consent resource")
		}
		if s := r.Consent.Status; s != fhir.ConsentStateDraft && s != fhir.ConsentStateProposed {
			return invalid("consent.status", "a requested consent must be draft or proposed")
		}
		b.parsed = r
		return nil
	}
	r, err := ParseFHIR(b.Questionnaire)
	if err != nil {
		return fmt.Errorf("questionnaire: %w", err)
	}
	if r.Questionnaire == nil {
		return invalid("questionnaire", "not a Questionnaire resource")
	}
	b.parsed = r
	return nil
}

// MaxSignatureSize bounds ConsentResponse.Signature (room for post-quantum
// signatures).
const MaxSignatureSize = 8 << 10

// ConsentResponse is a patient's answer to a ConsentRequest: a FHIR Consent
// with status active (given) or rejected (refused), optionally the
// QuestionnaireResponse that answers a questionnaire, and a detached
// signature by the patient's identity key over SigningInput.
//
// The signature is made and checked by the client, which holds identity
// keys; this package only carries it and defines the signed bytes.
type ConsentResponse struct {
	// Request is the message id of the ConsentRequest answered.
	Request string `json:"request"`
	// Consent is the FHIR Consent, status "active" or "rejected".
	Consent json.RawMessage `json:"consent"`
	// Answers is the optional FHIR QuestionnaireResponse.
	Answers json.RawMessage `json:"answers,omitempty"`
	// Signer is the user id whose identity key signed.
	Signer string `json:"signer"`
	// SignatureAlgorithm names the signature scheme, e.g. "ed25519".
	SignatureAlgorithm string `json:"sig_alg"`
	// Signature is the detached signature over SigningInput.
	Signature []byte `json:"sig"`

	consent, answers *Resource
}

// Type returns TypeConsentResponse.
func (*ConsentResponse) Type() Type { return TypeConsentResponse }

// ParsedConsent returns the validated Consent of a response that came from
// Decode or went through Encode.
func (b *ConsentResponse) ParsedConsent() *Resource { return b.consent }

// ParsedAnswers returns the validated QuestionnaireResponse, or nil.
func (b *ConsentResponse) ParsedAnswers() *Resource { return b.answers }

// Given reports whether the validated Consent's status is active (consent
// given) rather than rejected.
func (b *ConsentResponse) Given() bool {
	return b.consent != nil && b.consent.Consent.Status == fhir.ConsentStateActive
}

func (b *ConsentResponse) validate(m *Message) error {
	if err := b.validateUnsigned(m); err != nil {
		return err
	}
	if len(b.Signature) == 0 {
		return invalid("sig", "missing")
	}
	if len(b.Signature) > MaxSignatureSize {
		return tooLarge("sig", len(b.Signature), MaxSignatureSize)
	}
	return nil
}

func (b *ConsentResponse) validateUnsigned(m *Message) error {
	if !validID(b.Request) {
		return invalid("request", "must be a message id")
	}
	if m != nil && m.InReplyTo != "" && m.InReplyTo != b.Request {
		return invalid("irt", "must be the request's message id")
	}
	if !validUserID(b.Signer) {
		return invalid("signer", "not a user id")
	}
	if !validToken(b.SignatureAlgorithm, 32) {
		return invalid("sig_alg", "must be 1 to 32 characters of [a-z0-9_.-]")
	}
	r, err := ParseFHIR(b.Consent)
	if err != nil {
		return fmt.Errorf("consent: %w", err)
	}
	if r.Consent == nil {
		return invalid("consent", "not a Consent resource")
	}
	if s := r.Consent.Status; s != fhir.ConsentStateActive && s != fhir.ConsentStateRejected {
		return invalid("consent.status", "an answered consent must be active or rejected")
	}
	b.consent = r
	b.answers = nil
	if b.Answers != nil {
		a, err := ParseFHIR(b.Answers)
		if err != nil {
			return fmt.Errorf("answers: %w", err)
		}
		if a.QuestionnaireResponse == nil {
			return invalid("answers", "not a QuestionnaireResponse resource")
		}
		b.answers = a
	}
	return nil
}

// consentSigningLabel separates consent signatures from every other use of
// an identity key.
const consentSigningLabel = "medicus consent response v1\n"

// SigningInput returns the exact bytes the patient's identity key signs for
// this response: the label "medicus consent response v1" and a newline,
// then the RFC 8785 canonical JSON of the object
//
//	{"answers": A, "consent": C, "request": R, "sig_alg": S, "signer": U}
//
// where C and A are the Consent and QuestionnaireResponse ("answers" left
// out when absent). Canonicalisation makes the signature independent of key
// order, whitespace and escaping, so a receiver recomputes the same bytes
// from the decoded message. The signature field itself is not signed.
// SigningInput validates every other field first and fails with ErrInvalid
// if one is wrong.
func (b *ConsentResponse) SigningInput() ([]byte, error) {
	if err := b.validateUnsigned(nil); err != nil {
		return nil, err
	}
	obj := map[string]json.RawMessage{
		"consent": b.Consent,
	}
	if b.Answers != nil {
		obj["answers"] = b.Answers
	}
	for k, v := range map[string]string{"request": b.Request, "sig_alg": b.SignatureAlgorithm, "signer": b.Signer} {
		s, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		obj[k] = s
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("content: consent signing input: %w", err)
	}
	canon, err := CanonicalJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("content: consent signing input: %w", err)
	}
	return append([]byte(consentSigningLabel), canon...), nil
}
