package attach

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
)

// Errors of decryption. Every decryption error wraps ErrDecrypt, so callers
// that only need "this attachment is bad" test for that.
var (
	// ErrDecrypt is wrapped by every error that means the ciphertext is not
	// what the sender encrypted under these parameters.
	ErrDecrypt = errors.New("attach: attachment does not decrypt")
	// ErrAuth means a chunk failed AES-GCM authentication: wrong key, or
	// modified, reordered or foreign chunks.
	ErrAuth = fmt.Errorf("%w: chunk authentication failed", ErrDecrypt)
	// ErrTruncated means the ciphertext ended before its last chunk.
	ErrTruncated = fmt.Errorf("%w: ciphertext truncated", ErrDecrypt)
	// ErrTrailingData means bytes follow the last chunk.
	ErrTrailingData = fmt.Errorf("%w: data after the last chunk", ErrDecrypt)
	// ErrHashMismatch means every chunk authenticated but the SHA-256 of the
	// ciphertext is not the one the message announced.
	ErrHashMismatch = fmt.Errorf("%w: ciphertext SHA-256 does not match", ErrDecrypt)
)

// ErrTooLarge means a plaintext exceeds what the format can count.
var ErrTooLarge = errors.New("attach: file too large")

const sealedChunkSize = ChunkSize + TagSize

// Additional data of a chunk: whether it is the last one (STREAM's final
// flag), so that a stream cut at a chunk boundary does not authenticate.
var (
	aadMiddle = []byte{0x00}
	aadLast   = []byte{0x01}
)

// Sealed describes an encrypted file: its parameters and the SHA-256 of
// the ciphertext, which go into the attachment message, and both sizes.
type Sealed struct {
	Params
	// SHA256 is the SHA-256 of the whole ciphertext. medicus homeservers use
	// its hex form as the media id.
	SHA256 [HashSize]byte
	// PlaintextSize and CiphertextSize are the byte counts of the file and
	// of the blob.
	PlaintextSize, CiphertextSize int64
}

// CiphertextSize returns the size of the blob for a plaintext of n bytes
// (n ≥ 0): every chunk, including the one chunk of an empty file, adds
// TagSize bytes. Callers pass it as the upload's Content-Length.
func CiphertextSize(n int64) int64 {
	chunks := (n + ChunkSize - 1) / ChunkSize
	if chunks == 0 {
		chunks = 1
	}
	return n + chunks*TagSize
}

// PlaintextSize returns the plaintext size of a blob of c bytes, or an
// ErrTruncated error if no plaintext encrypts to exactly c bytes.
func PlaintextSize(c int64) (int64, error) {
	if c < TagSize {
		return 0, ErrTruncated
	}
	full := c / sealedChunkSize
	rest := c % sealedChunkSize
	switch {
	case rest == 0:
		return full * ChunkSize, nil
	case rest <= TagSize:
		// A non-empty last chunk has more than TagSize bytes; only an
		// empty file has a chunk of exactly TagSize.
		if full == 0 && rest == TagSize {
			return 0, nil
		}
		return 0, ErrTruncated
	default:
		return full*ChunkSize + rest - TagSize, nil
	}
}

// chunkAEAD seals and opens the chunks of one file.
type chunkAEAD struct {
	aead    cipher.AEAD
	nonce   [12]byte
	counter uint64
}

func newChunkAEAD(p Params) *chunkAEAD {
	block, err := aes.NewCipher(p.Key[:])
	if err != nil {
		panic("attach: " + err.Error()) // unreachable: the key is always 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("attach: " + err.Error()) // unreachable: standard nonce and tag sizes
	}
	c := &chunkAEAD{aead: aead}
	copy(c.nonce[:NoncePrefixSize], p.NoncePrefix[:])
	return c
}

// next returns the nonce of the next chunk: prefix ‖ counter (big endian).
func (c *chunkAEAD) next() ([]byte, error) {
	if c.counter == math.MaxUint64 {
		return nil, ErrTooLarge
	}
	binary.BigEndian.PutUint64(c.nonce[NoncePrefixSize:], c.counter)
	c.counter++
	return c.nonce[:], nil
}

// Encrypter is an io.Reader of the ciphertext of its source, produced chunk
// by chunk in constant memory (about 130 KiB). After Read returned io.EOF,
// Sealed returns the parameters and hash to put into the message.
type Encrypter struct {
	src    io.Reader
	params Params
	c      *chunkAEAD
	hash   hash.Hash
	in     []byte // plaintext chunk plus one byte of look-ahead
	have   int    // bytes of in filled
	chunks chunkOutput
	sealed Sealed
}

// NewEncrypter returns an Encrypter of src under fresh random parameters.
func NewEncrypter(src io.Reader) *Encrypter {
	return newEncrypter(src, NewParams())
}

func newEncrypter(src io.Reader, p Params) *Encrypter {
	return &Encrypter{
		src:    src,
		params: p,
		c:      newChunkAEAD(p),
		hash:   sha256.New(),
		in:     make([]byte, ChunkSize+1),
		chunks: chunkOutput{out: make([]byte, 0, sealedChunkSize)},
		sealed: Sealed{Params: p},
	}
}

// Read fills p with ciphertext. It returns io.EOF after the last chunk and
// the source's error (wrapped) if reading the source fails.
func (e *Encrypter) Read(p []byte) (int, error) {
	return e.chunks.read(p, e.sealNext)
}

// sealNext reads the next plaintext chunk and seals it into e.out.
func (e *Encrypter) sealNext() error {
	m, err := io.ReadFull(e.src, e.in[e.have:])
	e.have += m
	last := false
	switch err {
	case nil:
		// A full chunk and one more byte: this chunk is not the last.
	case io.EOF, io.ErrUnexpectedEOF:
		last = true
	default:
		return fmt.Errorf("attach: read plaintext: %w", err)
	}
	size := e.have
	if !last {
		size = ChunkSize
	}
	nonce, err := e.c.next()
	if err != nil {
		return err
	}
	aad := aadMiddle
	if last {
		aad = aadLast
	}
	out := e.c.aead.Seal(e.chunks.out[:0], nonce, e.in[:size], aad)
	e.chunks.set(out, last)
	e.hash.Write(out)
	e.sealed.PlaintextSize += int64(size)
	e.sealed.CiphertextSize += int64(len(out))
	if last {
		e.hash.Sum(e.sealed.SHA256[:0])
	}
	// Keep the look-ahead byte for the next chunk.
	e.have = copy(e.in, e.in[size:e.have])
	return nil
}

// Sealed returns the parameters, ciphertext hash and sizes. It is valid
// only after Read returned io.EOF; before that it returns false.
func (e *Encrypter) Sealed() (Sealed, bool) {
	return e.sealed, e.chunks.err == io.EOF
}

// Encrypt encrypts src into dst under fresh random parameters and returns
// them with the ciphertext hash. It checks ctx between chunks.
func Encrypt(ctx context.Context, dst io.Writer, src io.Reader) (Sealed, error) {
	e := NewEncrypter(src)
	if err := copyChunks(ctx, dst, e); err != nil {
		return Sealed{}, err
	}
	s, _ := e.Sealed()
	return s, nil
}

// copyChunks copies r to w chunk by chunk, checking ctx before each.
func copyChunks(ctx context.Context, w io.Writer, r io.Reader) error {
	buf := make([]byte, sealedChunkSize)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("attach: write: %w", werr)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// Decrypter is an io.Reader of the plaintext of a blob, decrypted chunk by
// chunk in constant memory (about 130 KiB).
//
// Its guarantee: every byte Read returns belongs to a chunk that AES-GCM
// authenticated under the file key at its position in the stream; the last
// chunk's plaintext, and io.EOF, are returned only after the whole
// ciphertext was read, its last chunk authenticated as the last, nothing
// followed it, and its SHA-256 equalled the expected hash. Plaintext of
// earlier chunks is released before the end is verified, so it may be the
// beginning of a stream that then fails (truncated, altered, or not the
// announced blob): a caller must treat everything it read as void unless
// Read ended with io.EOF — write to a temporary file and rename it on
// success, as Decrypt's callers should. Errors are sticky and wrap
// ErrDecrypt (ErrAuth, ErrTruncated, ErrTrailingData, ErrHashMismatch), or
// are the source's read error.
type Decrypter struct {
	src    io.Reader
	c      *chunkAEAD
	hash   hash.Hash
	want   [HashSize]byte
	in     []byte // sealed chunk plus one byte of look-ahead
	have   int
	chunks chunkOutput
	n      int64 // plaintext bytes produced
}

// NewDecrypter returns a Decrypter of src, a blob encrypted with p whose
// ciphertext must have SHA-256 sum.
func NewDecrypter(src io.Reader, p Params, sum [HashSize]byte) *Decrypter {
	return &Decrypter{
		src:    src,
		c:      newChunkAEAD(p),
		hash:   sha256.New(),
		want:   sum,
		in:     make([]byte, sealedChunkSize+1),
		chunks: chunkOutput{out: make([]byte, 0, ChunkSize)},
	}
}

// Read fills p with authenticated plaintext; see the type's guarantee.
func (d *Decrypter) Read(p []byte) (int, error) {
	return d.chunks.read(p, d.openNext)
}

// openNext reads and opens the next sealed chunk into d.out.
func (d *Decrypter) openNext() error {
	m, err := io.ReadFull(d.src, d.in[d.have:])
	d.have += m
	last := false
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		last = true
	default:
		return fmt.Errorf("attach: read ciphertext: %w", err)
	}
	size := d.have
	if !last {
		size = sealedChunkSize
	}
	if size < TagSize {
		return ErrTruncated
	}
	nonce, err := d.c.next()
	if err != nil {
		return err
	}
	sealed := d.in[:size]
	aad, other := aadMiddle, aadLast
	if last {
		aad, other = aadLast, aadMiddle
	}
	out, err := d.c.aead.Open(d.chunks.out[:0], nonce, sealed, aad)
	if err != nil {
		// Tell truncation at a chunk boundary and data after the last
		// chunk from tampering: the chunk opens with the other flag.
		if _, err2 := d.c.aead.Open(d.chunks.out[:0], nonce, sealed, other); err2 == nil {
			if last {
				return ErrTruncated
			}
			return ErrTrailingData
		}
		return ErrAuth
	}
	d.hash.Write(sealed)
	d.n += int64(len(out))
	if last {
		var got [HashSize]byte
		d.hash.Sum(got[:0])
		if subtle.ConstantTimeCompare(got[:], d.want[:]) != 1 {
			clear(out)
			return ErrHashMismatch
		}
	}
	d.chunks.set(out, last)
	d.have = copy(d.in, d.in[size:d.have])
	return nil
}

// Decrypt decrypts the blob src, encrypted with p and of ciphertext hash
// sum, into dst and returns the number of plaintext bytes written. It checks
// ctx between chunks. On error dst has received a prefix of the plaintext
// that must be discarded (see Decrypter for the guarantee).
func Decrypt(ctx context.Context, dst io.Writer, src io.Reader, p Params, sum [HashSize]byte) (int64, error) {
	d := NewDecrypter(src, p, sum)
	err := copyChunks(ctx, dst, d)
	return d.n, err
}

// chunkOutput hands out one processed chunk at a time to Read calls.
type chunkOutput struct {
	out  []byte // the current chunk
	off  int    // bytes of out already returned
	last bool   // out is the last chunk
	err  error  // sticky error; io.EOF after the last chunk
}

func (c *chunkOutput) set(out []byte, last bool) {
	c.out, c.off, c.last = out, 0, last
}

// read fills p from the current chunk, calling next for another one until p
// is full, next fails, or the last chunk is used up.
func (c *chunkOutput) read(p []byte, next func() error) (int, error) {
	n := 0
	for n < len(p) {
		if c.off == len(c.out) {
			if c.err != nil {
				break
			}
			if c.last {
				c.err = io.EOF
				break
			}
			if err := next(); err != nil {
				c.err = err
				break
			}
		}
		m := copy(p[n:], c.out[c.off:])
		c.off += m
		n += m
	}
	if n > 0 {
		return n, nil
	}
	return 0, c.err
}
