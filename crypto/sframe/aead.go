package sframe

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// ctrHMAC is the encrypt-then-MAC AEAD of RFC 9605 §4.5.1: AES in counter
// mode keyed with the first Nka bytes of the key, authenticated by HMAC
// keyed with the remaining Nh bytes, the tag truncated to Nt bytes.
type ctrHMAC struct {
	block  cipher.Block
	macs   sync.Pool // of hash.Hash: HMACs keyed with the auth key, reset before use
	nn, nt int
}

var errOpen = errors.New("sframe: message authentication failed")

func newAEAD(p params, key []byte) (cipher.AEAD, error) {
	if len(key) != p.nk {
		return nil, fmt.Errorf("sframe: key is %d bytes, the suite needs %d", len(key), p.nk)
	}
	if !p.ctr {
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		return cipher.NewGCM(block)
	}
	// RFC 9605 §4.5.1 derive_subkeys: enc_key = key[..Nka], auth_key = key[Nka..].
	block, err := aes.NewCipher(key[:p.nka])
	if err != nil {
		return nil, err
	}
	authKey := append([]byte(nil), key[p.nka:]...)
	a := &ctrHMAC{block: block, nn: p.nn, nt: p.nt}
	a.macs.New = func() any { return hmac.New(p.hash, authKey) }
	return a, nil
}

func (a *ctrHMAC) NonceSize() int { return a.nn }
func (a *ctrHMAC) Overhead() int  { return a.nt }

// tag is compute_tag of §4.5.1: HMAC over the three 8-byte big-endian
// lengths of aad, ciphertext and tag, then the nonce, aad and ciphertext.
func (a *ctrHMAC) tag(dst, nonce, aad, ct []byte) []byte {
	m := a.macs.Get().(hash.Hash)
	defer a.macs.Put(m)
	m.Reset()
	var lens [24]byte
	binary.BigEndian.PutUint64(lens[0:], uint64(len(aad)))
	binary.BigEndian.PutUint64(lens[8:], uint64(len(ct)))
	binary.BigEndian.PutUint64(lens[16:], uint64(a.nt))
	m.Write(lens[:])
	m.Write(nonce)
	m.Write(aad)
	m.Write(ct)
	var sum [64]byte
	return append(dst, m.Sum(sum[:0])[:a.nt]...)
}

// stream returns the AES-CTR keystream whose initial counter block is the
// nonce followed by four zero bytes.
func (a *ctrHMAC) stream(nonce []byte) cipher.Stream {
	var iv [aes.BlockSize]byte
	copy(iv[:], nonce)
	return cipher.NewCTR(a.block, iv[:])
}

// Seal encrypts and authenticates plaintext and appends the result to dst.
func (a *ctrHMAC) Seal(dst, nonce, plaintext, aad []byte) []byte {
	if len(nonce) != a.nn {
		panic("sframe: wrong nonce length") // programming error: nonces are formed internally
	}
	ret, out := sliceForAppend(dst, len(plaintext)+a.nt)
	ct := out[:len(plaintext)]
	a.stream(nonce).XORKeyStream(ct, plaintext)
	a.tag(out[len(plaintext):len(plaintext)], nonce, aad, ct)
	return ret
}

// Open authenticates and decrypts ciphertext and appends the plaintext to dst.
func (a *ctrHMAC) Open(dst, nonce, ciphertext, aad []byte) ([]byte, error) {
	if len(nonce) != a.nn || len(ciphertext) < a.nt {
		return nil, errOpen
	}
	inner, tag := ciphertext[:len(ciphertext)-a.nt], ciphertext[len(ciphertext)-a.nt:]
	var buf [64]byte
	if subtle.ConstantTimeCompare(a.tag(buf[:0], nonce, aad, inner), tag) != 1 {
		return nil, errOpen
	}
	ret, out := sliceForAppend(dst, len(inner))
	a.stream(nonce).XORKeyStream(out, inner)
	return ret, nil
}

// sliceForAppend extends in by n bytes and returns the whole slice and the
// new tail (as crypto/cipher does).
func sliceForAppend(in []byte, n int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total)
		copy(head, in)
	}
	return head, head[len(in):]
}
