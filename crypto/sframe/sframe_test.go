package sframe

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

var testBaseKey = bytes.Repeat([]byte{7}, 16)

func TestContextCountersNeverRepeat(t *testing.T) {
	for _, suite := range Suites() {
		t.Run(suite.String(), func(t *testing.T) {
			base := bytes.Repeat([]byte{1}, suite.KeySize())
			send, _ := NewContext(suite)
			recv, _ := NewContext(suite)
			if err := send.AddSendKey(9, base); err != nil {
				t.Fatal(err)
			}
			if err := recv.AddReceiveKey(9, base); err != nil {
				t.Fatal(err)
			}
			for i := range uint64(20) {
				ct, err := send.Encrypt(nil, 9, []byte("meta"), []byte("frame"))
				if err != nil {
					t.Fatal(err)
				}
				h, _, _ := ParseHeader(ct)
				if h.CTR != i || h.KID != 9 {
					t.Fatalf("frame %d has header %+v", i, h)
				}
				if len(ct) != h.Len()+len("frame")+suite.Overhead() {
					t.Fatalf("ciphertext length %d", len(ct))
				}
				pt, _, err := recv.Decrypt(nil, []byte("meta"), ct)
				if err != nil || string(pt) != "frame" {
					t.Fatalf("decrypt frame %d: %q %v", i, pt, err)
				}
				if _, _, err := recv.Decrypt(nil, []byte("meta"), ct); !errors.Is(err, ErrReplay) {
					t.Fatalf("replayed frame %d: %v", i, err)
				}
			}
		})
	}
}

func TestDecryptRefusesTamperingAndWrongMetadata(t *testing.T) {
	send, _ := NewContext(AES128CTRHMACSHA256_80)
	recv, _ := NewContext(AES128CTRHMACSHA256_80)
	send.AddSendKey(300, bytes.Repeat([]byte{2}, 48))
	recv.AddReceiveKey(300, bytes.Repeat([]byte{2}, 48))
	ct, _ := send.Encrypt(nil, 300, []byte("m"), []byte("a video frame"))
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x40
		if _, _, err := recv.Decrypt(nil, []byte("m"), bad); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	if _, _, err := recv.Decrypt(nil, []byte("other"), ct); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("wrong metadata: %v", err)
	}
	if _, _, err := recv.Decrypt(nil, []byte("m"), ct[:len(ct)-11]); err == nil {
		t.Fatal("truncated ciphertext accepted")
	}
	// A failed attempt does not burn the counter.
	if pt, _, err := recv.Decrypt(nil, []byte("m"), ct); err != nil || string(pt) != "a video frame" {
		t.Fatalf("genuine frame after forgeries: %q %v", pt, err)
	}
}

func TestUnknownKIDAndKeyUsage(t *testing.T) {
	c, _ := NewContext(AES128GCMSHA256_128)
	if err := c.AddSendKey(1, testBaseKey); err != nil {
		t.Fatal(err)
	}
	if err := c.AddReceiveKey(1, testBaseKey); !errors.Is(err, ErrKeyUsage) {
		t.Fatalf("same KID for both directions: %v", err)
	}
	if err := c.AddSendKey(1, testBaseKey); err == nil {
		t.Fatal("re-adding a send key (which would restart its counter) was accepted")
	}
	ct, _ := c.Encrypt(nil, 1, nil, []byte("x"))
	if _, _, err := c.Decrypt(nil, nil, ct); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("decrypting with a send-only key: %v", err)
	}
	if _, err := c.Encrypt(nil, 2, nil, []byte("x")); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("encrypt with unknown KID: %v", err)
	}
	c.RemoveKey(1)
	if _, err := c.Encrypt(nil, 1, nil, []byte("x")); !errors.Is(err, ErrUnknownKID) {
		t.Fatalf("encrypt after RemoveKey: %v", err)
	}
	if _, err := NewContext(CipherSuite(9)); !errors.Is(err, ErrUnsupportedSuite) {
		t.Fatalf("suite 9: %v", err)
	}
}

func TestCounterExhaustion(t *testing.T) {
	c, _ := NewContext(AES128GCMSHA256_128)
	c.AddSendKey(5, testBaseKey)
	c.send[5].ctr = math.MaxUint64
	ct, err := c.Encrypt(nil, 5, nil, []byte("last"))
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := ParseHeader(ct); h.CTR != math.MaxUint64 {
		t.Fatalf("last counter %d", h.CTR)
	}
	if _, err := c.Encrypt(nil, 5, nil, []byte("again")); !errors.Is(err, ErrCounterExhausted) {
		t.Fatalf("after the last counter: %v", err)
	}
}

func TestReplayWindowAcceptsReorderingOnce(t *testing.T) {
	k, _ := DeriveKey(AES128GCMSHA256_128, 3, testBaseKey)
	c, _ := NewContext(AES128GCMSHA256_128)
	c.AddReceiveKey(3, testBaseKey)
	open := func(ctr uint64) error {
		_, _, err := c.Decrypt(nil, nil, k.Seal(nil, ctr, nil, []byte("f")))
		return err
	}
	steps := []struct {
		ctr  uint64
		want error
	}{
		{10, nil}, {12, nil}, {11, nil}, {11, ErrReplay}, {10, ErrReplay},
		// The window holds the highest counter and the 127 below it:
		// 73 = 200-127 is inside and never seen, 72 is too old.
		{200, nil}, {73, nil}, {73, ErrReplay}, {72, ErrReplay}, {150, nil}, {150, ErrReplay},
		{1000, nil}, {999, nil}, {872, ErrReplay}, {873, nil},
	}
	for _, s := range steps {
		if err := open(s.ctr); !errors.Is(err, s.want) {
			t.Fatalf("counter %d: got %v, want %v", s.ctr, err, s.want)
		}
	}
}

func TestHeaderRefusesNonMinimalEncodings(t *testing.T) {
	for _, b := range [][]byte{
		{},
		{0x80},                   // KID length 1, missing
		{0x08},                   // CTR length 1, missing
		{0x80, 0x05},             // KID 5 must be in the config byte
		{0x90, 0x00, 0xff},       // KID 0x00ff in two bytes
		{0x09, 0x00, 0x08},       // CTR 8 in two bytes
		{0xf8, 1, 2, 3, 4, 5, 6}, // KID of 8 bytes, 6 present
	} {
		if _, _, err := ParseHeader(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseHeader(%x): %v", b, err)
		}
	}
}
