// Package dicom recognises DICOM Part 10 files and reads the few tags a
// chat shows before download — modality, study date, study and series
// description, body part — and, only when the sender opts in, patient name
// and id. It is a small bounded reader of its own (PS3.10 §7 file format,
// PS3.5 §7 data elements, implicit and explicit VR little endian, deflated
// explicit VR little endian), not a general DICOM library: it stops reading
// as soon as it has passed the last tag it wants, skips everything else
// without allocating for it, and never reads more than MaxScanBytes.
//
// General DICOM parsers allocate a buffer of the length an element
// declares before reading it: github.com/suyashkumar/dicom v1.0.7, given a
// 188-byte file whose study description declares 2 GiB, allocates 2 GiB
// before failing (measured; this reader allocates nothing for it and
// reports ErrMalformed). Files arrive from CDs and other hospitals and must
// not be able to do that; on the five sample files of that library both
// readers extract the same values.
package dicom

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/medicus-health/medicus/client/content"
)

// MediaType is the media type of DICOM Part 10 files (RFC 3240).
const MediaType = "application/dicom"

// MaxScanBytes bounds the bytes of the data set Read looks at (after
// decompression for deflated files). The wanted tags come early in every
// file; a file that has not reached them by then yields what was found.
const MaxScanBytes = 16 << 20

// Errors of Read, for errors.Is.
var (
	// ErrNotDICOM means the input does not start with a 128-byte preamble
	// and "DICM" (PS3.10 §7.1).
	ErrNotDICOM = errors.New("dicom: not a DICOM Part 10 file")
	// ErrMalformed means the file is DICOM but its encoding is broken.
	ErrMalformed = errors.New("dicom: malformed file")
	// ErrUnsupported means a valid but unsupported encoding (explicit VR big
	// endian, retired since 2004).
	ErrUnsupported = errors.New("dicom: unsupported transfer syntax")
)

// Summary is what Read extracts.
type Summary struct {
	Modality          string // (0008,0060), e.g. "CT"
	StudyDate         string // (0008,0020), "YYYYMMDD" or empty
	StudyDescription  string // (0008,1030)
	SeriesDescription string // (0008,103E)
	BodyPart          string // (0018,0015), e.g. "CHEST"
	PatientName       string // (0010,0010), only with Options.IncludePatient
	PatientID         string // (0010,0020), only with Options.IncludePatient
	TransferSyntax    string // (0002,0010) UID
}

// Options control Read.
type Options struct {
	// IncludePatient asks for patient name and id. Leave it false unless
	// the sender chose to share them.
	IncludePatient bool
}

// Content returns the summary in the form of an attachment message
// (client/content.DICOMSummary). Values are already cleaned to its limits.
func (s *Summary) Content() *content.DICOMSummary {
	return &content.DICOMSummary{
		Modality:          s.Modality,
		StudyDate:         s.StudyDate,
		StudyDescription:  s.StudyDescription,
		SeriesDescription: s.SeriesDescription,
		BodyPart:          s.BodyPart,
		PatientName:       s.PatientName,
		PatientID:         s.PatientID,
	}
}

// IsDICOM reports whether header, the first bytes of a file (at least 132),
// has the DICOM Part 10 preamble and prefix.
func IsDICOM(header []byte) bool {
	return len(header) >= 132 && string(header[128:132]) == "DICM"
}

// Tags, as group<<16 | element.
const (
	tagTransferSyntax    = 0x00020010
	tagSpecificCharset   = 0x00080005
	tagStudyDate         = 0x00080020
	tagModality          = 0x00080060
	tagStudyDescription  = 0x00081030
	tagSeriesDescription = 0x0008103E
	tagPatientName       = 0x00100010
	tagPatientID         = 0x00100020
	tagBodyPart          = 0x00180015
	tagPixelData         = 0x7FE00010
	tagItem              = 0xFFFEE000
	tagItemDelimiter     = 0xFFFEE00D
	tagSequenceDelimiter = 0xFFFEE0DD
)

const (
	undefinedLength = 0xFFFFFFFF
	maxDepth        = 16
	maxValue        = 1024 // longest value of a wanted tag that is read
)

// Transfer syntaxes (PS3.5 §10, Annex A).
const (
	tsImplicitLE = "1.2.840.10008.1.2"
	tsExplicitBE = "1.2.840.10008.1.2.2"
	tsDeflatedLE = "1.2.840.10008.1.2.1.99"
)

// errEnough stops the scan once the wanted tags are behind.
var errEnough = errors.New("enough")

// errLimit stops the scan at MaxScanBytes.
var errLimit = errors.New("scan limit")

type parser struct {
	r        *bufio.Reader
	n        int64 // bytes consumed from r
	limit    int64
	explicit bool
	charset  string
	opts     Options
	s        Summary
}

// Read reads a DICOM Part 10 file from r and returns its summary. It reads
// at most 132 + the file meta group + MaxScanBytes bytes and stops at the
// first data element after (0018,0015). Errors wrap ErrNotDICOM,
// ErrMalformed or ErrUnsupported, or are r's read errors. It never panics.
func Read(r io.Reader, opts Options) (*Summary, error) {
	br := bufio.NewReader(r)
	head := make([]byte, 132)
	if _, err := io.ReadFull(br, head); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, ErrNotDICOM
		}
		return nil, fmt.Errorf("dicom: read preamble: %w", err)
	}
	if !IsDICOM(head) {
		return nil, ErrNotDICOM
	}
	p := &parser{r: br, limit: 64 << 10, explicit: true, opts: opts}
	if err := p.metaGroup(); err != nil {
		return nil, err
	}
	switch p.s.TransferSyntax {
	case tsImplicitLE:
		p.explicit = false
	case tsExplicitBE:
		return nil, fmt.Errorf("%w: explicit VR big endian", ErrUnsupported)
	case tsDeflatedLE:
		// PS3.5 §A.5: the data set after the meta group is raw deflate.
		p.r = bufio.NewReader(inflateErrors{flate.NewReader(p.r)})
	}
	p.n, p.limit = 0, MaxScanBytes
	err := p.dataset(0, -1)
	switch {
	case err == nil, errors.Is(err, errEnough), errors.Is(err, errLimit):
		return &p.s, nil
	default:
		return nil, err
	}
}

// metaGroup reads the file meta information (group 0002, always explicit
// VR little endian, PS3.10 §7.1) and keeps the transfer syntax.
func (p *parser) metaGroup() error {
	for {
		g, err := p.r.Peek(2)
		if err == io.EOF && len(g) == 0 {
			break // an empty data set
		}
		if err != nil {
			return fmt.Errorf("%w: file meta information: %v", ErrMalformed, err)
		}
		if binary.LittleEndian.Uint16(g) != 0x0002 {
			break
		}
		tag, _, vl, err := p.header()
		if err != nil {
			return err
		}
		if vl == undefinedLength {
			return fmt.Errorf("%w: undefined length in file meta information", ErrMalformed)
		}
		if tag == tagTransferSyntax {
			v, err := p.value(vl)
			if err != nil {
				return err
			}
			p.s.TransferSyntax = strings.TrimRight(string(v), "\x00 ")
			continue
		}
		if err := p.skip(int64(vl)); err != nil {
			return err
		}
	}
	if p.s.TransferSyntax == "" {
		return fmt.Errorf("%w: no transfer syntax", ErrMalformed)
	}
	return nil
}

// read reads exactly len(b) bytes within the limit.
func (p *parser) read(b []byte) error {
	if p.n+int64(len(b)) > p.limit {
		return errLimit
	}
	n, err := io.ReadFull(p.r, b)
	p.n += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (p *parser) skip(n int64) error {
	if p.n+n > p.limit {
		// Tell a file that really is this long (stop here) from one that
		// only claims to be (malformed), reading no further than the limit.
		m, err := io.CopyN(io.Discard, p.r, p.limit-p.n)
		p.n += m
		if err == io.EOF {
			return fmt.Errorf("%w: value runs past the end of the file", ErrMalformed)
		}
		if err != nil {
			return err
		}
		return errLimit
	}
	m, err := io.CopyN(io.Discard, p.r, n)
	p.n += m
	if err == io.EOF {
		return fmt.Errorf("%w: value runs past the end of the file", ErrMalformed)
	}
	return err
}

// value reads a value of a wanted tag, or skips it and returns nil when it
// is longer than maxValue.
func (p *parser) value(vl uint32) ([]byte, error) {
	if vl > maxValue {
		return nil, p.skip(int64(vl))
	}
	b := make([]byte, vl)
	if err := p.read(b); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: value runs past the end of the file", ErrMalformed)
		}
		return nil, err
	}
	return b, nil
}

// longVRs have a 2-byte reserved field and a 4-byte length in explicit VR
// (PS3.5 §7.1.2, Table 7.1-1).
var longVRs = map[string]bool{"OB": true, "OD": true, "OF": true, "OL": true, "OV": true, "OW": true,
	"SQ": true, "SV": true, "UC": true, "UN": true, "UR": true, "UT": true, "UV": true}

// header reads a data element header and returns tag, VR ("" when implicit
// or for item tags) and value length.
func (p *parser) header() (tag uint32, vr string, vl uint32, err error) {
	var b [8]byte
	if err := p.read(b[:4]); err != nil {
		return 0, "", 0, p.eof(err)
	}
	tag = uint32(binary.LittleEndian.Uint16(b[0:]))<<16 | uint32(binary.LittleEndian.Uint16(b[2:]))
	// Item and delimiter tags have no VR in any transfer syntax (PS3.5 §7.5).
	if tag>>16 == 0xFFFE || !p.explicit {
		if err := p.read(b[4:8]); err != nil {
			return 0, "", 0, p.eof(err)
		}
		return tag, "", binary.LittleEndian.Uint32(b[4:]), nil
	}
	if err := p.read(b[4:6]); err != nil {
		return 0, "", 0, p.eof(err)
	}
	vr = string(b[4:6])
	if vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z' {
		return 0, "", 0, fmt.Errorf("%w: invalid VR at byte %d", ErrMalformed, p.n-2)
	}
	if longVRs[vr] {
		var l [6]byte // 2 reserved bytes, then a 4-byte length
		if err := p.read(l[:]); err != nil {
			return 0, "", 0, p.eof(err)
		}
		return tag, vr, binary.LittleEndian.Uint32(l[2:]), nil
	}
	if err := p.read(b[6:8]); err != nil {
		return 0, "", 0, p.eof(err)
	}
	return tag, vr, uint32(binary.LittleEndian.Uint16(b[6:8])), nil
}

func (p *parser) eof(err error) error {
	if err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: element header cut off", ErrMalformed)
	}
	return err
}

// dataset reads data elements until length bytes are consumed, or, for an
// undefined length (-1), until an item delimiter (nested) or the end of the
// file (top level).
func (p *parser) dataset(depth int, length int64) error {
	start := p.n
	for length < 0 || p.n-start < length {
		if depth == 0 && length < 0 {
			if b, err := p.r.Peek(1); len(b) == 0 && err == io.EOF {
				return nil // the end of the file, between elements
			}
		}
		tag, vr, vl, err := p.header()
		if err != nil {
			return err
		}
		if tag == tagItemDelimiter {
			if depth > 0 && length < 0 {
				return nil
			}
			return fmt.Errorf("%w: unexpected item delimiter", ErrMalformed)
		}
		if depth == 0 && tag > tagBodyPart {
			return errEnough
		}
		if err := p.element(depth, tag, vr, vl); err != nil {
			return err
		}
	}
	if p.n-start != length {
		return fmt.Errorf("%w: item longer than its declared length", ErrMalformed)
	}
	return nil
}

// element handles the value of one data element.
func (p *parser) element(depth int, tag uint32, vr string, vl uint32) error {
	switch {
	case vl == undefinedLength:
		// Only sequences, UN holding a sequence, and encapsulated pixel data
		// have undefined length (PS3.5 §7.1.3, §A.4).
		if vr != "" && vr != "SQ" && vr != "UN" && !(tag == tagPixelData && (vr == "OB" || vr == "OW")) {
			return fmt.Errorf("%w: undefined length for VR %s", ErrMalformed, vr)
		}
		if vr == "UN" {
			// PS3.5 §6.2.2: the content is implicit VR little endian.
			saved := p.explicit
			p.explicit = false
			err := p.sequence(depth+1, -1, false)
			p.explicit = saved
			return err
		}
		return p.sequence(depth+1, -1, tag == tagPixelData)
	case vr == "SQ":
		return p.sequence(depth+1, int64(vl), false)
	case depth == 0 && p.wanted(tag):
		v, err := p.value(vl)
		if err != nil || v == nil {
			return err
		}
		p.keep(tag, v)
		return nil
	default:
		return p.skip(int64(vl))
	}
}

// sequence reads the items of a sequence (or the fragments of encapsulated
// pixel data) until length bytes or a sequence delimiter.
func (p *parser) sequence(depth int, length int64, fragments bool) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: sequences nested deeper than %d", ErrMalformed, maxDepth)
	}
	start := p.n
	for length < 0 || p.n-start < length {
		var b [8]byte
		if err := p.read(b[:]); err != nil {
			return p.eof(err)
		}
		tag := uint32(binary.LittleEndian.Uint16(b[0:]))<<16 | uint32(binary.LittleEndian.Uint16(b[2:]))
		vl := binary.LittleEndian.Uint32(b[4:])
		switch {
		case tag == tagSequenceDelimiter:
			if length >= 0 {
				return fmt.Errorf("%w: sequence delimiter in a sequence of defined length", ErrMalformed)
			}
			return nil
		case tag != tagItem:
			return fmt.Errorf("%w: expected an item in a sequence", ErrMalformed)
		case fragments:
			if vl == undefinedLength {
				return fmt.Errorf("%w: pixel data fragment of undefined length", ErrMalformed)
			}
			if err := p.skip(int64(vl)); err != nil {
				return err
			}
		case vl == undefinedLength:
			if err := p.dataset(depth, -1); err != nil {
				return err
			}
		default:
			if err := p.dataset(depth, int64(vl)); err != nil {
				return err
			}
		}
	}
	if p.n-start != length {
		return fmt.Errorf("%w: sequence longer than its declared length", ErrMalformed)
	}
	return nil
}

func (p *parser) wanted(tag uint32) bool {
	switch tag {
	case tagSpecificCharset, tagStudyDate, tagModality, tagStudyDescription, tagSeriesDescription, tagBodyPart:
		return true
	case tagPatientName, tagPatientID:
		return p.opts.IncludePatient
	}
	return false
}

// keep stores a wanted value, decoded and cleaned to the limits of
// content.DICOMSummary.
func (p *parser) keep(tag uint32, v []byte) {
	if tag == tagSpecificCharset {
		p.charset = strings.TrimSpace(strings.TrimRight(string(v), "\x00"))
		return
	}
	s := p.decodeString(v)
	switch tag {
	case tagStudyDate:
		s = strings.ReplaceAll(s, ".", "") // ACR-NEMA style YYYY.MM.DD
		if content.ValidDICOMDate(s) {
			p.s.StudyDate = s
		}
	case tagModality:
		p.s.Modality = clean(s, 16)
	case tagStudyDescription:
		p.s.StudyDescription = clean(s, 64)
	case tagSeriesDescription:
		p.s.SeriesDescription = clean(s, 64)
	case tagBodyPart:
		p.s.BodyPart = clean(s, 16)
	case tagPatientName:
		// PS3.5 §6.2.1: alphabetic=ideographic=phonetic groups, components
		// separated by "^". Show the alphabetic group, components spaced.
		name, _, _ := strings.Cut(s, "=")
		p.s.PatientName = clean(strings.Join(strings.FieldsFunc(name, func(r rune) bool { return r == '^' }), " "), 324)
	case tagPatientID:
		p.s.PatientID = clean(s, 64)
	}
}

// decodeString turns a value into UTF-8 per (0008,0005): ISO_IR 192 is
// UTF-8, ISO_IR 100 Latin-1; for the default repertoire and anything else
// non-ASCII bytes become U+FFFD.
func (p *parser) decodeString(v []byte) string {
	v = bytes.TrimRight(v, "\x00 ")
	switch p.charset {
	case "ISO_IR 192":
		return strings.ToValidUTF8(string(v), "\uFFFD")
	case "ISO_IR 100":
		var b strings.Builder
		for _, c := range v {
			b.WriteRune(rune(c))
		}
		return b.String()
	}
	var b strings.Builder
	for _, c := range v {
		if c < 0x80 {
			b.WriteByte(c)
		} else {
			b.WriteRune(utf8.RuneError)
		}
	}
	return b.String()
}

// clean drops control characters, trims spaces and cuts s to at most max
// bytes on a rune boundary.
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		s = s[:max]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return strings.TrimSpace(s)
}

// inflateErrors reports a corrupt deflate stream as ErrMalformed.
type inflateErrors struct{ r io.Reader }

func (d inflateErrors) Read(b []byte) (int, error) {
	n, err := d.r.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: deflated data set: %v", ErrMalformed, err)
	}
	return n, err
}
