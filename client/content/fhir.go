package content

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// FHIR carries one FHIR R4 resource as JSON: an Observation,
// DiagnosticReport, Consent, QuestionnaireResponse or Questionnaire. The
// resource is validated on Encode and Decode (see ParseFHIR); its bytes are
// kept as sent, so what a receiver stores is what the sender wrote.
type FHIR struct {
	Resource json.RawMessage `json:"resource"`

	parsed *Resource
}

// Type returns TypeFHIR.
func (*FHIR) Type() Type { return TypeFHIR }

func (b *FHIR) validate(*Message) error {
	r, err := ParseFHIR(b.Resource)
	if err != nil {
		return err
	}
	b.parsed = r
	return nil
}

// Parsed returns the validated resource of a FHIR body that came from
// Decode or went through Encode, or nil before that.
func (b *FHIR) Parsed() *Resource { return b.parsed }

// Resource is a validated FHIR R4 resource: its type, its JSON as given, and
// exactly one of the typed fields, decoded with the structs of
// github.com/samply/golang-fhir-models.
type Resource struct {
	ResourceType string
	JSON         json.RawMessage

	Observation           *fhir.Observation
	DiagnosticReport      *fhir.DiagnosticReport
	Consent               *fhir.Consent
	QuestionnaireResponse *fhir.QuestionnaireResponse
	Questionnaire         *fhir.Questionnaire
}

// The FHIR R4 resource types a message may carry.
const (
	ResourceObservation           = "Observation"
	ResourceDiagnosticReport      = "DiagnosticReport"
	ResourceConsent               = "Consent"
	ResourceQuestionnaireResponse = "QuestionnaireResponse"
	ResourceQuestionnaire         = "Questionnaire"
)

// ParseFHIR validates one FHIR R4 resource in JSON and returns it decoded.
// It checks, and fails with ErrInvalid (ErrTooLarge, ErrMalformed) otherwise:
//
//   - at most MaxFHIRSize bytes, strict JSON (see Decode), one object;
//   - resourceType is one of the five supported types;
//   - FHIR JSON rules: no null, no empty object, array or string (R4
//     ele-1, JSON representation §2.6.2); no element the R4 definition of
//     the type does not have (extensions go in "extension"); contained
//     resources and primitive extensions ("_x") are not supported;
//   - value types: every element has its R4 JSON type (string, number,
//     integer, boolean, object, array); codes have no surrounding
//     whitespace; dateTime, date and instant elements match their R4
//     regular expressions;
//   - every Reference.reference is a literal reference: "Type/id",
//     "Type/id/_history/vid", an absolute http(s) URL ending so, or
//     "urn:uuid:"/"urn:oid:";
//   - required elements and status codes of the type (Observation: status,
//     code; DiagnosticReport: status, code; Consent: status, scope,
//     category, policy or policyRule (ppc-1); QuestionnaireResponse: status,
//     linkId of every item; Questionnaire: status, linkId and type of every
//     item), and status codes from the R4 value sets;
//   - Observation obs-6: no dataAbsentReason together with a value; at
//     most one value[x] and effective[x]; component code; referenceRange
//     low, high or text (obs-3);
//   - backbone elements: DiagnosticReport.media link; Consent.verification
//     verified; Consent.provision actor role and reference, data meaning
//     and reference; Questionnaire item enableWhen question, operator and
//     one answer[x]; answerOption and initial one value[x].
func ParseFHIR(raw []byte) (*Resource, error) {
	if len(raw) > MaxFHIRSize {
		return nil, tooLarge("resource", len(raw), MaxFHIRSize)
	}
	if err := checkStrictJSON(raw, MaxDepth); err != nil {
		return nil, fmt.Errorf("%w: resource: %v", ErrMalformed, err)
	}
	var tree any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("%w: resource: %v", ErrMalformed, sanitize(err))
	}
	top, ok := tree.(map[string]any)
	if !ok {
		return nil, invalid("resource", "not a JSON object")
	}
	rt, _ := top["resourceType"].(string)
	if err := walkFHIR(rt, tree, 0); err != nil {
		return nil, err
	}
	r := &Resource{ResourceType: rt, JSON: raw}
	var err error
	switch rt {
	case ResourceObservation:
		r.Observation = new(fhir.Observation)
		err = decodeResource(raw, r.Observation, top, "status", "code")
		if err == nil {
			err = checkObservation(r.Observation)
		}
	case ResourceDiagnosticReport:
		r.DiagnosticReport = new(fhir.DiagnosticReport)
		err = decodeResource(raw, r.DiagnosticReport, top, "status", "code")
	case ResourceConsent:
		r.Consent = new(fhir.Consent)
		err = decodeResource(raw, r.Consent, top, "status", "scope", "category")
		if err == nil && top["policy"] == nil && top["policyRule"] == nil {
			err = invalid("Consent", "needs policy or policyRule (ppc-1)")
		}
	case ResourceQuestionnaireResponse:
		r.QuestionnaireResponse = new(fhir.QuestionnaireResponse)
		err = decodeResource(raw, r.QuestionnaireResponse, top, "status")
		if err == nil {
			err = checkResponseItems(r.QuestionnaireResponse.Item)
		}
	case ResourceQuestionnaire:
		r.Questionnaire = new(fhir.Questionnaire)
		err = decodeResource(raw, r.Questionnaire, top, "status")
		if err == nil {
			err = checkQuestionnaireItems(top["item"])
		}
	case "":
		return nil, invalid("resourceType", "missing")
	default:
		return nil, invalidf("resourceType", "%q is not supported (Observation, DiagnosticReport, Consent, QuestionnaireResponse, Questionnaire)", truncate(rt, 40))
	}
	if err == nil {
		err = checkBackbones(rt, top)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// decodeResource checks that the required top-level elements are present
// (the typed structs cannot tell a missing status from the first code) and
// decodes raw strictly into v, an R4 struct plus resourceType.
func decodeResource(raw []byte, v any, top map[string]any, required ...string) error {
	rt := top["resourceType"].(string)
	for _, name := range required {
		if _, ok := top[name]; !ok {
			return invalidf(rt+"."+name, "required element missing")
		}
	}
	// The R4 structs have no resourceType field, so it is taken out
	// before the strict decoding; the tree was checked to be strict JSON.
	fields := make(map[string]any, len(top))
	for k, v := range top {
		if k != "resourceType" {
			fields[k] = v
		}
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, rt, err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return invalidf(rt+"."+ute.Field, "wrong JSON type %s", ute.Value)
		}
		msg := err.Error()
		if strings.Contains(msg, "unknown field") {
			return invalidf(rt, "element not defined in R4 or not supported: %s", truncate(strings.TrimPrefix(msg, "json: "), 100))
		}
		// The code types of golang-fhir-models report unknown codes.
		return invalidf(rt, "%s", truncate(msg, 120))
	}
	return checkDecimals(rt, reflect.TypeOf(v), top)
}

var numberType = reflect.TypeFor[json.Number]()

// checkDecimals walks the JSON tree along the Go type it was decoded into
// and requires a JSON number wherever the type has a json.Number (FHIR
// decimal): encoding/json would also accept a string holding a number,
// which FHIR JSON forbids (R4 §2.6.2.5).
func checkDecimals(path string, t reflect.Type, tree any) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == numberType {
		if _, ok := tree.(json.Number); !ok {
			return invalid(path, "decimal must be a JSON number")
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Slice:
		list, _ := tree.([]any)
		for _, e := range list {
			if err := checkDecimals(path, t.Elem(), e); err != nil {
				return err
			}
		}
	case reflect.Struct:
		obj, _ := tree.(map[string]any)
		if obj == nil {
			return nil
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if e, ok := obj[name]; ok && name != "" {
				if err := checkDecimals(path+"."+name, f.Type, e); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// R4 primitive formats (FHIR R4 §2.24 "Data Types", the regex of each).
var (
	fhirDateTime = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$`)
	fhirDate     = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$`)
	fhirInstant  = regexp.MustCompile(`^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$`)
	fhirCode     = regexp.MustCompile(`^[^\s]+( [^\s]+)*$`)
	fhirID       = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	// A literal reference (R4 §2.3.0 "Reference", ref-1): relative
	// Type/id[/_history/vid], or the same after an http(s) base URL.
	fhirLiteralRef = regexp.MustCompile(`^(https?://[^\s/]+(/[^\s/]+)*/)?[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}(/_history/[A-Za-z0-9\-.]{1,64})?$`)
	fhirURNRef     = regexp.MustCompile(`^urn:(uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|oid:[0-2](\.(0|[1-9][0-9]*))+)$`)
)

// Elements whose values are of a date-like primitive type, by name. The
// names are unambiguous within the five supported resources and the data
// types they use.
var (
	dateTimeElements = map[string]bool{
		"effectiveDateTime": true, "valueDateTime": true, "answerDateTime": true,
		"dateTime": true, "authored": true, "date": true, "start": true, "end": true,
		"creation": true, "time": true,
	}
	instantElements = map[string]bool{"issued": true, "effectiveInstant": true, "lastUpdated": true}
	dateElements    = map[string]bool{"valueDate": true, "answerDate": true, "approvalDate": true, "lastReviewDate": true}
)

// walkFHIR applies the generic FHIR JSON rules to every element of the
// resource tree.
func walkFHIR(path string, v any, depth int) error {
	switch v := v.(type) {
	case nil:
		return invalid(path, "null is not allowed in FHIR JSON")
	case map[string]any:
		if len(v) == 0 {
			return invalid(path, "empty object (ele-1)")
		}
		for k, e := range v {
			p := path + "." + k
			if strings.HasPrefix(k, "_") {
				return invalid(p, "primitive extensions are not supported")
			}
			if k == "resourceType" && depth > 0 {
				return invalid(p, "contained resources are not supported")
			}
			if k == "contained" {
				return invalid(p, "contained resources are not supported")
			}
			if s, ok := e.(string); ok {
				if err := checkFHIRString(p, k, s); err != nil {
					return err
				}
			}
			if err := walkFHIR(p, e, depth+1); err != nil {
				return err
			}
		}
	case []any:
		if len(v) == 0 {
			return invalid(path, "empty array (ele-1)")
		}
		for _, e := range v {
			if s, ok := e.(string); ok {
				if err := checkFHIRString(path, lastElement(path), s); err != nil {
					return err
				}
			}
			if err := walkFHIR(path, e, depth+1); err != nil {
				return err
			}
		}
	case string:
		if strings.TrimSpace(v) == "" {
			return invalid(path, "empty string")
		}
	case json.Number:
		if len(v) > 40 {
			return invalid(path, "number too long")
		}
	}
	return nil
}

func lastElement(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// checkFHIRString checks a string element by its name.
func checkFHIRString(path, name, s string) error {
	switch {
	case name == "reference":
		if !fhirLiteralRef.MatchString(s) && !fhirURNRef.MatchString(s) {
			return invalid(path, "not a literal reference (Type/id, absolute URL, urn:uuid: or urn:oid:)")
		}
	case name == "id":
		if !fhirID.MatchString(s) {
			return invalid(path, "not a FHIR id")
		}
	case name == "code" || name == "status" || name == "language":
		if !fhirCode.MatchString(s) {
			return invalid(path, "not a FHIR code (whitespace)")
		}
	case name == "system" || name == "url":
		if strings.ContainsAny(s, " \t\r\n") {
			return invalid(path, "not a URI (whitespace)")
		}
	case dateTimeElements[name]:
		if !fhirDateTime.MatchString(s) {
			return invalid(path, "not a FHIR dateTime")
		}
	case instantElements[name]:
		if !fhirInstant.MatchString(s) {
			return invalid(path, "not a FHIR instant")
		}
	case dateElements[name]:
		if !fhirDate.MatchString(s) {
			return invalid(path, "not a FHIR date")
		}
	}
	return nil
}

// checkObservation applies the Observation rules the structs cannot express.
func checkObservation(o *fhir.Observation) error {
	hasValue := o.ValueQuantity != nil || o.ValueCodeableConcept != nil || o.ValueString != nil ||
		o.ValueBoolean != nil || o.ValueInteger != nil || o.ValueRange != nil || o.ValueRatio != nil ||
		o.ValueSampledData != nil || o.ValueTime != nil || o.ValueDateTime != nil || o.ValuePeriod != nil
	if hasValue && o.DataAbsentReason != nil {
		return invalid("Observation.dataAbsentReason", "must not be present with a value (obs-6)")
	}
	n := 0
	for _, set := range []bool{o.ValueQuantity != nil, o.ValueCodeableConcept != nil, o.ValueString != nil,
		o.ValueBoolean != nil, o.ValueInteger != nil, o.ValueRange != nil, o.ValueRatio != nil,
		o.ValueSampledData != nil, o.ValueTime != nil, o.ValueDateTime != nil, o.ValuePeriod != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return invalid("Observation.value[x]", "more than one value")
	}
	n = 0
	for _, set := range []bool{o.EffectiveDateTime != nil, o.EffectivePeriod != nil, o.EffectiveTiming != nil, o.EffectiveInstant != nil} {
		if set {
			n++
		}
	}
	if n > 1 {
		return invalid("Observation.effective[x]", "more than one value")
	}
	return nil
}

// checkResponseItems requires linkId on every QuestionnaireResponse item,
// recursively, and at most one value[x] per answer.
func checkResponseItems(items []fhir.QuestionnaireResponseItem) error {
	for _, it := range items {
		if it.LinkId == "" {
			return invalid("QuestionnaireResponse.item.linkId", "required element missing")
		}
		for _, a := range it.Answer {
			n := 0
			for _, set := range []bool{a.ValueBoolean != nil, a.ValueDecimal != nil, a.ValueInteger != nil,
				a.ValueDate != nil, a.ValueDateTime != nil, a.ValueTime != nil, a.ValueString != nil,
				a.ValueUri != nil, a.ValueAttachment != nil, a.ValueCoding != nil, a.ValueQuantity != nil,
				a.ValueReference != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				return invalid("QuestionnaireResponse.item.answer.value[x]", "exactly one value required")
			}
			if err := checkResponseItems(a.Item); err != nil {
				return err
			}
		}
		if err := checkResponseItems(it.Item); err != nil {
			return err
		}
	}
	return nil
}

// checkQuestionnaireItems requires, on every Questionnaire item
// (recursively), linkId and type; on every enableWhen, question, operator
// and exactly one answer[x]; on every answerOption and initial, exactly one
// value[x]. It reads the JSON tree because the typed structs turn missing
// codes into the first code and missing choices into zero values.
func checkQuestionnaireItems(items any) error {
	for _, it := range objects(items) {
		if err := requireAll("Questionnaire.item", it, "linkId", "type"); err != nil {
			return err
		}
		for _, ew := range objects(it["enableWhen"]) {
			if err := requireAll("Questionnaire.item.enableWhen", ew, "question", "operator"); err != nil {
				return err
			}
			if err := exactlyOneChoice("Questionnaire.item.enableWhen.answer[x]", ew, "answer"); err != nil {
				return err
			}
		}
		for _, f := range []string{"answerOption", "initial"} {
			for _, o := range objects(it[f]) {
				if err := exactlyOneChoice("Questionnaire.item."+f+".value[x]", o, "value"); err != nil {
					return err
				}
			}
		}
		if err := checkQuestionnaireItems(it["item"]); err != nil {
			return err
		}
	}
	return nil
}

// checkBackbones applies the required elements and invariants of backbone
// elements that the typed structs cannot tell from absent ones.
func checkBackbones(rt string, top map[string]any) error {
	switch rt {
	case ResourceObservation:
		for _, c := range objects(top["component"]) {
			if err := requireAll("Observation.component", c, "code"); err != nil {
				return err
			}
		}
		for _, rr := range append(objects(top["referenceRange"]), componentRanges(top)...) {
			if rr["low"] == nil && rr["high"] == nil && rr["text"] == nil {
				return invalid("Observation.referenceRange", "needs low, high or text (obs-3)")
			}
		}
	case ResourceDiagnosticReport:
		for _, m := range objects(top["media"]) {
			if err := requireAll("DiagnosticReport.media", m, "link"); err != nil {
				return err
			}
		}
	case ResourceConsent:
		for _, v := range objects(top["verification"]) {
			if err := requireAll("Consent.verification", v, "verified"); err != nil {
				return err
			}
		}
		return checkProvisions(objects(top["provision"]))
	}
	return nil
}

func componentRanges(top map[string]any) []map[string]any {
	var out []map[string]any
	for _, c := range objects(top["component"]) {
		out = append(out, objects(c["referenceRange"])...)
	}
	return out
}

// checkProvisions requires role and reference on provision actors and
// meaning and reference on provision data, recursively.
func checkProvisions(ps []map[string]any) error {
	for _, p := range ps {
		for _, a := range objects(p["actor"]) {
			if err := requireAll("Consent.provision.actor", a, "role", "reference"); err != nil {
				return err
			}
		}
		for _, d := range objects(p["data"]) {
			if err := requireAll("Consent.provision.data", d, "meaning", "reference"); err != nil {
				return err
			}
		}
		if err := checkProvisions(objects(p["provision"])); err != nil {
			return err
		}
	}
	return nil
}

// objects returns v as a list of JSON objects: v itself if it is one, its
// object elements if it is an array, nothing otherwise (the strict typed
// decoding has already refused wrong shapes).
func objects(v any) []map[string]any {
	switch v := v.(type) {
	case map[string]any:
		return []map[string]any{v}
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, e := range v {
			if o, ok := e.(map[string]any); ok {
				out = append(out, o)
			}
		}
		return out
	}
	return nil
}

func requireAll(path string, obj map[string]any, names ...string) error {
	for _, n := range names {
		if _, ok := obj[n]; !ok {
			return invalidf(path+"."+n, "required element missing")
		}
	}
	return nil
}

// exactlyOneChoice requires exactly one element named prefix + an upper-case
// type name (a FHIR choice element such as value[x]).
func exactlyOneChoice(path string, obj map[string]any, prefix string) error {
	n := 0
	for k := range obj {
		if len(k) > len(prefix) && strings.HasPrefix(k, prefix) && k[len(prefix)] >= 'A' && k[len(prefix)] <= 'Z' {
			n++
		}
	}
	if n != 1 {
		return invalid(path, "exactly one value required")
	}
	return nil
}
