// Package thumbnail makes the small preview image that travels, encrypted,
// with an image attachment: it decodes JPEG, PNG or GIF with the standard
// library, refuses decompression bombs by reading the declared dimensions
// first (image.DecodeConfig), scales to at most MaxEdge pixels with
// golang.org/x/image/draw, turns it as a JPEG's EXIF orientation says, and
// encodes a JPEG. The re-encoding also drops every metadata block of the
// original (EXIF, GPS, comments).
package thumbnail

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
)

// MediaType is the media type of every thumbnail.
const MediaType = "image/jpeg"

// Limits.
const (
	// MaxEdge is the longest edge of a thumbnail, in pixels.
	MaxEdge = 320
	// MaxSourcePixels bounds width × height of an image Make decodes
	// (50 megapixels: a decoded RGBA copy is at most 200 MB).
	MaxSourcePixels = 50_000_000
	// MaxSourceEdge bounds either dimension of the source.
	MaxSourceEdge = 30_000
	// MaxSourceBytes bounds the encoded source read.
	MaxSourceBytes = 256 << 20
	// MaxDecodedBytes bounds the memory of the decoded source, estimated
	// from its pixel count and colour model before decoding.
	MaxDecodedBytes = 256 << 20
	// Quality is the JPEG quality of thumbnails.
	Quality = 80
)

// Errors of Make, for errors.Is.
var (
	// ErrUnsupported means the data is not a JPEG, PNG or GIF image.
	ErrUnsupported = errors.New("thumbnail: not a JPEG, PNG or GIF image")
	// ErrTooLarge means the image's declared dimensions exceed the limits.
	ErrTooLarge = errors.New("thumbnail: image dimensions too large")
	// ErrMalformed means the image could not be decoded.
	ErrMalformed = errors.New("thumbnail: malformed image")
)

// Thumbnail is an encoded preview and the dimensions of it and its source,
// both as displayed: a JPEG's EXIF orientation has been applied, so a
// portrait photo stored sideways has a portrait thumbnail and SourceWidth <
// SourceHeight.
type Thumbnail struct {
	JPEG                      []byte
	Width, Height             int
	SourceWidth, SourceHeight int
	SourceFormat              string // "jpeg", "png" or "gif"
}

// decoders are the formats Make accepts, independent of what other
// packages registered with the image package.
var decoders = map[string]struct {
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}{
	"jpeg": {jpeg.DecodeConfig, jpeg.Decode},
	"png":  {png.DecodeConfig, png.Decode},
	"gif":  {gif.DecodeConfig, gif.Decode},
}

// Sniff returns "jpeg", "png" or "gif" when header (the first bytes of a
// file, at least 8) starts like one, or "".
func Sniff(header []byte) string {
	switch {
	case bytes.HasPrefix(header, []byte("\xff\xd8\xff")):
		return "jpeg"
	case bytes.HasPrefix(header, []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	case bytes.HasPrefix(header, []byte("GIF87a")), bytes.HasPrefix(header, []byte("GIF89a")):
		return "gif"
	}
	return ""
}

// Make reads an image from r, which must be positioned at its start, and
// returns its thumbnail. It reads the header and refuses, before decoding
// any pixel, an image wider or taller than MaxSourceEdge or of more than
// MaxSourcePixels pixels (ErrTooLarge); then it seeks back, decodes at most
// MaxSourceBytes, and scales so that the longer edge is at most MaxEdge
// (never enlarging). Errors wrap ErrUnsupported, ErrTooLarge or
// ErrMalformed, or are r's errors.
func Make(r io.ReadSeeker) (*Thumbnail, error) {
	return makeThumbnail(r, defaultLimits)
}

// limits are the source limits; tests and fuzzing use smaller ones.
type limits struct {
	pixels, edge, decodedBytes, sourceBytes int64
}

var defaultLimits = limits{MaxSourcePixels, MaxSourceEdge, MaxDecodedBytes, MaxSourceBytes}

// bytesPerPixel estimates the decoded size of one pixel of a colour model.
func bytesPerPixel(m color.Model) int64 {
	switch m {
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	case color.Gray16Model:
		return 2
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.YCbCrModel:
		return 3 // 4:4:4 at most
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 4
}

func makeThumbnail(r io.ReadSeeker, lim limits) (*Thumbnail, error) {
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	br := bufio.NewReader(r)
	head, _ := br.Peek(8)
	format := Sniff(head)
	if format == "" {
		return nil, ErrUnsupported
	}
	d := decoders[format]
	cfg, err := d.config(br)
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %v", ErrMalformed, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%w: %s of %d×%d pixels", ErrMalformed, format, cfg.Width, cfg.Height)
	}
	pixels := int64(cfg.Width) * int64(cfg.Height)
	if int64(cfg.Width) > lim.edge || int64(cfg.Height) > lim.edge || pixels > lim.pixels || pixels*bytesPerPixel(cfg.ColorModel) > lim.decodedBytes {
		return nil, fmt.Errorf("%w: %s of %d×%d pixels (limits: %d pixels, %d per edge, %d MiB decoded)",
			ErrTooLarge, format, cfg.Width, cfg.Height, lim.pixels, lim.edge, lim.decodedBytes>>20)
	}
	orientation := 1
	if format == "jpeg" {
		if _, err := r.Seek(start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("thumbnail: %w", err)
		}
		orientation = readOrientation(r)
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return nil, fmt.Errorf("thumbnail: %w", err)
	}
	src, err := d.decode(bufio.NewReader(io.LimitReader(r, lim.sourceBytes)))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, format, err)
	}
	b := src.Bounds()
	// The decoders allocate by the header; the decoded image must lie
	// within what the header declared (a GIF frame may be smaller).
	if b.Dx() > cfg.Width || b.Dy() > cfg.Height || b.Empty() {
		return nil, fmt.Errorf("%w: %s decoded to %d×%d, header says %d×%d", ErrMalformed, format, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	w, h := fit(b.Dx(), b.Dy(), MaxEdge)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	// Transparent areas (PNG, GIF) become white, not JPEG's black.
	draw.Draw(dst, dst.Bounds(), image.White, image.Point{}, draw.Src)
	// BiLinear is a kernel scaler: on reduction it averages every source
	// pixel, so thumbnails do not alias, at a cost linear in the source.
	op := draw.Over
	if _, ok := src.(*image.YCbCr); ok {
		op = draw.Src // opaque, and the scaler has a fast path for it
	}
	draw.BiLinear.Scale(dst, dst.Bounds(), src, b, op, nil)
	dst = orient(dst, orientation)
	sw, sh := b.Dx(), b.Dy()
	if orientation >= 5 {
		w, h, sw, sh = h, w, sh, sw
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, dst, &jpeg.Options{Quality: Quality}); err != nil {
		return nil, fmt.Errorf("thumbnail: encode: %w", err)
	}
	return &Thumbnail{JPEG: out.Bytes(), Width: w, Height: h, SourceWidth: sw, SourceHeight: sh, SourceFormat: format}, nil
}

// fit scales w×h so that the longer edge is at most max, keeping the aspect
// ratio, never enlarging, and never below 1 pixel.
func fit(w, h, max int) (int, int) {
	if w <= max && h <= max {
		return w, h
	}
	if w >= h {
		return max, clampMin1(int((int64(h)*int64(max) + int64(w)/2) / int64(w)))
	}
	return clampMin1(int((int64(w)*int64(max) + int64(h)/2) / int64(h))), max
}

func clampMin1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}
