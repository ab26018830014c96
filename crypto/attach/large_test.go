package attach

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// TestLargeFileBoundedMemory encrypts a large pseudo-random file into an
// io.Pipe and decrypts it from the other end concurrently, and checks that
// the plaintext comes back intact while the heap stays flat: the bytes
// allocated during the run and the peak of HeapInuse over it must not grow
// with the file. 1 GiB (about 7 s, 13 s with -race), 64 MiB with -short.
func TestLargeFileBoundedMemory(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	p := NewParams()
	newSource := func() io.Reader {
		return io.LimitReader(rand.NewChaCha8([32]byte{42}), size)
	}

	// First pass: the ciphertext hash, which the receiver knows from the
	// message before it downloads.
	enc := newEncrypter(newSource(), p)
	if _, err := io.Copy(io.Discard, enc); err != nil {
		t.Fatal(err)
	}
	sealed, _ := enc.Sealed()
	wantPlain := sha256.New()
	io.Copy(wantPlain, newSource())

	// Second pass, measured: encrypt → pipe → decrypt → hash.
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := before.HeapInuse
	stop := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		var m runtime.MemStats
		max := uint64(0)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				sampled <- max
				return
			case <-tick.C:
				runtime.ReadMemStats(&m)
				if m.HeapInuse > max {
					max = m.HeapInuse
				}
			}
		}
	}()

	start := time.Now()
	pr, pw := io.Pipe()
	encErr := make(chan error, 1)
	go func() {
		e := newEncrypter(newSource(), p)
		_, err := io.Copy(pw, e)
		pw.CloseWithError(err)
		encErr <- err
	}()
	gotPlain := sha256.New()
	n, err := Decrypt(context.Background(), gotPlain, pr, p, sealed.SHA256)
	pr.Close()
	if eerr := <-encErr; eerr != nil {
		t.Fatalf("encrypt: %v", eerr)
	}
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	elapsed := time.Since(start)
	close(stop)
	if m := <-sampled; m > peak {
		peak = m
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	if n != size || string(gotPlain.Sum(nil)) != string(wantPlain.Sum(nil)) {
		t.Fatalf("round trip of %d bytes returned %d bytes, equal %v", size, n, string(gotPlain.Sum(nil)) == string(wantPlain.Sum(nil)))
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	growth := int64(peak) - int64(before.HeapInuse)
	t.Logf("%d MiB through io.Pipe in %v (%.0f MB/s encrypt+decrypt concurrently); allocated %d KiB in total; peak HeapInuse %d KiB above the %d KiB before",
		size>>20, elapsed.Round(time.Millisecond), float64(size)/elapsed.Seconds()/1e6, allocated>>10, growth>>10, before.HeapInuse>>10)
	// Two chunk buffers per side plus the copy buffers are ~0.5 MiB; the
	// bound is 4 MiB whatever the file size.
	const bound = 4 << 20
	if allocated > bound {
		t.Errorf("allocated %d bytes for a %d-byte file; want at most %d", allocated, size, bound)
	}
	if growth > bound {
		t.Errorf("HeapInuse grew by %d bytes; want at most %d", growth, bound)
	}
}
