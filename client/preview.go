package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/client/dicom"
	"github.com/medicus-health/medicus/crypto/attach/thumbnail"
)

// describeFile adds a DICOM file's summary, or an image's dimensions and
// encrypted thumbnail, to a.
func (s *Session) describeFile(ctx context.Context, roomID string, f *os.File, a *content.Attachment, opts *FileOptions) error {
	if a.MediaType == "application/dicom" {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		sum, err := dicom.Read(f, dicom.Options{IncludePatient: opts.IncludePatient})
		if err != nil {
			return fmt.Errorf("read DICOM header: %w", err)
		}
		a.DICOM = sum.Content()
		return nil
	}
	if !strings.HasPrefix(a.MediaType, "image/") {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// Package thumbnail refuses oversized images from their header, before
	// decoding, and drops all metadata by re-encoding.
	th, err := thumbnail.Make(f)
	if err != nil {
		return fmt.Errorf("thumbnail: %w", err)
	}
	a.Width, a.Height = th.SourceWidth, th.SourceHeight
	w, h := th.Width, th.Height
	buf := bytes.NewBuffer(th.JPEG)
	blob, err := s.uploadEncrypted(ctx, roomID, bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return err
	}
	a.Thumbnail = &content.Thumbnail{Blob: blob, MediaType: "image/jpeg", Width: w, Height: h}
	return nil
}
