package hl7

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

// Sink receives the measurements of one message. It is implemented by the
// bot's patient state (sepsisbot/ingest).
type Sink interface {
	// Ingest stores measurements; an error makes the receiver answer AR so
	// that the sender retries.
	Ingest(ctx context.Context, ms []fhirobs.Measurement) error
}

// Receiver handles ORU^R01 messages: it parses them, maps their results,
// stores the measurements and builds the acknowledgement.
type Receiver struct {
	// Sink receives the measurements. Required.
	Sink Sink
	// Location is the time zone of timestamps without an offset; UTC if
	// nil.
	Location *time.Location
	// Now returns the current time; time.Now if nil.
	Now func() time.Time
	// ProcessingID is the MSH-11 processing ID accepted (HL7 table 0103:
	// P production, T training, D debugging); "P" if empty, so that test
	// messages of a lab system never reach real patients' state.
	ProcessingID string
	// Logger receives counts per message, never values; slog.Default() if
	// nil.
	Logger *slog.Logger
}

// supportedVersions are the HL7 v2 versions whose ORU^R01 this receiver
// reads (the segments used have the same layout in all of them).
var supportedVersions = map[string]bool{"2.3": true, "2.3.1": true, "2.4": true, "2.5": true, "2.5.1": true, "2.6": true, "2.7": true, "2.7.1": true, "2.8": true}

// HandleMessage processes one message and returns its acknowledgement:
// AA when it was stored (with warnings in ERR segments for results that
// were ignored), AE when it cannot be parsed, AR for another message type,
// version or processing ID, or when the sink fails.
func (rc *Receiver) HandleMessage(ctx context.Context, raw []byte) []byte {
	now := time.Now
	if rc.Now != nil {
		now = rc.Now
	}
	log := rc.Logger
	if log == nil {
		log = slog.Default()
	}
	m, err := Parse(raw)
	if err != nil {
		log.Warn("hl7: unparseable message", "err", err)
		return BuildAck(nil, AckError, "message could not be parsed", []AckDetail{{Code: "102", Severity: "E", Text: err.Error()}}, now())
	}
	if v := m.MSH().Get(12, 1, 1, 1); !supportedVersions[v] {
		return BuildAck(m, AckReject, "unsupported version", []AckDetail{{Segment: "MSH", Seq: 1, Field: 12, Code: "203", Severity: "E", Text: fmt.Sprintf("version %q", v)}}, now())
	}
	want := rc.ProcessingID
	if want == "" {
		want = "P"
	}
	if p := m.MSH().Get(11, 1, 1, 1); p != want {
		return BuildAck(m, AckReject, "unsupported processing id", []AckDetail{{Segment: "MSH", Seq: 1, Field: 11, Code: "202", Severity: "E", Text: fmt.Sprintf("processing id %q, this receiver accepts %q", p, want)}}, now())
	}
	oru, err := ParseORU(m, rc.Location)
	if err != nil {
		code := "207"
		if errors.Is(err, ErrUnsupported) {
			code = "200"
		}
		return BuildAck(m, AckReject, "unsupported message", []AckDetail{{Segment: "MSH", Seq: 1, Field: 9, Code: code, Severity: "E", Text: err.Error()}}, now())
	}
	rep, seqs := oru.mapResults(now())
	if err := rc.Sink.Ingest(ctx, rep.Measurements); err != nil {
		log.Error("hl7: sink failed", "err", err)
		return BuildAck(m, AckReject, "could not store the results; retry", []AckDetail{{Code: "207", Severity: "E", Text: "storage unavailable"}}, now())
	}
	var details []AckDetail
	for i, is := range rep.Issues {
		code := "102"
		if errors.Is(is, fhirobs.ErrUnknownCode) || errors.Is(is, fhirobs.ErrUnit) || errors.Is(is, fhirobs.ErrStatus) {
			code = "103"
		}
		details = append(details, AckDetail{Segment: "OBX", Seq: seqs[i], Code: code, Severity: "W", Text: "ignored: " + is.Err.Error()})
	}
	log.Info("hl7: ORU^R01", "results", len(oru.Results), "measurements", len(rep.Measurements), "ignored", len(rep.Issues))
	return BuildAck(m, AckAccept, "", details, now())
}
