//go:build race

package mls

// raceEnabled lets the heaviest property tests use smaller groups in the
// slow public-key suites when the race detector multiplies their cost.
const raceEnabled = true
