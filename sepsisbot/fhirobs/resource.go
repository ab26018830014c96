package fhirobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Size limits of the decoders.
const (
	// MaxObservationBytes bounds one Observation's JSON.
	MaxObservationBytes = 64 << 10
	// MaxBundleBytes bounds one Bundle's JSON.
	MaxBundleBytes = 8 << 20
	// MaxBundleEntries bounds the number of entries of one Bundle.
	MaxBundleEntries = 5000
)

// Coding is a FHIR R4 Coding.
type Coding struct {
	ID           string          `json:"id,omitempty"`
	Extension    json.RawMessage `json:"extension,omitempty"`
	System       string          `json:"system,omitempty"`
	Version      string          `json:"version,omitempty"`
	Code         string          `json:"code,omitempty"`
	Display      string          `json:"display,omitempty"`
	UserSelected *bool           `json:"userSelected,omitempty"`
}

// CodeableConcept is a FHIR R4 CodeableConcept.
type CodeableConcept struct {
	ID        string          `json:"id,omitempty"`
	Extension json.RawMessage `json:"extension,omitempty"`
	Coding    []Coding        `json:"coding,omitempty"`
	Text      string          `json:"text,omitempty"`
}

// Quantity is a FHIR R4 Quantity. Value is a pointer so that an absent value
// is distinguished from zero.
type Quantity struct {
	ID         string          `json:"id,omitempty"`
	Extension  json.RawMessage `json:"extension,omitempty"`
	Value      *float64        `json:"value,omitempty"`
	Comparator string          `json:"comparator,omitempty"`
	Unit       string          `json:"unit,omitempty"`
	System     string          `json:"system,omitempty"`
	Code       string          `json:"code,omitempty"`
}

// Identifier is a FHIR R4 Identifier.
type Identifier struct {
	ID        string          `json:"id,omitempty"`
	Extension json.RawMessage `json:"extension,omitempty"`
	Use       string          `json:"use,omitempty"`
	Type      json.RawMessage `json:"type,omitempty"`
	System    string          `json:"system,omitempty"`
	Value     string          `json:"value,omitempty"`
	Period    json.RawMessage `json:"period,omitempty"`
	Assigner  json.RawMessage `json:"assigner,omitempty"`
}

// Reference is a FHIR R4 Reference.
type Reference struct {
	ID         string          `json:"id,omitempty"`
	Extension  json.RawMessage `json:"extension,omitempty"`
	Reference  string          `json:"reference,omitempty"`
	Type       string          `json:"type,omitempty"`
	Identifier *Identifier     `json:"identifier,omitempty"`
	Display    string          `json:"display,omitempty"`
}

// Period is a FHIR R4 Period.
type Period struct {
	ID        string          `json:"id,omitempty"`
	Extension json.RawMessage `json:"extension,omitempty"`
	Start     string          `json:"start,omitempty"`
	End       string          `json:"end,omitempty"`
}

// Meta is a FHIR R4 Meta.
type Meta struct {
	ID          string          `json:"id,omitempty"`
	Extension   json.RawMessage `json:"extension,omitempty"`
	VersionID   string          `json:"versionId,omitempty"`
	LastUpdated string          `json:"lastUpdated,omitempty"`
	Source      string          `json:"source,omitempty"`
	Profile     []string        `json:"profile,omitempty"`
	Security    json.RawMessage `json:"security,omitempty"`
	Tag         json.RawMessage `json:"tag,omitempty"`
}

// Value holds the value[x] choice of an Observation or component and the
// elements that qualify it. Value types other than Quantity and
// CodeableConcept are kept undecoded.
type Value struct {
	ValueQuantity        *Quantity        `json:"valueQuantity,omitempty"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept,omitempty"`
	ValueString          json.RawMessage  `json:"valueString,omitempty"`
	ValueBoolean         json.RawMessage  `json:"valueBoolean,omitempty"`
	ValueInteger         json.RawMessage  `json:"valueInteger,omitempty"`
	ValueRange           json.RawMessage  `json:"valueRange,omitempty"`
	ValueRatio           json.RawMessage  `json:"valueRatio,omitempty"`
	ValueSampledData     json.RawMessage  `json:"valueSampledData,omitempty"`
	ValueTime            json.RawMessage  `json:"valueTime,omitempty"`
	ValueDateTime        json.RawMessage  `json:"valueDateTime,omitempty"`
	ValuePeriod          json.RawMessage  `json:"valuePeriod,omitempty"`
	DataAbsentReason     *CodeableConcept `json:"dataAbsentReason,omitempty"`
	Interpretation       json.RawMessage  `json:"interpretation,omitempty"`
	ReferenceRange       json.RawMessage  `json:"referenceRange,omitempty"`
}

// Component is a FHIR R4 Observation.component.
type Component struct {
	ID                string          `json:"id,omitempty"`
	Extension         json.RawMessage `json:"extension,omitempty"`
	ModifierExtension json.RawMessage `json:"modifierExtension,omitempty"`
	Code              CodeableConcept `json:"code"`
	Value
}

// Observation is a FHIR R4 Observation. Every element of the R4 definition
// is present, so decoding can refuse unknown elements; the elements the bot
// does not read are kept undecoded.
type Observation struct {
	ResourceType      string            `json:"resourceType"`
	ID                string            `json:"id,omitempty"`
	Meta              *Meta             `json:"meta,omitempty"`
	ImplicitRules     string            `json:"implicitRules,omitempty"`
	Language          string            `json:"language,omitempty"`
	Text              json.RawMessage   `json:"text,omitempty"`
	Contained         json.RawMessage   `json:"contained,omitempty"`
	Extension         json.RawMessage   `json:"extension,omitempty"`
	ModifierExtension json.RawMessage   `json:"modifierExtension,omitempty"`
	Identifier        []Identifier      `json:"identifier,omitempty"`
	BasedOn           json.RawMessage   `json:"basedOn,omitempty"`
	PartOf            json.RawMessage   `json:"partOf,omitempty"`
	Status            string            `json:"status"`
	Category          []CodeableConcept `json:"category,omitempty"`
	Code              CodeableConcept   `json:"code"`
	Subject           *Reference        `json:"subject,omitempty"`
	Focus             json.RawMessage   `json:"focus,omitempty"`
	Encounter         json.RawMessage   `json:"encounter,omitempty"`
	EffectiveDateTime string            `json:"effectiveDateTime,omitempty"`
	EffectivePeriod   *Period           `json:"effectivePeriod,omitempty"`
	EffectiveTiming   json.RawMessage   `json:"effectiveTiming,omitempty"`
	EffectiveInstant  string            `json:"effectiveInstant,omitempty"`
	Issued            string            `json:"issued,omitempty"`
	Performer         json.RawMessage   `json:"performer,omitempty"`
	Value
	Note        json.RawMessage `json:"note,omitempty"`
	BodySite    json.RawMessage `json:"bodySite,omitempty"`
	Method      json.RawMessage `json:"method,omitempty"`
	Specimen    json.RawMessage `json:"specimen,omitempty"`
	Device      json.RawMessage `json:"device,omitempty"`
	HasMember   json.RawMessage `json:"hasMember,omitempty"`
	DerivedFrom json.RawMessage `json:"derivedFrom,omitempty"`
	Component   []Component     `json:"component,omitempty"`
}

// BundleLink is a FHIR R4 Bundle.link.
type BundleLink struct {
	ID        string          `json:"id,omitempty"`
	Extension json.RawMessage `json:"extension,omitempty"`
	Relation  string          `json:"relation"`
	URL       string          `json:"url"`
}

// BundleRequest is a FHIR R4 Bundle.entry.request.
type BundleRequest struct {
	ID              string          `json:"id,omitempty"`
	Extension       json.RawMessage `json:"extension,omitempty"`
	Method          string          `json:"method"`
	URL             string          `json:"url"`
	IfNoneMatch     string          `json:"ifNoneMatch,omitempty"`
	IfModifiedSince string          `json:"ifModifiedSince,omitempty"`
	IfMatch         string          `json:"ifMatch,omitempty"`
	IfNoneExist     string          `json:"ifNoneExist,omitempty"`
}

// BundleResponse is a FHIR R4 Bundle.entry.response.
type BundleResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// BundleSearch is a FHIR R4 Bundle.entry.search.
type BundleSearch struct {
	Mode  string   `json:"mode,omitempty"`
	Score *float64 `json:"score,omitempty"`
}

// BundleEntry is a FHIR R4 Bundle.entry. Resource is kept undecoded so that
// callers can decode it according to its resourceType (see ResourceType).
type BundleEntry struct {
	ID        string          `json:"id,omitempty"`
	Extension json.RawMessage `json:"extension,omitempty"`
	Link      json.RawMessage `json:"link,omitempty"`
	FullURL   string          `json:"fullUrl,omitempty"`
	Resource  json.RawMessage `json:"resource,omitempty"`
	Search    *BundleSearch   `json:"search,omitempty"`
	Request   *BundleRequest  `json:"request,omitempty"`
	Response  *BundleResponse `json:"response,omitempty"`
}

// Bundle is a FHIR R4 Bundle.
type Bundle struct {
	ResourceType  string          `json:"resourceType"`
	ID            string          `json:"id,omitempty"`
	Meta          *Meta           `json:"meta,omitempty"`
	ImplicitRules string          `json:"implicitRules,omitempty"`
	Language      string          `json:"language,omitempty"`
	Identifier    json.RawMessage `json:"identifier,omitempty"`
	Type          string          `json:"type"`
	Timestamp     string          `json:"timestamp,omitempty"`
	Total         *int            `json:"total,omitempty"`
	Link          []BundleLink    `json:"link,omitempty"`
	Entry         []BundleEntry   `json:"entry,omitempty"`
	Signature     json.RawMessage `json:"signature,omitempty"`
}

// Next returns the URL of the Bundle's "next" link, or "".
func (b *Bundle) Next() string {
	for _, l := range b.Link {
		if l.Relation == "next" {
			return l.URL
		}
	}
	return ""
}

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the resource", ErrMalformed)
	}
	return nil
}

// ResourceType returns the resourceType of a JSON resource, or an error
// wrapping ErrMalformed.
func ResourceType(data []byte) (string, error) {
	var r struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if r.ResourceType == "" {
		return "", fmt.Errorf("%w: no resourceType", ErrMalformed)
	}
	return r.ResourceType, nil
}

// DecodeObservation decodes one FHIR R4 Observation in JSON. It returns an
// error wrapping ErrTooLarge for input over MaxObservationBytes and
// ErrMalformed for anything that is not an R4 Observation.
func DecodeObservation(data []byte) (*Observation, error) {
	if len(data) > MaxObservationBytes {
		return nil, fmt.Errorf("decode observation: %w (%d bytes, limit %d)", ErrTooLarge, len(data), MaxObservationBytes)
	}
	var o Observation
	if err := decodeStrict(data, &o); err != nil {
		return nil, fmt.Errorf("decode observation: %w", err)
	}
	if o.ResourceType != "Observation" {
		return nil, fmt.Errorf("decode observation: %w: resourceType %q", ErrMalformed, o.ResourceType)
	}
	return &o, nil
}

// DecodeBundle decodes one FHIR R4 Bundle in JSON, leaving the entries'
// resources undecoded. It returns an error wrapping ErrTooLarge for input
// over MaxBundleBytes or with more than MaxBundleEntries entries, and
// ErrMalformed for anything that is not an R4 Bundle.
func DecodeBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleBytes {
		return nil, fmt.Errorf("decode bundle: %w (%d bytes, limit %d)", ErrTooLarge, len(data), MaxBundleBytes)
	}
	var b Bundle
	if err := decodeStrict(data, &b); err != nil {
		return nil, fmt.Errorf("decode bundle: %w", err)
	}
	if b.ResourceType != "Bundle" {
		return nil, fmt.Errorf("decode bundle: %w: resourceType %q", ErrMalformed, b.ResourceType)
	}
	if len(b.Entry) > MaxBundleEntries {
		return nil, fmt.Errorf("decode bundle: %w (%d entries, limit %d)", ErrTooLarge, len(b.Entry), MaxBundleEntries)
	}
	return &b, nil
}
