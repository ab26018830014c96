package content

import (
	"encoding/hex"
	"strings"

	"github.com/medicus-health/medicus/crypto/attach"
)

// MaxAttachmentSize bounds the declared plaintext size of an attachment
// (1 TiB); the homeserver's own media limit is usually far lower.
const MaxAttachmentSize = 1 << 40

// Blob locates and unlocks one encrypted blob in a homeserver's media store
// (a MIMI external part): where it is, how it is encrypted, and the SHA-256
// of its ciphertext, which the receiver checks while decrypting.
type Blob struct {
	// MediaID is the blob's media id on the homeserver (64 lowercase hex
	// digits, the SHA-256 of the ciphertext on medicus servers).
	MediaID string `json:"media"`
	// Server is the homeserver name holding the blob; empty means the
	// sender's homeserver.
	Server string `json:"server,omitempty"`
	// Scheme is the encryption scheme; version 1 knows only attach.Scheme.
	Scheme string `json:"alg"`
	// Key is the blob's AES-256 key (attach.KeySize bytes).
	Key []byte `json:"key"`
	// Nonce is the random nonce prefix of the chunk nonces
	// (attach.NoncePrefixSize bytes).
	Nonce []byte `json:"nonce"`
	// SHA256 is the SHA-256 of the whole ciphertext (attach.HashSize bytes).
	SHA256 []byte `json:"sha256"`
	// Size is the plaintext size in bytes.
	Size int64 `json:"size"`
}

// Params returns the decryption parameters of b. It must only be called on
// a Blob that passed validation (every decoded Message's blobs did).
func (b *Blob) Params() attach.Params {
	var p attach.Params
	copy(p.Key[:], b.Key)
	copy(p.NoncePrefix[:], b.Nonce)
	return p
}

// Hash returns the expected SHA-256 of the ciphertext.
func (b *Blob) Hash() [attach.HashSize]byte {
	var h [attach.HashSize]byte
	copy(h[:], b.SHA256)
	return h
}

func (b *Blob) validate(prefix string) error {
	if !validMediaID(b.MediaID) {
		return invalid(prefix+"media", "must be 1 to 128 characters of [A-Za-z0-9_-]")
	}
	if b.Server != "" && !validServerName(b.Server) {
		return invalid(prefix+"server", "not a server name")
	}
	if b.Scheme != attach.Scheme {
		return invalidf(prefix+"alg", "unknown scheme (want %s)", attach.Scheme)
	}
	if len(b.Key) != attach.KeySize {
		return invalidf(prefix+"key", "must be %d bytes", attach.KeySize)
	}
	if len(b.Nonce) != attach.NoncePrefixSize {
		return invalidf(prefix+"nonce", "must be %d bytes", attach.NoncePrefixSize)
	}
	if len(b.SHA256) != attach.HashSize {
		return invalidf(prefix+"sha256", "must be %d bytes", attach.HashSize)
	}
	if isHex64(b.MediaID) && b.MediaID != hex.EncodeToString(b.SHA256) {
		return invalid(prefix+"media", "content-addressed media id does not match sha256")
	}
	if b.Size < 0 || b.Size > MaxAttachmentSize {
		return invalid(prefix+"size", "out of range")
	}
	return nil
}

// Thumbnail is a small encrypted preview image of an attachment, with its
// own key and hash.
type Thumbnail struct {
	Blob
	// MediaType is the thumbnail's media type, usually image/jpeg.
	MediaType string `json:"mime"`
	// Width and Height are the thumbnail's dimensions in pixels.
	Width  int `json:"w"`
	Height int `json:"h"`
}

// MaxThumbnailSize bounds a thumbnail's plaintext size.
const MaxThumbnailSize = 1 << 20

// DICOMSummary is what a sender extracted from a DICOM file to show before
// download. Patient name and id appear only if the sender chose to include
// them.
type DICOMSummary struct {
	Modality          string `json:"modality,omitempty"`   // (0008,0060), e.g. CT, MR
	StudyDate         string `json:"study_date,omitempty"` // (0008,0020), YYYYMMDD
	StudyDescription  string `json:"study_desc,omitempty"` // (0008,1030)
	SeriesDescription string `json:"series_desc,omitempty"`
	BodyPart          string `json:"body_part,omitempty"`    // (0018,0015)
	PatientName       string `json:"patient_name,omitempty"` // (0010,0010), opt-in
	PatientID         string `json:"patient_id,omitempty"`   // (0010,0020), opt-in
}

// Attachment refers to an encrypted file uploaded to the media store.
type Attachment struct {
	Blob
	// MediaType is the file's media type, e.g. "image/png",
	// "application/dicom".
	MediaType string `json:"mime"`
	// Name is the file name suggested by the sender (no directories).
	// Receivers still sanitise it before writing a file.
	Name string `json:"name,omitempty"`
	// Width and Height are an image's dimensions in pixels, if known.
	Width  int `json:"w,omitempty"`
	Height int `json:"h,omitempty"`
	// Thumbnail is an optional encrypted preview.
	Thumbnail *Thumbnail `json:"thumb,omitempty"`
	// DICOM is an optional summary of a DICOM file.
	DICOM *DICOMSummary `json:"dicom,omitempty"`
}

// Type returns TypeAttachment.
func (*Attachment) Type() Type { return TypeAttachment }

func (b *Attachment) validate(*Message) error {
	if err := b.Blob.validate(""); err != nil {
		return err
	}
	if !validMediaType(b.MediaType) {
		return invalid("mime", "not a media type")
	}
	if err := checkFileName(b.Name); err != nil {
		return err
	}
	if b.Width < 0 || b.Width > 1<<20 || b.Height < 0 || b.Height > 1<<20 {
		return invalid("w/h", "out of range")
	}
	if t := b.Thumbnail; t != nil {
		if err := t.Blob.validate("thumb."); err != nil {
			return err
		}
		if t.Size > MaxThumbnailSize {
			return invalid("thumb.size", "thumbnail too large")
		}
		if !strings.HasPrefix(t.MediaType, "image/") || !validMediaType(t.MediaType) {
			return invalid("thumb.mime", "not an image media type")
		}
		if t.Width < 1 || t.Width > 4096 || t.Height < 1 || t.Height > 4096 {
			return invalid("thumb.w/h", "out of range")
		}
	}
	if d := b.DICOM; d != nil {
		for _, f := range []struct {
			name, v string
			max     int
		}{
			{"dicom.modality", d.Modality, 16},
			{"dicom.study_date", d.StudyDate, 8},
			{"dicom.study_desc", d.StudyDescription, 64},
			{"dicom.series_desc", d.SeriesDescription, 64},
			{"dicom.body_part", d.BodyPart, 16},
			{"dicom.patient_name", d.PatientName, 324},
			{"dicom.patient_id", d.PatientID, 64},
		} {
			if err := checkLine(f.name, f.v, f.max, false); err != nil {
				return err
			}
		}
		if d.StudyDate != "" && !ValidDICOMDate(d.StudyDate) {
			return invalid("dicom.study_date", "must be YYYYMMDD")
		}
	}
	return nil
}

func checkFileName(s string) error {
	if err := checkLine("name", s, 255, false); err != nil {
		return err
	}
	if strings.ContainsAny(s, "/\\") || s == "." || s == ".." {
		return invalid("name", "must not contain a path")
	}
	return nil
}

func validMediaID(s string) bool {
	return len(s) > 0 && len(s) <= 128 && urlSafe(s)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validServerName accepts DNS names and host:port, lower or upper case.
func validServerName(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// validMediaType accepts "type/subtype" of RFC 6838 restricted-name
// characters, optionally with parameters, at most 127 bytes.
func validMediaType(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	mt := s
	if i := strings.IndexByte(s, ';'); i >= 0 {
		mt = s[:i]
		if err := checkLine("mime", s[i:], 127, false); err != nil {
			return false
		}
	}
	typ, sub, ok := strings.Cut(mt, "/")
	return ok && restrictedName(typ) && restrictedName(sub)
}

// restrictedName is RFC 6838 §4.2 restricted-name.
func restrictedName(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return false
		}
		if !alnum && !strings.ContainsRune("!#$&-^_.+", rune(c)) {
			return false
		}
	}
	return true
}

// ValidDICOMDate reports whether s is a DICOM DA value "YYYYMMDD" (PS3.5
// §6.2) with a plausible month and day, as DICOMSummary.StudyDate must be.
func ValidDICOMDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < 8; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	m := (s[4]-'0')*10 + s[5] - '0'
	d := (s[6]-'0')*10 + s[7] - '0'
	return m >= 1 && m <= 12 && d >= 1 && d <= 31
}
