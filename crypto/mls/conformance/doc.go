// Package conformance holds no production code. Its tests run every
// official MLS interoperability test vector file (mlswg/mls-implementations,
// test-vectors/) found in the directory named by MLS_TEST_VECTORS, default
// ../shared/mls-test-vectors beside the repository, against the crypto/mls
// packages, and print one line per file with the cases passed, failed and
// skipped.
//
// A file's format is recognised from the keys of its JSON objects, not from
// its name, so any further file of a known format placed in the directory
// (for example passive-client-random.json) runs without code changes.
package conformance
