package dicom

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/medicus-health/medicus/client/content"
)

// FuzzRead checks that Read never panics, fails only with its documented
// errors, and returns only clean UTF-8 within the summary's limits.
func FuzzRead(f *testing.F) {
	f.Add(ctStudy("1.2.840.10008.1.2.1").bytes(false))
	f.Add(ctStudy(tsImplicitLE).bytes(false))
	f.Add(ctStudy(tsDeflatedLE).bytes(true))
	f.Add(newFile(tsExplicitBE).bytes(false))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Read(bytes.NewReader(b), Options{IncludePatient: true})
		if err != nil {
			if !errors.Is(err, ErrNotDICOM) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		for _, v := range []string{s.Modality, s.StudyDate, s.StudyDescription, s.SeriesDescription, s.BodyPart, s.PatientName, s.PatientID} {
			if !utf8.ValidString(v) || len(v) > 324 {
				t.Fatalf("bad value %q", v)
			}
		}
		if s.StudyDate != "" && !content.ValidDICOMDate(s.StudyDate) {
			t.Fatalf("bad date %q", s.StudyDate)
		}
	})
}
