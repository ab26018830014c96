package thumbnail

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

// withExif inserts an APP1 EXIF segment with IFD0 holding only the
// orientation tag after the SOI marker of a JPEG.
func withExif(jpg []byte, orientation uint16, bo binary.ByteOrder) []byte {
	var t bytes.Buffer
	if bo == binary.LittleEndian {
		t.WriteString("II")
	} else {
		t.WriteString("MM")
	}
	binary.Write(&t, bo, uint16(42))
	binary.Write(&t, bo, uint32(8))
	binary.Write(&t, bo, uint16(2)) // two entries: something else, then orientation
	binary.Write(&t, bo, uint16(0x010F))
	binary.Write(&t, bo, uint16(2))
	binary.Write(&t, bo, uint32(4))
	t.WriteString("ACME")
	binary.Write(&t, bo, uint16(0x0112))
	binary.Write(&t, bo, uint16(3))
	binary.Write(&t, bo, uint32(1))
	binary.Write(&t, bo, orientation)
	binary.Write(&t, bo, uint16(0))
	binary.Write(&t, bo, uint32(0)) // no next IFD
	seg := append([]byte("Exif\x00\x00"), t.Bytes()...)
	var out bytes.Buffer
	out.Write(jpg[:2])
	out.Write([]byte{0xFF, 0xE1})
	binary.Write(&out, binary.BigEndian, uint16(len(seg)+2))
	out.Write(seg)
	out.Write(jpg[2:])
	return out.Bytes()
}

// quadrants is a w×h picture with a distinct colour in each quadrant:
// red top-left, green top-right, blue bottom-left, white bottom-right.
func quadrants(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{255, 0, 0, 255}
			switch {
			case x >= w/2 && y < h/2:
				c = color.RGBA{0, 255, 0, 255}
			case x < w/2 && y >= h/2:
				c = color.RGBA{0, 0, 255, 255}
			case x >= w/2 && y >= h/2:
				c = color.RGBA{255, 255, 255, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

// corners names the colours at the four corners of an image, clockwise
// from the top-left: r, g, b or w.
func corners(img image.Image) string {
	b := img.Bounds()
	name := func(x, y int) byte {
		r, g, bl, _ := img.At(x, y).RGBA()
		switch {
		case r > 0xC000 && g > 0xC000 && bl > 0xC000:
			return 'w'
		case r > 0xC000:
			return 'r'
		case g > 0xC000:
			return 'g'
		case bl > 0xC000:
			return 'b'
		}
		return '?'
	}
	return string([]byte{name(b.Min.X+3, b.Min.Y+3), name(b.Max.X-4, b.Min.Y+3), name(b.Max.X-4, b.Max.Y-4), name(b.Min.X+3, b.Max.Y-4)})
}

func TestExifOrientation(t *testing.T) {
	var plain bytes.Buffer
	jpeg.Encode(&plain, quadrants(800, 400), &jpeg.Options{Quality: 95})
	// Source corners clockwise from top-left: r g w b.
	tests := []struct {
		o            uint16
		w, h         int
		corners      string
		littleEndian bool
	}{
		{1, 320, 160, "rgwb", true},
		{2, 320, 160, "grbw", true},
		{3, 320, 160, "wbrg", false},
		{4, 320, 160, "bwgr", true},
		{5, 160, 320, "rbwg", false},
		{6, 160, 320, "brgw", true},
		{7, 160, 320, "wgrb", true},
		{8, 160, 320, "gwbr", false},
	}
	for _, tc := range tests {
		bo := binary.ByteOrder(binary.BigEndian)
		if tc.littleEndian {
			bo = binary.LittleEndian
		}
		file := withExif(plain.Bytes(), tc.o, bo)
		if got := jpegOrientation(file); got != int(tc.o) {
			t.Fatalf("orientation %d read as %d", tc.o, got)
		}
		th, err := Make(bytes.NewReader(file))
		if err != nil {
			t.Fatalf("orientation %d: %v", tc.o, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(th.JPEG))
		if err != nil {
			t.Fatal(err)
		}
		wantSW, wantSH := 800, 400
		if tc.o >= 5 {
			wantSW, wantSH = 400, 800
		}
		if th.Width != tc.w || th.Height != tc.h || th.SourceWidth != wantSW || th.SourceHeight != wantSH {
			t.Errorf("orientation %d: %d×%d of %d×%d, want %d×%d of %d×%d", tc.o, th.Width, th.Height, th.SourceWidth, th.SourceHeight, tc.w, tc.h, wantSW, wantSH)
		}
		if c := corners(img); c != tc.corners {
			t.Errorf("orientation %d: corners %s, want %s", tc.o, c, tc.corners)
		}
		if bytes.Contains(th.JPEG, []byte("Exif")) || bytes.Contains(th.JPEG, []byte("ACME")) {
			t.Errorf("orientation %d: thumbnail keeps the EXIF block", tc.o)
		}
	}
}

func TestOrientationOfBrokenExifIsNormal(t *testing.T) {
	var plain bytes.Buffer
	jpeg.Encode(&plain, quadrants(40, 20), nil)
	good := withExif(plain.Bytes(), 6, binary.LittleEndian)
	for name, b := range map[string][]byte{
		"no EXIF":           plain.Bytes(),
		"orientation 9":     withExif(plain.Bytes(), 9, binary.LittleEndian),
		"segment cut short": good[:30],
		"bad byte order":    bytes.Replace(good, []byte("II*\x00"), []byte("XX*\x00"), 1),
		"not a JPEG":        []byte("GIF89a"),
	} {
		if o := jpegOrientation(b); o != 1 {
			t.Errorf("%s: orientation %d", name, o)
		}
	}
}

// FuzzOrientation checks that the EXIF reader never panics and returns an
// orientation from 1 to 8.
func FuzzOrientation(f *testing.F) {
	var plain bytes.Buffer
	jpeg.Encode(&plain, quadrants(16, 16), nil)
	f.Add(withExif(plain.Bytes(), 6, binary.LittleEndian)[:200])
	f.Add(withExif(plain.Bytes(), 3, binary.BigEndian)[:200])
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := jpegOrientation(b); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}
