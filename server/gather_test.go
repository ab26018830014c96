package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/crypto/pki"
)

// tlsPair returns the two ends of a TLS connection over loopback TCP, the
// server's on a gatherConn.
func tlsPair(t testing.TB) (server *tls.Conn, gc *gatherConn, client *tls.Conn) {
	t.Helper()
	ca, err := pki.NewCA("test", pki.CAValidity)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("test.example", []net.IP{net.IPv4(127, 0, 0, 1)}, pki.LeafValidity)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cert := tls.Certificate{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key}
	tln := tls.NewListener(gatherListener{ln}, &tls.Config{Certificates: []tls.Certificate{cert}})
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := tln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		if err := c.(*tls.Conn).Handshake(); err != nil {
			c.Close()
			close(accepted)
			return
		}
		accepted <- c
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	cc, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "test.example"})
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := (<-accepted).(*tls.Conn)
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { sc.Close(); cc.Close() })
	return sc, sc.NetConn().(*gatherConn), cc
}

// TestGatherConnKeepsTheTLSStreamIntact writes gathered frames of many
// records, larger than gatherLimit too, while another goroutine writes
// directly, and checks that the client decrypts every byte in order.
func TestGatherConnKeepsTheTLSStreamIntact(t *testing.T) {
	sc, gc, cc := tlsPair(t)
	frame := make([]byte, 100<<10)
	for i := range frame {
		frame[i] = byte(i * 7)
	}
	small := []byte("control")
	const frames = 20
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range frames {
			size := len(frame)
			if i%4 == 3 {
				size = gatherLimit + 1000 // written in parts
			}
			gc.gather()
			// A frame may be written in several calls, as the WebSocket
			// writer does.
			data := bytes.Repeat(frame, size/len(frame)+1)[:size]
			if _, err := sc.Write(data[:size/2]); err != nil {
				t.Error(err)
				return
			}
			if _, err := sc.Write(data[size/2:]); err != nil {
				t.Error(err)
				return
			}
			if err := gc.flush(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	// Concurrent direct writes, as ping and close frames are, interleave
	// only between whole TLS records.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range frames {
			if _, err := sc.Write(small); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	cc.SetReadDeadline(time.Now().Add(30 * time.Second))
	var total int
	want := 0
	for i := range frames {
		if i%4 == 3 {
			want += gatherLimit + 1000
		} else {
			want += len(frame)
		}
	}
	want += frames * len(small)
	buf := make([]byte, 64<<10)
	for total < want {
		n, err := cc.Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", total, want, err)
		}
		total += n
	}
	wg.Wait()
	if total != want {
		t.Fatalf("read %d bytes, want %d", total, want)
	}
}

// BenchmarkFrameWrite compares writing a 32 KiB frame to a TLS connection
// record by record with gathering its records into one write.
func BenchmarkFrameWrite(b *testing.B) {
	for _, gather := range []bool{false, true} {
		name := "direct"
		if gather {
			name = "gathered"
		}
		b.Run(name, func(b *testing.B) {
			sc, gc, cc := tlsPair(b)
			go io.Copy(io.Discard, cc)
			frame := make([]byte, 32<<10)
			b.SetBytes(int64(len(frame)))
			for b.Loop() {
				if gather {
					gc.gather()
				}
				if _, err := sc.Write(frame); err != nil {
					b.Fatal(err)
				}
				if err := gc.flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
