package hl7

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		err  error
	}{
		{"frame", "\x0bMSH|x\r\x1c\r", "MSH|x\r", nil},
		{"line break before the frame", "\r\n\x0bMSH|x\r\x1c\r", "MSH|x\r", nil},
		{"empty stream", "", "", io.EOF},
		{"junk before the frame", "GET / HTTP/1.1\r\n", "", ErrFrame},
		{"end block without CR", "\x0bMSH\x1cX", "", ErrFrame},
		{"stream ends inside", "\x0bMSH|x", "", ErrFrame},
		{"stream ends after end block", "\x0bMSH|x\x1c", "", ErrFrame},
		{"second start block", "\x0bMSH\x0bMSH\x1c\r", "", ErrFrame},
		{"too large", "\x0b" + strings.Repeat("x", 65) + "\x1c\r", "", ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadFrame(bufio.NewReader(strings.NewReader(tt.in)), 64)
			if !errors.Is(err, tt.err) || string(got) != tt.want {
				t.Fatalf("ReadFrame = %q, %v; want %q, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestWriteFrameRoundTrips(t *testing.T) {
	var buf bytes.Buffer
	for _, m := range []string{labORU, monitorORU} {
		if err := WriteFrame(&buf, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, m := range []string{labORU, monitorORU} {
		got, err := ReadFrame(r, MaxMessageBytes)
		if err != nil || string(got) != m {
			t.Fatalf("got %q, %v", got, err)
		}
	}
	if _, err := ReadFrame(r, MaxMessageBytes); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v", err)
	}
}

// startMLLP runs a Server on a loopback port and returns its address and a
// function that stops it and waits until Serve has returned.
func startMLLP(t *testing.T, sink *memorySink) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rc := &Receiver{Sink: sink, Now: func() time.Time { return testNow }, Logger: quiet}
	srv := &Server{Handler: rc.HandleMessage, MaxFrame: 4096, Logger: quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	stop := func() { once.Do(func() { waitServe(t, cancel, done) }) }
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func waitServe(t *testing.T, cancel context.CancelFunc, done chan error) {
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancellation")
	}
}

func TestMLLPServerAcknowledgesEachMessageOnOneConnection(t *testing.T) {
	sink := &memorySink{}
	addr, _ := startMLLP(t, sink)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, tc := range []struct {
		msg  string
		code string
	}{{labORU, "AA"}, {monitorORU, "AA"}, {"not hl7", "AE"}} {
		ack, err := Send(ctx, conn, r, []byte(tc.msg))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if msa, _, _ := parseAck(t, ack); msa.Get(1, 1, 1, 1) != tc.code {
			t.Fatalf("message %d: MSA %q", i, msa.Fields)
		}
	}
	if sink.count() != 10 {
		t.Fatalf("sink has %d measurements, want 6 + 4", sink.count())
	}
}

func TestMLLPServerClosesConnectionsThatBreakFraming(t *testing.T) {
	addr, _ := startMLLP(t, &memorySink{})
	for _, bad := range []string{"GET / HTTP/1.0\r\n\r\n", "\x0b" + strings.Repeat("x", 5000) + "\x1c\r"} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(bad)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(make([]byte, 1))
		var ne net.Error
		if n != 0 || err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("connection not closed: n=%d err=%v", n, err)
		}
		conn.Close()
	}
}

func TestMLLPServerStopsWithOpenConnections(t *testing.T) {
	addr, stop := startMLLP(t, &memorySink{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("\x0bMSH|^~\\&|half a frame")); err != nil {
		t.Fatal(err)
	}
	stop() // fails the test if Serve does not return
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after the server stopped")
	}
}
