package server

import (
	"crypto/tls"
	"net"
	"sync"

	"github.com/gorilla/websocket"
)

// TLS sends at most 16 KiB of plaintext per record (RFC 8446 §5.1) and
// crypto/tls writes each record to the connection with its own system call,
// so a sync frame of 64 KiB cost four writes to the socket. Under fan-out
// those writes were the largest part of the server's CPU time. A gatherConn
// sits between TLS and TCP: while a sync session writes a frame, it gathers
// the frame's records and sends them with one write.

// gatherLimit bounds what a gatherConn holds before it writes anyway, so that
// a large catch-up frame does not take memory in proportion to its size.
const gatherLimit = 256 << 10

var gatherBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// gatherListener wraps the connections it accepts in gatherConns.
type gatherListener struct{ net.Listener }

func (l gatherListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatherConn{Conn: c}, nil
}

// gatherConn is a connection whose writes can be gathered between gather
// and flush. It is safe for concurrent use; writes keep their order.
type gatherConn struct {
	net.Conn
	mu  sync.Mutex
	buf *[]byte // non-nil while gathering
}

// gather starts holding back writes until flush.
func (c *gatherConn) gather() {
	c.mu.Lock()
	if c.buf == nil {
		c.buf = gatherBuffers.Get().(*[]byte)
	}
	c.mu.Unlock()
}

// flush writes what was gathered and stops gathering.
func (c *gatherConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return nil
	}
	b := c.buf
	c.buf = nil
	var err error
	if len(*b) > 0 {
		_, err = c.Conn.Write(*b)
	}
	if cap(*b) <= gatherLimit*2 {
		*b = (*b)[:0]
		gatherBuffers.Put(b)
	}
	return err
}

func (c *gatherConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		return c.Conn.Write(p)
	}
	if len(*c.buf)+len(p) > gatherLimit && len(*c.buf) > 0 {
		if _, err := c.Conn.Write(*c.buf); err != nil {
			return 0, err
		}
		*c.buf = (*c.buf)[:0]
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

// gatherConnOf returns the gatherConn under a WebSocket's TLS connection,
// or nil if it has none (a server not started by Serve, as in tests).
func gatherConnOf(ws *websocket.Conn) *gatherConn {
	tc, ok := ws.UnderlyingConn().(*tls.Conn)
	if !ok {
		return nil
	}
	gc, _ := tc.NetConn().(*gatherConn)
	return gc
}
