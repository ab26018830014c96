package attach

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"testing"
)

// FuzzDecrypt feeds arbitrary blobs (announced with their true hash, so the
// hash check passes) to the decrypter: it must never panic, and whatever it
// accepts must be exactly what encrypting its output under the same
// parameters gives — no other blob decrypts.
func FuzzDecrypt(f *testing.F) {
	p := Params{Key: [KeySize]byte{1, 2, 3}, NoncePrefix: [NoncePrefixSize]byte{9}}
	for _, n := range []int{0, 5, ChunkSize, ChunkSize + 3} {
		var ct bytes.Buffer
		io.Copy(&ct, newEncrypter(bytes.NewReader(make([]byte, n)), p))
		f.Add(ct.Bytes())
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		var out bytes.Buffer
		_, err := Decrypt(context.Background(), &out, bytes.NewReader(ct), p, sha256.Sum256(ct))
		if err != nil {
			return
		}
		var again bytes.Buffer
		io.Copy(&again, newEncrypter(bytes.NewReader(out.Bytes()), p))
		if !bytes.Equal(again.Bytes(), ct) {
			t.Fatalf("accepted a blob that is not the encryption of its plaintext")
		}
	})
}
