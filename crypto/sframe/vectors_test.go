package sframe

import (
	"bytes"
	"crypto/hkdf"
	"encoding/hex"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeaderVectors(t *testing.T) {
	for _, v := range headerVectors {
		want := unhex(t, v.encoded)
		h := Header{KID: v.kid, CTR: v.ctr}
		if got := h.Append(nil); !bytes.Equal(got, want) {
			t.Errorf("encode kid=%#x ctr=%#x: got %x, want %x", v.kid, v.ctr, got, want)
		}
		if h.Len() != len(want) {
			t.Errorf("Len kid=%#x ctr=%#x: got %d, want %d", v.kid, v.ctr, h.Len(), len(want))
		}
		got, n, err := ParseHeader(append(want, 0xAA, 0xBB)) // trailing ciphertext is not consumed
		if err != nil || got != h || n != len(want) {
			t.Errorf("decode %x: got %+v, %d, %v; want %+v, %d", want, got, n, err, h, len(want))
		}
	}
	if len(headerVectors) != 289 {
		t.Fatalf("%d header vectors, the RFC has 289", len(headerVectors))
	}
}

func TestAEADVectors(t *testing.T) {
	for _, v := range aeadVectors {
		t.Run(v.suite.String(), func(t *testing.T) {
			p, err := v.suite.params()
			if err != nil {
				t.Fatal(err)
			}
			key := unhex(t, v.key)
			if !bytes.Equal(key[:p.nka], unhex(t, v.encKey)) || !bytes.Equal(key[p.nka:], unhex(t, v.authKey)) {
				t.Fatal("derive_subkeys split does not match enc_key/auth_key")
			}
			a, err := newAEAD(p, key)
			if err != nil {
				t.Fatal(err)
			}
			nonce, aad, pt, ct := unhex(t, v.nonce), unhex(t, v.aad), unhex(t, v.pt), unhex(t, v.ct)
			if got := a.Seal(nil, nonce, pt, aad); !bytes.Equal(got, ct) {
				t.Fatalf("Seal: got %x, want %x", got, ct)
			}
			got, err := a.Open(nil, nonce, ct, aad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Open: got %x, %v; want %x", got, err, pt)
			}
			bad := bytes.Clone(ct)
			bad[len(bad)-1] ^= 1
			if _, err := a.Open(nil, nonce, bad, aad); err == nil {
				t.Fatal("Open accepted a modified tag")
			}
		})
	}
}

func TestSFrameVectors(t *testing.T) {
	for _, v := range sframeVectors {
		t.Run(v.suite.String(), func(t *testing.T) {
			p, _ := v.suite.params()
			baseKey := unhex(t, v.baseKey)
			// Intermediate values of §4.4.2, to localise a failure.
			if got := label("SFrame 1.0 Secret key ", v.kid, v.suite); !bytes.Equal(got, unhex(t, v.keyLabel)) {
				t.Fatalf("key label %x", got)
			}
			if got := label("SFrame 1.0 Secret salt ", v.kid, v.suite); !bytes.Equal(got, unhex(t, v.saltLabel)) {
				t.Fatalf("salt label %x", got)
			}
			secret, _ := hkdf.Extract(p.hash, baseKey, nil)
			if !bytes.Equal(secret, unhex(t, v.secret)) {
				t.Fatalf("sframe_secret %x", secret)
			}
			k, err := DeriveKey(v.suite, v.kid, baseKey)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(k.salt[:], unhex(t, v.salt)) {
				t.Fatalf("sframe_salt %x", k.salt)
			}
			if n := k.nonce(v.ctr); !bytes.Equal(n[:], unhex(t, v.nonce)) {
				t.Fatalf("nonce %x", n)
			}
			// sframe_key is checked through the AEAD: the same key must
			// produce the vector's ciphertext.
			a, _ := newAEAD(p, unhex(t, v.key))
			hdr := Header{KID: v.kid, CTR: v.ctr}.Append(nil)
			metadata, pt, ct := unhex(t, v.metadata), unhex(t, v.pt), unhex(t, v.ct)
			if aad := append(bytes.Clone(hdr), metadata...); !bytes.Equal(aad, unhex(t, v.aad)) {
				t.Fatalf("aad %x", aad)
			}
			if got := a.Seal(hdr, unhex(t, v.nonce), pt, unhex(t, v.aad)); !bytes.Equal(got, ct) {
				t.Fatalf("sframe_key: AEAD with the vector's key gives %x", got)
			}

			if got := k.Seal(nil, v.ctr, metadata, pt); !bytes.Equal(got, ct) {
				t.Fatalf("encrypt: got %x, want %x", got, ct)
			}
			got, h, err := k.Open(nil, metadata, ct)
			if err != nil || !bytes.Equal(got, pt) || h != (Header{KID: v.kid, CTR: v.ctr}) {
				t.Fatalf("decrypt: got %x %+v %v", got, h, err)
			}

			// The same through a Context holding the base key for KID.
			c, _ := NewContext(v.suite)
			if err := c.AddReceiveKey(v.kid, baseKey); err != nil {
				t.Fatal(err)
			}
			got, _, err = c.Decrypt(nil, metadata, ct)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Context.Decrypt: %x %v", got, err)
			}
		})
	}
}
