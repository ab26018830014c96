// Package content defines the messages that travel inside MLS application
// messages in a medicus room: a small, versioned JSON envelope (format
// version, message id, type, timestamp, optional in-reply-to) around one
// typed body — text, reply, reaction, edit, retraction, attachment
// reference, FHIR R4 resource, call signalling, sepsis alert and its
// acknowledgment, consent request and consent response.
//
// The format is modelled on the IETF MIMI content format
// (draft-ietf-mimi-content): replies and reactions point at their target with
// in-reply-to, edits and retractions name the message they replace, and
// attachments are external parts that carry the content location, the
// symmetric key and the hash of the ciphertext. Unlike MIMI it is JSON, not
// CBOR, and message ids are chosen at random by the sender rather than
// derived from a hash. docs/content.md is the specification.
//
// Decode is the only way bytes from the network become a Message: it is
// bounded (MaxMessageSize, MaxDepth), strict (unknown fields, duplicate keys,
// trailing data and invalid UTF-8 are refused) and validates every body,
// including FHIR resources, before returning. Encode validates in the same
// way, so a client cannot send what its peers would refuse. Neither panics on
// any input.
package content
