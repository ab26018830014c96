package hl7

import "testing"

// BenchmarkParseAndMapORU parses the laboratory ORU^R01 of the tests (10
// OBX) and maps its results.
func BenchmarkParseAndMapORU(b *testing.B) {
	b.SetBytes(int64(len(labORU)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := Parse([]byte(labORU))
		if err != nil {
			b.Fatal(err)
		}
		oru, err := ParseORU(m, nil)
		if err != nil {
			b.Fatal(err)
		}
		oru.Map(testNow)
	}
}
