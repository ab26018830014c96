package sframe

import (
	"bytes"
	"fmt"
	"testing"
)

// Benchmarks encrypt and decrypt a typical video frame (1200 bytes, one
// packet's worth) and a large keyframe (32 KiB) in every suite.
func BenchmarkEncrypt(b *testing.B) {
	for _, suite := range Suites() {
		for _, size := range []int{1200, 32 << 10} {
			b.Run(fmt.Sprintf("%s/%d", suite, size), func(b *testing.B) {
				c, _ := NewContext(suite)
				c.AddSendKey(1, bytes.Repeat([]byte{1}, suite.KeySize()))
				frame := make([]byte, size)
				buf := make([]byte, 0, size+64)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Encrypt(buf[:0], 1, nil, frame); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	for _, suite := range Suites() {
		b.Run(fmt.Sprintf("%s/1200", suite), func(b *testing.B) {
			base := bytes.Repeat([]byte{1}, suite.KeySize())
			send, _ := NewContext(suite)
			send.AddSendKey(1, base)
			recv, _ := NewContext(suite)
			recv.AddReceiveKey(1, base)
			frame := make([]byte, 1200)
			cts := make([][]byte, 1024)
			for i := range cts {
				cts[i], _ = send.Encrypt(nil, 1, nil, frame)
			}
			buf := make([]byte, 0, 1300)
			b.SetBytes(1200)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(cts) {
					// Re-arm the replay window with fresh counters.
					b.StopTimer()
					for j := range cts {
						cts[j], _ = send.Encrypt(cts[j][:0], 1, nil, frame)
					}
					i = 0
					b.StartTimer()
				}
				if _, _, err := recv.Decrypt(buf[:0], nil, cts[i]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func BenchmarkDeriveKey(b *testing.B) {
	base := bytes.Repeat([]byte{1}, 16)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DeriveKey(AES128GCMSHA256_128, 0x123, base); err != nil {
			b.Fatal(err)
		}
	}
}
