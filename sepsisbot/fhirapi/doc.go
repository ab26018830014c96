// Package fhirapi connects the sepsis bot to hospital FHIR R4 systems: a
// small REST endpoint that accepts Observations pushed to it, and a poller
// that fetches new Observations from a hospital FHIR server.
//
// The endpoint (NewHandler) implements the interactions a sender needs:
// create (POST [base]/Observation, FHIR R4 §3.1.0.7 "create", also
// conditional), update (PUT [base]/Observation/<id> or conditional,
// §3.1.0.4), and transaction/batch (POST [base] with a Bundle of such
// entries, §3.1.0.11), plus the capabilities interaction
// (GET [base]/metadata). Requests other than
// capabilities must carry the configured bearer token. Errors are OperationOutcomes with
// stable issue codes; values the bot cannot use are reported in the
// OperationOutcome of a successful answer and otherwise ignored. The
// endpoint does not store resources: it hands the mapped measurements to a
// Sink and forgets the JSON.
//
// The Poller searches [base]/Observation?_lastUpdated=gt<cursor> (§3.1.1.5
// "Paging" for the next links), follows next links on the same origin only,
// and persists its cursor in a file so a restart neither loses nor re-reads
// much.
//
// TLS is the caller's: serve the handler with an http.Server that has a
// certificate, and give the poller an http.Client that trusts the
// hospital's CA.
package fhirapi

import (
	"context"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

// Sink receives the measurements mapped from one request or one poll.
// It is implemented by the bot's patient state (sepsisbot/ingest).
type Sink interface {
	// Ingest stores measurements. An error makes the endpoint answer 503
	// and the poller keep its cursor, so the data are sent again.
	Ingest(ctx context.Context, ms []fhirobs.Measurement) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, ms []fhirobs.Measurement) error

// Ingest calls f.
func (f SinkFunc) Ingest(ctx context.Context, ms []fhirobs.Measurement) error { return f(ctx, ms) }
