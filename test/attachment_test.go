package test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/client/dicom"
	"github.com/medicus-health/medicus/crypto/attach"
)

func TestImageAttachmentWithThumbnailAndTampering(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	a, b := newDevice(t, hs, alice), newDevice(t, hs, bob)
	ctx := ctxT(t)
	room, _ := a.CreateRoom(ctx, "Wound images")
	if err := a.Invite(ctx, room, bob); err != nil {
		t.Fatal(err)
	}
	b.sync()

	// A 1200×800 PNG wound photo whose pixels spell a marker in its metadata-free bytes.
	img := image.NewRGBA(image.Rect(0, 0, 1200, 800))
	for y := range 800 {
		for x := range 1200 {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "wound-PLAINTEXT.png")
	var buf bytes.Buffer
	png.Encode(&buf, img)
	if err := os.WriteFile(src, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	sent, err := a.SendFile(ctx, room, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.sync()
	att, err := b.Attachment(ctx, room, sent.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if att.MediaType != "image/png" || att.Width != 1200 || att.Height != 800 || att.Size != int64(buf.Len()) || att.Name != "wound-PLAINTEXT.png" {
		t.Errorf("attachment: %+v", att)
	}
	if att.Thumbnail == nil || att.Thumbnail.Width != 320 || att.Thumbnail.Height != 213 {
		t.Fatalf("thumbnail: %+v", att.Thumbnail)
	}
	thumb, err := b.DownloadThumbnail(ctx, room, sent.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if cfg, err := jpeg.DecodeConfig(bytes.NewReader(thumb)); err != nil || cfg.Width != 320 {
		t.Errorf("thumbnail does not decode as a 320 px JPEG: %v %+v", err, cfg)
	}
	out := filepath.Join(dir, "got.png")
	if _, err := b.Download(ctx, room, sent.Seq, out); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, buf.Bytes()) {
		t.Fatal("downloaded file differs")
	}
	// The stored blobs are ciphertext: neither the image nor its rows
	// appear in the media store.
	hs.assertNoPlaintext(buf.Bytes()[:64])
	hs.assertNoPlaintext(buf.Bytes()[len(buf.Bytes())/2 : len(buf.Bytes())/2+64])
	hs.assertNoPlaintext([]byte("wound-PLAINTEXT"))

	// The operator flips one byte of the stored blob: the receiver refuses
	// it and writes no file.
	var blobPath string
	filepath.WalkDir(filepath.Join(hs.dir, "media"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(p, att.MediaID) {
			blobPath = p
		}
		return nil
	})
	if blobPath == "" {
		t.Fatal("blob not found in the media store")
	}
	data, _ := os.ReadFile(blobPath)
	data[len(data)/2] ^= 1
	os.WriteFile(blobPath, data, 0o600)
	tampered := filepath.Join(dir, "tampered.png")
	if _, err := b.Download(ctx, room, sent.Seq, tampered); !errors.Is(err, attach.ErrDecrypt) {
		t.Errorf("tampered blob: %v, want attach.ErrDecrypt", err)
	}
	if _, err := os.Stat(tampered); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a tampered download left a file behind")
	}
}

// TestLargeAttachmentBoundedMemory sends a large file through a real
// homeserver and back; client memory must not grow with the file. The size
// is 256 MiB, or MEDICUS_ATTACHMENT_MIB (1024 for the README's figure).
func TestLargeAttachmentBoundedMemory(t *testing.T) {
	mib := int64(256)
	if v := os.Getenv("MEDICUS_ATTACHMENT_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			t.Fatalf("MEDICUS_ATTACHMENT_MIB=%q", v)
		}
		mib = n
	}
	size := mib << 20
	hs := newHomeserver(t, "uk-freiburg.example", func(cfg string) string {
		return setConfig(t, cfg, "max_media_bytes = 104857600", fmt.Sprintf("max_media_bytes = %d", attach.CiphertextSize(size)))
	})
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	a, b := newDevice(t, hs, alice), newDevice(t, hs, bob)
	ctx := ctxT(t)
	room, _ := a.CreateRoom(ctx, "Imaging")
	if err := a.Invite(ctx, room, bob); err != nil {
		t.Fatal(err)
	}
	b.sync()
	dir := t.TempDir()
	src := filepath.Join(dir, "study.bin")
	f, _ := os.Create(src)
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := h.Sum(nil)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := uint64(0)
	done, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	start := time.Now()
	sent, err := a.SendFile(ctx, room, src, &client.FileOptions{MediaType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	b.sync()
	out := filepath.Join(dir, "got.bin")
	start = time.Now()
	if _, err := b.Download(ctx, room, sent.Seq, out); err != nil {
		t.Fatal(err)
	}
	down := time.Since(start)
	close(done)
	<-sampled // peak is read below only after the sampler stopped
	runtime.ReadMemStats(&after)
	g, _ := os.Open(out)
	h.Reset()
	io.Copy(h, g)
	g.Close()
	if !bytes.Equal(h.Sum(nil), want) {
		t.Fatal("round trip changed the file")
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d MiB round trip: upload %v, download %v; client allocated %d MiB in total, peak heap in use %d MiB",
		mib, up.Round(time.Millisecond), down.Round(time.Millisecond), allocated>>20, peak>>20)
	if peak > before.HeapInuse+64<<20 {
		t.Errorf("peak heap %d MiB grew with the file (before: %d MiB)", peak>>20, before.HeapInuse>>20)
	}
	if rss := hs.peakRSS(); rss > 0 {
		t.Logf("homeserver peak RSS %d MiB", rss>>20)
	}
	_ = content.MaxAttachmentSize
}

// dicomFile returns a small DICOM Part 10 file (explicit VR little endian)
// with a patient name, written by hand as a modality would.
func dicomFile() []byte {
	var meta, data bytes.Buffer
	el := func(w *bytes.Buffer, group, elem uint16, vr, val string) {
		if len(val)%2 == 1 {
			val += " "
		}
		binary.Write(w, binary.LittleEndian, group)
		binary.Write(w, binary.LittleEndian, elem)
		w.WriteString(vr)
		binary.Write(w, binary.LittleEndian, uint16(len(val)))
		w.WriteString(val)
	}
	el(&meta, 0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1\x00")
	el(&data, 0x0008, 0x0020, "DA", "20261128")
	el(&data, 0x0008, 0x0060, "CS", "CT")
	el(&data, 0x0008, 0x1030, "LO", "Abdomen PLAINTEXT-STUDY")
	el(&data, 0x0010, 0x0010, "PN", "Mustermann^Erika")
	el(&data, 0x0010, 0x0020, "LO", "PID-0815")
	el(&data, 0x0018, 0x0015, "CS", "ABDOMEN")
	var f bytes.Buffer
	f.Write(make([]byte, 128))
	f.WriteString("DICM")
	var group bytes.Buffer
	binary.Write(&group, binary.LittleEndian, uint16(0x0002))
	binary.Write(&group, binary.LittleEndian, uint16(0x0000))
	group.WriteString("UL")
	binary.Write(&group, binary.LittleEndian, uint16(4))
	binary.Write(&group, binary.LittleEndian, uint32(meta.Len()))
	f.Write(group.Bytes())
	f.Write(meta.Bytes())
	f.Write(data.Bytes())
	// Pixel data (7FE0,0010), OB: a long VR with a 32-bit length.
	binary.Write(&f, binary.LittleEndian, uint16(0x7FE0))
	binary.Write(&f, binary.LittleEndian, uint16(0x0010))
	f.WriteString("OB\x00\x00")
	binary.Write(&f, binary.LittleEndian, uint32(4096))
	f.Write(make([]byte, 4096))
	return f.Bytes()
}

func TestDICOMAttachmentShowsStudyButNotPatient(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "doctor")
	hs.start()
	a, b := newDevice(t, hs, alice), newDevice(t, hs, bob)
	ctx := ctxT(t)
	room, _ := a.CreateRoom(ctx, "Imaging")
	if err := a.Invite(ctx, room, bob); err != nil {
		t.Fatal(err)
	}
	b.sync()
	if _, err := dicom.Read(bytes.NewReader(dicomFile()), dicom.Options{}); err != nil {
		t.Fatalf("the test's DICOM file does not parse: %v", err)
	}
	path := filepath.Join(t.TempDir(), "ct.dcm")
	os.WriteFile(path, dicomFile(), 0o600)
	plain, err := a.SendFile(ctx, room, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	withPatient, err := a.SendFile(ctx, room, path, &client.FileOptions{IncludePatient: true})
	if err != nil {
		t.Fatal(err)
	}
	b.sync()
	att, err := b.Attachment(ctx, room, plain.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if att.MediaType != "application/dicom" || att.DICOM == nil || att.DICOM.Modality != "CT" || att.DICOM.StudyDate != "20261128" ||
		att.DICOM.BodyPart != "ABDOMEN" || !strings.Contains(att.DICOM.StudyDescription, "Abdomen") {
		t.Fatalf("DICOM summary: %+v %+v", att, att.DICOM)
	}
	if att.DICOM.PatientName != "" || att.DICOM.PatientID != "" {
		t.Errorf("patient identity shared without opt-in: %+v", att.DICOM)
	}
	att2, _ := b.Attachment(ctx, room, withPatient.Seq)
	if att2 == nil || att2.DICOM == nil || !strings.Contains(att2.DICOM.PatientName, "Mustermann") {
		t.Errorf("opt-in patient name missing: %+v", att2)
	}
	hs.assertNoPlaintext([]byte("Mustermann"))
	hs.assertNoPlaintext([]byte("PLAINTEXT-STUDY"))
}
