package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/crypto/attach"
)

// FileOptions tunes SendFile.
type FileOptions struct {
	// MediaType overrides the detected media type.
	MediaType string
	// Name overrides the file name shown to receivers.
	Name string
	// IncludePatient puts a DICOM file's patient name and id into the
	// message's summary; by default they are left out.
	IncludePatient bool
}

// detectMediaType guesses a file's media type from its first bytes and
// its name; DICOM Part 10 files are recognised by their "DICM" preamble.
func detectMediaType(head []byte, name string) string {
	if len(head) >= 132 && string(head[128:132]) == "DICM" {
		return "application/dicom"
	}
	if t := mime.TypeByExtension(strings.ToLower(filepath.Ext(name))); t != "" {
		return t
	}
	return http.DetectContentType(head)
}

// SendFile encrypts the file at path with a fresh key (package
// crypto/attach), streams the ciphertext to the homeserver's media store
// and sends an attachment message with the key, the ciphertext's SHA-256,
// media type, size and name. Memory use does not grow with the file's
// size. Images get an encrypted thumbnail.
func (s *Session) SendFile(ctx context.Context, roomID, path string, opts *FileOptions) (Sent, error) {
	if opts == nil {
		opts = &FileOptions{}
	}
	f, err := os.Open(path)
	if err != nil {
		return Sent{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Sent{}, err
	}
	if !st.Mode().IsRegular() {
		return Sent{}, fmt.Errorf("%s is not a regular file", path)
	}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Sent{}, err
	}
	a := &content.Attachment{MediaType: opts.MediaType, Name: opts.Name}
	if a.Name == "" {
		a.Name = filepath.Base(path)
	}
	if a.MediaType == "" {
		a.MediaType = detectMediaType(head, a.Name)
	}
	blob, err := s.uploadEncrypted(ctx, roomID, f, st.Size())
	if err != nil {
		return Sent{}, err
	}
	a.Blob = blob
	if err := s.describeFile(ctx, roomID, f, a, opts); err != nil {
		s.log.Warn("file preview skipped", "err", err)
	}
	return s.SendContent(ctx, roomID, a, "")
}

// uploadEncrypted encrypts src (size bytes) on the fly into the upload.
func (s *Session) uploadEncrypted(ctx context.Context, roomID string, src io.Reader, size int64) (content.Blob, error) {
	enc := attach.NewEncrypter(src)
	resp, err := s.api.UploadMedia(ctx, roomID, enc, attach.CiphertextSize(size))
	if err != nil {
		return content.Blob{}, fmt.Errorf("upload encrypted file: %w", err)
	}
	sealed, ok := enc.Sealed()
	if !ok {
		return content.Blob{}, errors.New("upload ended before the whole file was encrypted")
	}
	if sealed.PlaintextSize != size {
		return content.Blob{}, fmt.Errorf("the file changed while it was sent (%d bytes, expected %d)", sealed.PlaintextSize, size)
	}
	if resp.MediaID != hex.EncodeToString(sealed.SHA256[:]) {
		return content.Blob{}, fmt.Errorf("the homeserver stored a blob with hash %s, not the one sent", resp.MediaID)
	}
	return content.Blob{MediaID: resp.MediaID, Server: serverOf(s.prof.UserID), Scheme: attach.Scheme, Key: sealed.Key[:], Nonce: sealed.NoncePrefix[:],
		SHA256: sealed.SHA256[:], Size: size}, nil
}

// ErrNotAttachment means a message carries no attachment.
var ErrNotAttachment = errors.New("client: message has no attachment")

// Attachment returns the attachment of the message at seq.
func (s *Session) Attachment(ctx context.Context, roomID string, seq int64) (*content.Attachment, error) {
	_, c, err := s.contentAt(ctx, roomID, seq)
	if err != nil {
		return nil, err
	}
	a, ok := c.Body.(*content.Attachment)
	if !ok {
		return nil, fmt.Errorf("message %d of %s: %w", seq, roomID, ErrNotAttachment)
	}
	return a, nil
}

// Download fetches the attachment of the message at seq, checks the
// ciphertext's SHA-256 and decrypts it into outPath. The file appears only
// complete and authenticated: it is written to a temporary file beside
// outPath and renamed at the end.
func (s *Session) Download(ctx context.Context, roomID string, seq int64, outPath string) (*content.Attachment, error) {
	a, err := s.Attachment(ctx, roomID, seq)
	if err != nil {
		return nil, err
	}
	return a, s.downloadBlob(ctx, roomID, &a.Blob, outPath)
}

// DownloadThumbnail decrypts the thumbnail of the attachment at seq.
func (s *Session) DownloadThumbnail(ctx context.Context, roomID string, seq int64) ([]byte, error) {
	a, err := s.Attachment(ctx, roomID, seq)
	if err != nil {
		return nil, err
	}
	if a.Thumbnail == nil {
		return nil, fmt.Errorf("attachment %d of %s has no thumbnail", seq, roomID)
	}
	body, err := s.api.OpenMediaFrom(ctx, a.Thumbnail.MediaID, roomID, a.Thumbnail.Server, -1, -1)
	if err != nil {
		return nil, fmt.Errorf("download thumbnail: %w", err)
	}
	defer body.Close()
	var buf bytes.Buffer
	if _, err := attach.Decrypt(ctx, &buf, io.LimitReader(body, attach.CiphertextSize(content.MaxThumbnailSize)+1), a.Thumbnail.Params(), a.Thumbnail.Hash()); err != nil {
		return nil, fmt.Errorf("decrypt thumbnail: %w", err)
	}
	return buf.Bytes(), nil
}

func (s *Session) downloadBlob(ctx context.Context, roomID string, b *content.Blob, outPath string) error {
	body, err := s.api.OpenMediaFrom(ctx, b.MediaID, roomID, b.Server, -1, -1)
	if err != nil {
		return fmt.Errorf("download %s: %w", b.MediaID, err)
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(outPath), ".medicus-download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := attach.Decrypt(ctx, tmp, io.LimitReader(body, attach.CiphertextSize(b.Size)+1), b.Params(), b.Hash())
	if err == nil && n != b.Size {
		err = fmt.Errorf("decrypted %d bytes, the message says %d", n, b.Size)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("decrypt %s: %w", b.MediaID, err)
	}
	return os.Rename(tmp.Name(), outPath)
}

// serverOf returns the server part of a user id.
func serverOf(userID string) string {
	_, s, _ := strings.Cut(userID, ":")
	return s
}
