package thumbnail

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"runtime"
	"testing"
)

// gradient is a w×h test picture: red grows left to right, blue top to
// bottom, with a white square in the middle.
func gradient(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{uint8(255 * x / w), 64, uint8(255 * y / h), 255}
			if x > w*2/5 && x < w*3/5 && y > h*2/5 && y < h*3/5 {
				c = color.NRGBA{255, 255, 255, 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

func encodePNG(img image.Image) []byte {
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

func encodeJPEG(img image.Image) []byte {
	var b bytes.Buffer
	jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
	return b.Bytes()
}

func encodeGIF(img image.Image) []byte {
	var b bytes.Buffer
	gif.Encode(&b, img, nil)
	return b.Bytes()
}

func TestMake(t *testing.T) {
	tests := []struct {
		name         string
		file         []byte
		format       string
		wantW, wantH int
	}{
		{"landscape PNG", encodePNG(gradient(1600, 1200)), "png", 320, 240},
		{"portrait JPEG", encodeJPEG(gradient(900, 1600)), "jpeg", 180, 320},
		{"GIF", encodeGIF(gradient(640, 200)), "gif", 320, 100},
		{"small image is not enlarged", encodePNG(gradient(100, 50)), "png", 100, 50},
		{"one-pixel-high panorama", encodePNG(gradient(4000, 1)), "png", 320, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			th, err := Make(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatalf("Make: %v", err)
			}
			if th.Width != tc.wantW || th.Height != tc.wantH || th.SourceFormat != tc.format {
				t.Fatalf("thumbnail %d×%d %s, want %d×%d %s", th.Width, th.Height, th.SourceFormat, tc.wantW, tc.wantH, tc.format)
			}
			img, err := jpeg.Decode(bytes.NewReader(th.JPEG))
			if err != nil {
				t.Fatalf("thumbnail is not a JPEG: %v", err)
			}
			if b := img.Bounds(); b.Dx() != tc.wantW || b.Dy() != tc.wantH {
				t.Fatalf("JPEG is %v", b)
			}
			if len(th.JPEG) > 64<<10 {
				t.Errorf("thumbnail of %d bytes", len(th.JPEG))
			}
			if tc.wantH > 10 {
				// The picture survives scaling: the centre is white, the
				// right edge redder than the left.
				c := color.NRGBAModel.Convert(img.At(tc.wantW/2, tc.wantH/2)).(color.NRGBA)
				l := color.NRGBAModel.Convert(img.At(2, tc.wantH/4)).(color.NRGBA)
				r := color.NRGBAModel.Convert(img.At(tc.wantW-3, tc.wantH/4)).(color.NRGBA)
				if c.R < 230 || c.G < 230 || c.B < 230 || r.R < l.R+100 {
					t.Errorf("centre %v, left %v, right %v", c, l, r)
				}
			}
		})
	}
}

func TestTransparencyBecomesWhite(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 400, 400)) // fully transparent
	th, err := Make(bytes.NewReader(encodePNG(img)))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := jpeg.Decode(bytes.NewReader(th.JPEG))
	if r, g, b, _ := out.At(160, 160).RGBA(); r>>8 < 245 || g>>8 < 245 || b>>8 < 245 {
		t.Fatalf("transparent area is %v, want white", out.At(160, 160))
	}
}

// pngHeader is a PNG signature and IHDR declaring w×h RGBA pixels, with no
// image data: what a decompression bomb shows before its payload.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func TestMakeRefuses(t *testing.T) {
	full := encodePNG(gradient(300, 300))
	tests := []struct {
		name string
		file []byte
		want error
	}{
		{"empty", nil, ErrUnsupported},
		{"text", []byte("hello, this is not an image"), ErrUnsupported},
		{"WebP", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), ErrUnsupported},
		{"DICOM", append(make([]byte, 128), "DICM"...), ErrUnsupported},
		{"100000×100000 PNG bomb", pngHeader(100000, 100000), ErrTooLarge},
		{"10000×10000 PNG (100 MP)", pngHeader(10000, 10000), ErrTooLarge},
		{"40000×10 PNG edge", pngHeader(40000, 10), ErrTooLarge},
		{"zero width", pngHeader(0, 10), ErrMalformed},
		{"PNG without data", pngHeader(100, 100), ErrMalformed},
		{"truncated PNG", full[:len(full)/2], ErrMalformed},
		{"bad JPEG", []byte("\xff\xd8\xff\xe0garbage"), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Make(bytes.NewReader(tc.file))
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Make error %v, want %v", err, tc.want)
			}
			if a := after.TotalAlloc - before.TotalAlloc; a > 4<<20 {
				t.Errorf("allocated %d bytes refusing %d bytes", a, len(tc.file))
			}
		})
	}
}

func TestDecodedMemoryLimitCountsDepth(t *testing.T) {
	// 6000×6000 is 36 MP (under the pixel limit) but a 16-bit RGBA image of
	// that size decodes to 288 MB.
	h := pngHeader(6000, 6000)
	h[24] = 16 // bit depth 16
	copy(h[29:33], binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(h[12:29])))
	if _, err := Make(bytes.NewReader(h)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Make = %v, want ErrTooLarge", err)
	}
}

func TestFit(t *testing.T) {
	for _, tc := range []struct{ w, h, W, H int }{
		{320, 320, 320, 320}, {321, 100, 320, 100}, {3000, 2000, 320, 213}, {2000, 3000, 213, 320}, {100000, 10, 320, 1}, {1, 1, 1, 1},
	} {
		if W, H := fit(tc.w, tc.h, MaxEdge); W != tc.W || H != tc.H {
			t.Errorf("fit(%d, %d) = %d, %d; want %d, %d", tc.w, tc.h, W, H, tc.W, tc.H)
		}
	}
}

func TestSniff(t *testing.T) {
	for in, want := range map[string]string{"\xff\xd8\xff\xe0": "jpeg", "\x89PNG\r\n\x1a\n": "png", "GIF89a": "gif", "GIF87a": "gif", "BM": "", "": ""} {
		if got := Sniff([]byte(in)); got != want {
			t.Errorf("Sniff(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkMake12MP measures a thumbnail of a 4000×3000 JPEG photo.
func BenchmarkMake12MP(b *testing.B) {
	file := encodeJPEG(gradient(4000, 3000))
	b.SetBytes(int64(len(file)))
	for b.Loop() {
		if _, err := Make(bytes.NewReader(file)); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzMake checks that Make never panics and fails only with its errors,
// under small limits so that fuzzed headers cannot make it decode large
// images.
func FuzzMake(f *testing.F) {
	f.Add(encodePNG(gradient(40, 30)))
	f.Add(encodeJPEG(gradient(30, 40)))
	f.Add(encodeGIF(gradient(20, 20)))
	f.Add(pngHeader(100000, 100000))
	f.Fuzz(func(t *testing.T, b []byte) {
		th, err := makeThumbnail(bytes.NewReader(b), limits{pixels: 1 << 20, edge: 4096, decodedBytes: 8 << 20, sourceBytes: 1 << 20})
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("undocumented error %v", err)
			}
			return
		}
		if th.Width < 1 || th.Height < 1 || th.Width > MaxEdge || th.Height > MaxEdge {
			t.Fatalf("thumbnail %d×%d", th.Width, th.Height)
		}
	})
}
