package dicom

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/medicus-health/medicus/client/content"
)

// fileBuilder writes DICOM Part 10 files for the tests.
type fileBuilder struct {
	meta, data bytes.Buffer
	explicit   bool
}

func putTag(w *bytes.Buffer, tag uint32) {
	binary.Write(w, binary.LittleEndian, uint16(tag>>16))
	binary.Write(w, binary.LittleEndian, uint16(tag))
}

// element appends one data element to w, explicit or implicit VR.
func element(w *bytes.Buffer, explicit bool, tag uint32, vr string, value []byte, length uint32) {
	putTag(w, tag)
	if explicit {
		w.WriteString(vr)
		if longVRs[vr] {
			w.Write([]byte{0, 0})
			binary.Write(w, binary.LittleEndian, length)
		} else {
			binary.Write(w, binary.LittleEndian, uint16(length))
		}
	} else {
		binary.Write(w, binary.LittleEndian, length)
	}
	w.Write(value)
}

// pad makes a DICOM value of even length.
func pad(s string) []byte {
	if len(s)%2 == 1 {
		s += " "
	}
	return []byte(s)
}

func (b *fileBuilder) str(tag uint32, vr, s string) *fileBuilder {
	v := pad(s)
	element(&b.data, b.explicit, tag, vr, v, uint32(len(v)))
	return b
}

func (b *fileBuilder) raw(p []byte) *fileBuilder { b.data.Write(p); return b }

func newFile(ts string) *fileBuilder {
	b := &fileBuilder{explicit: ts != tsImplicitLE}
	element(&b.meta, true, 0x00020001, "OB", []byte{0, 1}, 2)
	element(&b.meta, true, 0x00020002, "UI", pad("1.2.840.10008.5.1.4.1.1.2"), uint32(len(pad("1.2.840.10008.5.1.4.1.1.2"))))
	v := append([]byte(ts), 0)[:len(pad(ts))]
	element(&b.meta, true, tagTransferSyntax, "UI", v, uint32(len(v)))
	return b
}

func (b *fileBuilder) bytes(deflate bool) []byte {
	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	var gl bytes.Buffer
	element(&gl, true, 0x00020000, "UL", binary.LittleEndian.AppendUint32(nil, uint32(b.meta.Len())), 4)
	out.Write(gl.Bytes())
	out.Write(b.meta.Bytes())
	if deflate {
		fw, _ := flate.NewWriter(&out, flate.BestCompression)
		fw.Write(b.data.Bytes())
		fw.Close()
	} else {
		out.Write(b.data.Bytes())
	}
	return out.Bytes()
}

// ctStudy writes a typical CT header: a defined-length sequence, an
// undefined-length sequence with nested items, the wanted tags, then
// encapsulated pixel data.
func ctStudy(ts string) *fileBuilder {
	b := newFile(ts)
	ex := b.explicit
	b.str(tagSpecificCharset, "CS", "ISO_IR 100")
	b.str(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2")
	b.str(tagStudyDate, "DA", "20261128")
	b.str(tagModality, "CS", "CT")
	// (0008,1032) Procedure Code Sequence, defined length, one item.
	var item, seq bytes.Buffer
	element(&item, ex, 0x00080100, "SH", pad("CTTHX"), uint32(len(pad("CTTHX"))))
	putTag(&seq, tagItem)
	binary.Write(&seq, binary.LittleEndian, uint32(item.Len()))
	seq.Write(item.Bytes())
	b.str(tagStudyDescription, "LO", "CT THORAX mit KM")
	element(&b.data, ex, 0x00081032, "SQ", seq.Bytes(), uint32(seq.Len()))
	b.str(tagSeriesDescription, "LO", "Thorax 1.5 B31f")
	// (0008,1140) Referenced Image Sequence, undefined length, nested.
	var nested bytes.Buffer
	putTag(&nested, tagItem)
	binary.Write(&nested, binary.LittleEndian, uint32(undefinedLength))
	element(&nested, ex, 0x00081150, "UI", pad("1.2.3"), uint32(len(pad("1.2.3"))))
	element(&nested, ex, 0x00081155, "UI", pad("1.2.3.4"), uint32(len(pad("1.2.3.4"))))
	putTag(&nested, tagItemDelimiter)
	binary.Write(&nested, binary.LittleEndian, uint32(0))
	putTag(&nested, tagSequenceDelimiter)
	binary.Write(&nested, binary.LittleEndian, uint32(0))
	element(&b.data, ex, 0x00081140, "SQ", nested.Bytes(), undefinedLength)
	b.str(tagPatientName, "PN", latin1("Müller^Anna^^Dr."))
	b.str(tagPatientID, "LO", "4711-0815")
	b.str(0x00100030, "DA", "19700101")
	b.str(tagBodyPart, "CS", "CHEST")
	b.str(0x00180050, "DS", "1.5")
	// Encapsulated pixel data: offset table item, one fragment, delimiter.
	var frags bytes.Buffer
	putTag(&frags, tagItem)
	binary.Write(&frags, binary.LittleEndian, uint32(0))
	putTag(&frags, tagItem)
	binary.Write(&frags, binary.LittleEndian, uint32(6))
	frags.Write([]byte{0xFF, 0xD8, 0xFF, 0xD9, 0, 0})
	putTag(&frags, tagSequenceDelimiter)
	binary.Write(&frags, binary.LittleEndian, uint32(0))
	element(&b.data, ex, tagPixelData, "OB", frags.Bytes(), undefinedLength)
	return b
}

func latin1(s string) string {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r))
	}
	return string(b)
}

func TestReadSummary(t *testing.T) {
	want := Summary{Modality: "CT", StudyDate: "20261128", StudyDescription: "CT THORAX mit KM",
		SeriesDescription: "Thorax 1.5 B31f", BodyPart: "CHEST"}
	tests := []struct {
		name    string
		file    []byte
		ts      string
		patient bool
	}{
		{"explicit VR little endian", ctStudy("1.2.840.10008.1.2.1").bytes(false), "1.2.840.10008.1.2.1", false},
		{"implicit VR little endian", ctStudy(tsImplicitLE).bytes(false), tsImplicitLE, false},
		{"deflated explicit VR little endian", ctStudy(tsDeflatedLE).bytes(true), tsDeflatedLE, false},
		{"JPEG baseline (encapsulated)", ctStudy("1.2.840.10008.1.2.4.50").bytes(false), "1.2.840.10008.1.2.4.50", false},
		{"patient opt-in", ctStudy("1.2.840.10008.1.2.1").bytes(false), "1.2.840.10008.1.2.1", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Read(bytes.NewReader(tc.file), Options{IncludePatient: tc.patient})
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			w := want
			w.TransferSyntax = tc.ts
			if tc.patient {
				w.PatientName = "Müller Anna Dr."
				w.PatientID = "4711-0815"
			}
			if *s != w {
				t.Fatalf("got  %+v\nwant %+v", *s, w)
			}
			// The summary goes into a valid attachment message.
			m := content.New(&content.Attachment{Blob: content.Blob{MediaID: "m1", Scheme: "aes256gcm-chunked-v1",
				Key: make([]byte, 32), Nonce: make([]byte, 4), SHA256: make([]byte, 32), Size: int64(len(tc.file))},
				MediaType: MediaType, Name: "ct.dcm", DICOM: s.Content()})
			if _, err := content.Encode(m); err != nil {
				t.Fatalf("summary is not valid content: %v", err)
			}
		})
	}
}

func TestPatientNeverReadWithoutOptIn(t *testing.T) {
	file := ctStudy("1.2.840.10008.1.2.1").bytes(false)
	s, err := Read(bytes.NewReader(file), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.PatientName != "" || s.PatientID != "" {
		t.Fatalf("patient data without opt-in: %+v", s)
	}
}

func TestLatin1AndCleaning(t *testing.T) {
	b := newFile("1.2.840.10008.1.2.1")
	b.str(tagSpecificCharset, "CS", "ISO_IR 100")
	b.str(tagStudyDate, "DA", "2026.11.28")
	b.str(tagModality, "CS", "MR\x01")
	b.str(tagStudyDescription, "LO", latin1("Schädel nativ ")+strings.Repeat("x", 80))
	s, err := Read(bytes.NewReader(b.bytes(false)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.StudyDate != "20261128" || s.Modality != "MR" || !strings.HasPrefix(s.StudyDescription, "Schädel nativ x") || len(s.StudyDescription) > 64 {
		t.Fatalf("%+v", s)
	}
	// Without a character set, non-ASCII bytes become U+FFFD.
	b = newFile("1.2.840.10008.1.2.1")
	b.str(tagStudyDescription, "LO", latin1("Schädel"))
	s, err = Read(bytes.NewReader(b.bytes(false)), Options{})
	if err != nil || s.StudyDescription != "Sch\uFFFDdel" {
		t.Fatalf("%+v %v", s, err)
	}
}

func TestReadStopsAfterWantedTags(t *testing.T) {
	// Garbage after (0018,0015) is never looked at.
	file := newFile("1.2.840.10008.1.2.1").str(tagModality, "CS", "US").str(0x00200010, "SH", "1").raw([]byte("\xff\xff garbage")).bytes(false)
	s, err := Read(bytes.NewReader(file), Options{})
	if err != nil || s.Modality != "US" {
		t.Fatalf("%+v %v", s, err)
	}
}

func TestReadRefuses(t *testing.T) {
	ok := ctStudy("1.2.840.10008.1.2.1").bytes(false)
	huge := newFile("1.2.840.10008.1.2.1")
	element(&huge.data, true, tagStudyDescription, "UT", []byte("tiny"), 0xFFFFFFF0)
	hugeImplicit := newFile(tsImplicitLE)
	element(&hugeImplicit.data, false, tagStudyDescription, "", []byte("tiny"), 0xFFFFFFF0)
	deep := newFile("1.2.840.10008.1.2.1")
	for range maxDepth + 2 {
		element(&deep.data, true, 0x00081140, "SQ", nil, undefinedLength)
		putTag(&deep.data, tagItem)
		binary.Write(&deep.data, binary.LittleEndian, uint32(undefinedLength))
	}
	badItemLen := newFile("1.2.840.10008.1.2.1")
	var seq bytes.Buffer
	putTag(&seq, tagItem)
	binary.Write(&seq, binary.LittleEndian, uint32(3)) // shorter than the element inside
	element(&seq, true, 0x00080100, "SH", pad("CTTHX"), 6)
	element(&badItemLen.data, true, 0x00081032, "SQ", seq.Bytes(), uint32(seq.Len()))
	corruptDeflate := newFile(tsDeflatedLE).bytes(false)
	corruptDeflate = append(corruptDeflate, 0xff, 0xff, 0xff, 0xff, 0xff)

	tests := []struct {
		name string
		file []byte
		want error
	}{
		{"empty", nil, ErrNotDICOM},
		{"short", []byte("DICM"), ErrNotDICOM},
		{"no DICM prefix", append(make([]byte, 128), "DICX...."...), ErrNotDICOM},
		{"PNG", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 200)...), ErrNotDICOM},
		{"meta group cut off", ok[:140], ErrMalformed},
		{"no transfer syntax", append(append(make([]byte, 128), "DICM"...), 0x08, 0, 0x20, 0, 'D', 'A', 8, 0), ErrMalformed},
		{"big endian", newFile(tsExplicitBE).bytes(false), ErrUnsupported},
		{"value past end of file", huge.bytes(false), ErrMalformed},
		{"implicit value past end of file", hugeImplicit.bytes(false), ErrMalformed},
		{"invalid VR", newFile("1.2.840.10008.1.2.1").raw([]byte{8, 0, 0x20, 0, 'd', 'a', 2, 0, '1', '2'}).bytes(false), ErrMalformed},
		{"undefined length string", newFile("1.2.840.10008.1.2.1").raw([]byte{8, 0, 0x30, 0x10, 'U', 'T', 0, 0, 0xff, 0xff, 0xff, 0xff}).bytes(false), ErrMalformed},
		{"sequences too deep", deep.bytes(false), ErrMalformed},
		{"item shorter than its content", badItemLen.bytes(false), ErrMalformed},
		{"element header cut off", ok[:300], ErrMalformed},
		{"corrupt deflate", corruptDeflate, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			s, err := Read(bytes.NewReader(tc.file), Options{IncludePatient: true})
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Read = %+v, %v; want %v", s, err, tc.want)
			}
			if a := after.TotalAlloc - before.TotalAlloc; a > 1<<20 {
				t.Errorf("allocated %d bytes for a %d-byte file", a, len(tc.file))
			}
		})
	}
}

func TestIsDICOM(t *testing.T) {
	if !IsDICOM(ctStudy("1.2.840.10008.1.2.1").bytes(false)[:132]) || IsDICOM(make([]byte, 132)) || IsDICOM([]byte("DICM")) {
		t.Fatal("IsDICOM")
	}
}
