package call

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
)

// MediaSource produces the video and audio a headless peer sends.
type MediaSource interface {
	// VideoMimeType is the MIME type of the video samples, e.g.
	// webrtc.MimeTypeVP8.
	VideoMimeType() string
	// Stream writes video and audio samples to the tracks until ctx is done
	// (it then returns nil) or the media fails (it returns the error, and the
	// call ends with user_media_failed).
	Stream(ctx context.Context, video, audio *webrtc.TrackLocalStaticSample) error
}

// opusSilence is one 20 ms Opus frame of silence (RFC 6716 §3.1: config 31,
// one frame, an empty CELT frame), the frame browsers send when muted.
var opusSilence = []byte{0xf8, 0xff, 0xfe}

const audioFrame = 20 * time.Millisecond

// Synthetic sends generated VP8-labelled video frames (bytes of a counting
// pattern, not decodable pictures: the packet path is what is exercised)
// and Opus silence. The zero value sends 30 frames per second of 2400 bytes.
type Synthetic struct {
	// FPS is the video frame rate; 0 means 30.
	FPS int
	// FrameSize is the size of each video frame in bytes; 0 means 2400
	// (two RTP packets at pion's default MTU).
	FrameSize int
}

// VideoMimeType returns webrtc.MimeTypeVP8.
func (Synthetic) VideoMimeType() string { return webrtc.MimeTypeVP8 }

// Stream implements MediaSource.
func (s Synthetic) Stream(ctx context.Context, video, audio *webrtc.TrackLocalStaticSample) error {
	fps, size := s.FPS, s.FrameSize
	if fps <= 0 {
		fps = 30
	}
	if size <= 0 {
		size = 2400
	}
	frameDur := time.Second / time.Duration(fps)
	frame := make([]byte, size)
	vt := time.NewTicker(frameDur)
	defer vt.Stop()
	at := time.NewTicker(audioFrame)
	defer at.Stop()
	for n := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-vt.C:
			// A VP8 key frame starts with a clear P bit (RFC 6386 §9.1);
			// make every 60th frame look like one so receivers that
			// inspect the payload see periodic key frames.
			for i := range frame {
				frame[i] = byte(n + i)
			}
			if n%60 == 0 {
				frame[0] &^= 1
			} else {
				frame[0] |= 1
			}
			n++
			if err := video.WriteSample(media.Sample{Data: frame, Duration: frameDur}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return fmt.Errorf("write video sample: %w", err)
			}
		case <-at.C:
			if err := audio.WriteSample(media.Sample{Data: opusSilence, Duration: audioFrame}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return fmt.Errorf("write audio sample: %w", err)
			}
		}
	}
}

// MaxIVFFrameSize is the largest IVF frame accepted from a media file.
const MaxIVFFrameSize = 4 << 20

// IVFFile sends the frames of an IVF file (VP8, VP9 or AV1, as written by
// ffmpeg or pion's ivfwriter) at the file's frame rate, looping at its end,
// and Opus silence.
type IVFFile struct {
	// Path is the file's path.
	Path string
	mime string
}

// OpenIVF checks that path is a readable IVF file of a supported codec.
func OpenIVF(path string) (*IVFFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open media: %w", err)
	}
	defer f.Close()
	_, hdr, err := ivfreader.NewWith(f)
	if err != nil {
		return nil, fmt.Errorf("read IVF header of %s: %w", path, err)
	}
	mime, err := ivfMime(hdr.FourCC)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &IVFFile{Path: path, mime: mime}, nil
}

func ivfMime(fourcc string) (string, error) {
	switch fourcc {
	case "VP80":
		return webrtc.MimeTypeVP8, nil
	case "VP90":
		return webrtc.MimeTypeVP9, nil
	case "AV01":
		return webrtc.MimeTypeAV1, nil
	}
	return "", fmt.Errorf("unsupported IVF codec %q", fourcc)
}

// VideoMimeType returns the MIME type of the file's codec.
func (f *IVFFile) VideoMimeType() string { return f.mime }

// Stream implements MediaSource. A frame that cannot be read (a truncated
// or corrupt file) fails the media.
func (f *IVFFile) Stream(ctx context.Context, video, audio *webrtc.TrackLocalStaticSample) error {
	file, err := os.Open(f.Path)
	if err != nil {
		return fmt.Errorf("open media: %w", err)
	}
	defer file.Close()
	br := bufio.NewReader(file)
	rd, hdr, err := ivfreader.NewWith(br)
	if err != nil {
		return fmt.Errorf("read IVF header: %w", err)
	}
	frameDur := time.Second / 30
	if hdr.TimebaseDenominator > 0 && hdr.TimebaseNumerator > 0 {
		frameDur = time.Duration(uint64(time.Second) * uint64(hdr.TimebaseNumerator) / uint64(hdr.TimebaseDenominator))
	}
	if frameDur < time.Millisecond || frameDur > time.Second {
		frameDur = time.Second / 30
	}
	vt := time.NewTicker(frameDur)
	defer vt.Stop()
	at := time.NewTicker(audioFrame)
	defer at.Stop()
	frames := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-vt.C:
			// The frame header's first four bytes are the frame size;
			// ivfreader allocates whatever it says, so bound it first.
			size, err := br.Peek(4)
			if errors.Is(err, io.EOF) && len(size) == 0 && frames > 0 {
				// Loop: rewind past the 32-byte file header.
				if _, err := file.Seek(32, io.SeekStart); err != nil {
					return fmt.Errorf("rewind media: %w", err)
				}
				br.Reset(file)
				frames = 0
				continue
			}
			if err == nil && binary.LittleEndian.Uint32(size) > MaxIVFFrameSize {
				return fmt.Errorf("IVF frame %d: %d bytes, more than %d", frames, binary.LittleEndian.Uint32(size), MaxIVFFrameSize)
			}
			frame, _, err := rd.ParseNextFrame()
			if err != nil {
				return fmt.Errorf("read IVF frame %d: %w", frames, err)
			}
			frames++
			if err := video.WriteSample(media.Sample{Data: frame, Duration: frameDur}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return fmt.Errorf("write video sample: %w", err)
			}
		case <-at.C:
			if err := audio.WriteSample(media.Sample{Data: opusSilence, Duration: audioFrame}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return fmt.Errorf("write audio sample: %w", err)
			}
		}
	}
}
