package hl7

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// MLLP framing bytes (HL7 v2.5 Appendix C, "Minimal Lower Layer Protocol"):
// a frame is <VT> message <FS><CR>.
const (
	startBlock     = 0x0b
	endBlock       = 0x1c
	carriageReturn = 0x0d
)

// ErrFrame means the bytes on an MLLP connection are not a valid frame.
var ErrFrame = errors.New("hl7: invalid MLLP frame")

// ReadFrame reads one MLLP frame and returns the message inside it. CR and
// LF bytes before the start block are skipped (some senders end frames with
// an extra line break). It returns io.EOF if the stream ends cleanly
// between frames, an error wrapping ErrTooLarge if the message exceeds max
// bytes, and one wrapping ErrFrame for anything else that is not a frame.
func ReadFrame(r *bufio.Reader, max int) ([]byte, error) {
	for {
		c, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		if c == startBlock {
			break
		}
		if c != '\r' && c != '\n' {
			return nil, fmt.Errorf("%w: byte 0x%02x before the start block", ErrFrame, c)
		}
	}
	var msg []byte
	for {
		c, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: stream ended inside a frame", ErrFrame)
			}
			return nil, err
		}
		switch c {
		case endBlock:
			c2, err := r.ReadByte()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return nil, fmt.Errorf("%w: stream ended after the end block", ErrFrame)
				}
				return nil, err
			}
			if c2 != carriageReturn {
				return nil, fmt.Errorf("%w: end block not followed by CR", ErrFrame)
			}
			return msg, nil
		case startBlock:
			return nil, fmt.Errorf("%w: start block inside a frame", ErrFrame)
		}
		if len(msg) >= max {
			return nil, fmt.Errorf("%w: frame exceeds %d bytes", ErrTooLarge, max)
		}
		msg = append(msg, c)
	}
}

// WriteFrame writes msg as one MLLP frame.
func WriteFrame(w io.Writer, msg []byte) error {
	buf := make([]byte, 0, len(msg)+3)
	buf = append(buf, startBlock)
	buf = append(buf, msg...)
	buf = append(buf, endBlock, carriageReturn)
	_, err := w.Write(buf)
	return err
}

// HandlerFunc processes one message and returns the acknowledgement to
// send back. Receiver.HandleMessage is one.
type HandlerFunc func(ctx context.Context, msg []byte) []byte

// Server is an MLLP listener: each connection carries a sequence of
// frames, each answered by one acknowledgement frame before the next is
// read.
type Server struct {
	// Handler processes messages. Required.
	Handler HandlerFunc
	// MaxFrame bounds one message; MaxMessageBytes if zero.
	MaxFrame int
	// IdleTimeout closes a connection that sends nothing for this long;
	// 10 minutes if zero.
	IdleTimeout time.Duration
	// MaxConns bounds concurrent connections; further ones wait to be
	// accepted. 32 if zero.
	MaxConns int
	// Logger receives connection events; slog.Default() if nil.
	Logger *slog.Logger
}

// Serve accepts connections on ln until ctx is cancelled, then closes the
// listener and every connection and waits for their goroutines. It
// returns nil after cancellation, or the listener's error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	maxFrame, idle, maxConns, log := s.MaxFrame, s.IdleTimeout, s.MaxConns, s.Logger
	if maxFrame == 0 {
		maxFrame = MaxMessageBytes
	}
	if idle == 0 {
		idle = 10 * time.Minute
	}
	if maxConns == 0 {
		maxConns = 32
	}
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	slots := make(chan struct{}, maxConns)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := ln.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("hl7: accept: %w", err)
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			s.serveConn(ctx, c, maxFrame, idle, log)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close()
		}()
	}
}

// serveConn reads frames and answers each until the peer closes, an
// invalid frame arrives, or the idle timeout passes.
func (s *Server) serveConn(ctx context.Context, c net.Conn, maxFrame int, idle time.Duration, log *slog.Logger) {
	r := bufio.NewReader(c)
	for {
		if err := c.SetReadDeadline(time.Now().Add(idle)); err != nil {
			return
		}
		msg, err := ReadFrame(r, maxFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				log.Warn("hl7: closing MLLP connection", "remote", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		ack := s.Handler(ctx, msg)
		if err := c.SetWriteDeadline(time.Now().Add(idle)); err != nil {
			return
		}
		if err := WriteFrame(c, ack); err != nil {
			return
		}
	}
}

// Send writes msg as one frame on conn and reads the acknowledgement
// frame, for senders and tests. It honours ctx's deadline.
func Send(ctx context.Context, conn net.Conn, r *bufio.Reader, msg []byte) ([]byte, error) {
	if d, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(d); err != nil {
			return nil, err
		}
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := WriteFrame(conn, msg); err != nil {
		return nil, fmt.Errorf("hl7: send: %w", err)
	}
	ack, err := ReadFrame(r, MaxMessageBytes)
	if err != nil {
		return nil, fmt.Errorf("hl7: read acknowledgement: %w", err)
	}
	return ack, nil
}
