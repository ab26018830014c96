package attach

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(b)
	return b
}

func encryptBytes(t testing.TB, plain []byte) ([]byte, Sealed) {
	t.Helper()
	var ct bytes.Buffer
	s, err := Encrypt(context.Background(), &ct, bytes.NewReader(plain))
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return ct.Bytes(), s
}

var sizes = []int{0, 1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 2 * ChunkSize, 3*ChunkSize + 17}

func TestRoundTrip(t *testing.T) {
	for _, n := range sizes {
		plain := randomBytes(n, uint64(n))
		ct, s := encryptBytes(t, plain)
		if s.PlaintextSize != int64(n) || s.CiphertextSize != int64(len(ct)) || CiphertextSize(int64(n)) != int64(len(ct)) {
			t.Fatalf("size %d: sealed %+v, blob %d, CiphertextSize %d", n, s, len(ct), CiphertextSize(int64(n)))
		}
		if p, err := PlaintextSize(int64(len(ct))); err != nil || p != int64(n) {
			t.Fatalf("size %d: PlaintextSize(%d) = %d, %v", n, len(ct), p, err)
		}
		if s.SHA256 != sha256.Sum256(ct) {
			t.Fatalf("size %d: SHA256 is not the hash of the ciphertext", n)
		}
		var out bytes.Buffer
		m, err := Decrypt(context.Background(), &out, bytes.NewReader(ct), s.Params, s.SHA256)
		if err != nil || m != int64(n) || !bytes.Equal(out.Bytes(), plain) {
			t.Fatalf("size %d: Decrypt = %d, %v; equal %v", n, m, err, bytes.Equal(out.Bytes(), plain))
		}
		// One byte at a time through both ends, and the io.Reader contract.
		enc := newEncrypter(iotest.OneByteReader(bytes.NewReader(plain)), s.Params)
		ct2, err := io.ReadAll(iotest.OneByteReader(enc))
		if err != nil || !bytes.Equal(ct2, ct) {
			t.Fatalf("size %d: byte-wise encryption differs (%v)", n, err)
		}
		if err := iotest.TestReader(NewDecrypter(iotest.HalfReader(bytes.NewReader(ct)), s.Params, s.SHA256), plain); err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
	}
}

func TestFreshParametersPerFile(t *testing.T) {
	plain := []byte("same file")
	ct1, s1 := encryptBytes(t, plain)
	ct2, s2 := encryptBytes(t, plain)
	if s1.Key == s2.Key || s1.NoncePrefix == s2.NoncePrefix || bytes.Equal(ct1, ct2) {
		t.Fatal("two encryptions share key, nonce or ciphertext")
	}
}

func TestSizesAreInverse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		n := r.Int64N(1 << 40)
		if r.IntN(2) == 0 {
			n = r.Int64N(4 * ChunkSize)
		}
		c := CiphertextSize(n)
		if p, err := PlaintextSize(c); err != nil || p != n {
			t.Fatalf("PlaintextSize(CiphertextSize(%d) = %d) = %d, %v", n, c, p, err)
		}
	}
}

func TestPlaintextSizeRefusesImpossibleSizes(t *testing.T) {
	for _, c := range []int64{0, 1, TagSize - 1, sealedChunkSize + 1, sealedChunkSize + TagSize, 5*sealedChunkSize + 3} {
		if _, err := PlaintextSize(c); !errors.Is(err, ErrTruncated) {
			t.Errorf("PlaintextSize(%d) = %v, want ErrTruncated", c, err)
		}
	}
}

// decryptAll decrypts and returns what was released before the error.
func decryptAll(ct []byte, p Params, sum [HashSize]byte) ([]byte, error) {
	var out bytes.Buffer
	_, err := Decrypt(context.Background(), &out, bytes.NewReader(ct), p, sum)
	return out.Bytes(), err
}

func TestDecryptDetectsTampering(t *testing.T) {
	plain := randomBytes(3*ChunkSize+100, 7)
	ct, s := encryptBytes(t, plain)
	chunk := func(i int) []byte { return ct[i*sealedChunkSize : min((i+1)*sealedChunkSize, len(ct))] }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	flip := func(i int) []byte { c := bytes.Clone(ct); c[i] ^= 1; return c }
	other := s.Params
	other.Key[0] ^= 1
	otherPrefix := s.Params
	otherPrefix.NoncePrefix[0] ^= 1
	hashOf := func(b []byte) [HashSize]byte { return sha256.Sum256(b) }

	tests := []struct {
		name string
		ct   []byte
		p    Params
		sum  [HashSize]byte
		want error
		// released is how many plaintext bytes may come out before the error.
		released int
	}{
		{"bit flipped in first chunk", flip(10), s.Params, hashOf(flip(10)), ErrAuth, 0},
		{"bit flipped in a tag", flip(sealedChunkSize - 1), s.Params, hashOf(flip(sealedChunkSize - 1)), ErrAuth, 0},
		{"bit flipped in last chunk", flip(len(ct) - 20), s.Params, hashOf(flip(len(ct) - 20)), ErrAuth, 3 * ChunkSize},
		{"chunks swapped", join(chunk(1), chunk(0), chunk(2), chunk(3)), s.Params, hashOf(join(chunk(1), chunk(0), chunk(2), chunk(3))), ErrAuth, 0},
		{"chunk dropped", join(chunk(0), chunk(2), chunk(3)), s.Params, hashOf(join(chunk(0), chunk(2), chunk(3))), ErrAuth, ChunkSize},
		{"cut at a chunk boundary", ct[:3*sealedChunkSize], s.Params, hashOf(ct[:3*sealedChunkSize]), ErrTruncated, 2 * ChunkSize},
		{"cut inside a chunk", ct[:len(ct)-5], s.Params, hashOf(ct[:len(ct)-5]), ErrDecrypt, 3 * ChunkSize},
		{"cut before the first tag", ct[:TagSize-1], s.Params, hashOf(ct[:TagSize-1]), ErrTruncated, 0},
		{"empty blob", nil, s.Params, hashOf(nil), ErrTruncated, 0},
		// After a short last chunk, appended bytes make a longer last chunk
		// that fails authentication.
		{"data appended", join(ct, []byte{0}), s.Params, hashOf(join(ct, []byte{0})), ErrAuth, 3 * ChunkSize},
		{"last chunk repeated", join(ct, chunk(3)), s.Params, hashOf(join(ct, chunk(3))), ErrAuth, 3 * ChunkSize},
		{"wrong key", ct, other, s.SHA256, ErrAuth, 0},
		{"wrong nonce prefix", ct, otherPrefix, s.SHA256, ErrAuth, 0},
		{"wrong hash", ct, s.Params, hashOf([]byte("another blob")), ErrHashMismatch, 3 * ChunkSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := decryptAll(tc.ct, tc.p, tc.sum)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrDecrypt) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(out) > tc.released || !bytes.Equal(out, plain[:len(out)]) {
				t.Fatalf("released %d bytes (at most %d of the true plaintext allowed)", len(out), tc.released)
			}
		})
	}
}

func TestDataAfterFullLastChunk(t *testing.T) {
	plain := randomBytes(2*ChunkSize, 9)
	ct, s := encryptBytes(t, plain)
	for _, extra := range [][]byte{{0}, ct[:sealedChunkSize], ct[sealedChunkSize:]} {
		bad := append(bytes.Clone(ct), extra...)
		out, err := decryptAll(bad, s.Params, sha256.Sum256(bad))
		if !errors.Is(err, ErrTrailingData) {
			t.Fatalf("%d bytes appended: err = %v, want ErrTrailingData", len(extra), err)
		}
		if len(out) > ChunkSize || !bytes.Equal(out, plain[:len(out)]) {
			t.Fatalf("released %d bytes", len(out))
		}
	}
}

func TestWrongHashWithholdsLastChunk(t *testing.T) {
	// A single-chunk file whose ciphertext is not the announced one: no
	// byte of plaintext may come out.
	ct, s := encryptBytes(t, []byte("Lactate 4.2 mmol/L"))
	d := NewDecrypter(bytes.NewReader(ct), s.Params, sha256.Sum256([]byte("other")))
	b := make([]byte, 100)
	n, err := d.Read(b)
	if n != 0 || !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if n, err := d.Read(b); n != 0 || !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("error not sticky: %d, %v", n, err)
	}
}

func TestSourceErrorsAndCancellation(t *testing.T) {
	boom := errors.New("disk on fire")
	_, err := Encrypt(context.Background(), io.Discard, io.MultiReader(bytes.NewReader(make([]byte, ChunkSize+5)), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) {
		t.Fatalf("Encrypt source error: %v", err)
	}
	ct, s := encryptBytes(t, randomBytes(2*ChunkSize, 1))
	_, err = Decrypt(context.Background(), io.Discard, io.MultiReader(bytes.NewReader(ct[:100]), iotest.ErrReader(boom)), s.Params, s.SHA256)
	if !errors.Is(err, boom) {
		t.Fatalf("Decrypt source error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Encrypt(ctx, io.Discard, bytes.NewReader(ct)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Encrypt after cancel: %v", err)
	}
	if _, err := Decrypt(ctx, io.Discard, bytes.NewReader(ct), s.Params, s.SHA256); !errors.Is(err, context.Canceled) {
		t.Fatalf("Decrypt after cancel: %v", err)
	}
}

func TestEncrypterSealedOnlyAtEOF(t *testing.T) {
	e := NewEncrypter(bytes.NewReader(make([]byte, 3*ChunkSize)))
	if _, ok := e.Sealed(); ok {
		t.Fatal("Sealed before reading")
	}
	io.CopyN(io.Discard, e, ChunkSize)
	if _, ok := e.Sealed(); ok {
		t.Fatal("Sealed before EOF")
	}
	io.Copy(io.Discard, e)
	if s, ok := e.Sealed(); !ok || s.PlaintextSize != 3*ChunkSize {
		t.Fatalf("Sealed after EOF: %+v %v", s, ok)
	}
}

func benchmark(b *testing.B, decrypt bool) {
	const size = 16 << 20
	plain := randomBytes(size, 3)
	ct, s := encryptBytes(b, plain)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		var err error
		if decrypt {
			_, err = Decrypt(context.Background(), io.Discard, bytes.NewReader(ct), s.Params, s.SHA256)
		} else {
			_, err = Encrypt(context.Background(), io.Discard, bytes.NewReader(plain))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncrypt measures encryption with hashing of a 16 MiB file (MB/s).
func BenchmarkEncrypt(b *testing.B) { benchmark(b, false) }

// BenchmarkDecrypt measures verified decryption of a 16 MiB file (MB/s).
func BenchmarkDecrypt(b *testing.B) { benchmark(b, true) }
