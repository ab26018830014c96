package client

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"os"
	"strings"

	_ "image/gif" // image decoders for thumbnails
	_ "image/png"

	"golang.org/x/image/draw"

	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/client/dicom"
)

// Thumbnail limits: images larger than maxImagePixels are not decoded (a
// decompression bomb would otherwise take the memory), and previews fit in
// thumbnailEdge pixels.
const (
	maxImagePixels = 50_000_000
	thumbnailEdge  = 320
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
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return fmt.Errorf("read image header: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxImagePixels {
		return fmt.Errorf("image of %dx%d pixels is too large to preview", cfg.Width, cfg.Height)
	}
	a.Width, a.Height = cfg.Width, cfg.Height
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	img, _, err := image.Decode(f)
	if err != nil {
		return fmt.Errorf("decode image: %w", err)
	}
	w, h := cfg.Width, cfg.Height
	if w > thumbnailEdge || h > thumbnailEdge {
		if w >= h {
			w, h = thumbnailEdge, max(1, h*thumbnailEdge/w)
		} else {
			w, h = max(1, w*thumbnailEdge/h), thumbnailEdge
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, dst, &jpeg.Options{Quality: 80}); err != nil {
		return err
	}
	blob, err := s.uploadEncrypted(ctx, roomID, bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		return err
	}
	a.Thumbnail = &content.Thumbnail{Blob: blob, MediaType: "image/jpeg", Width: w, Height: h}
	return nil
}
