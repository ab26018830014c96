//go:build js && wasm

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall/js"
	"time"

	"github.com/medicus-health/medicus/proto"
)

// BearerProtocolPrefix prefixes the WebSocket subprotocol that carries the
// access token of a browser's sync connection: a browser's WebSocket cannot
// send an Authorization header, only subprotocols (RFC 6455 section 4.1,
// Sec-WebSocket-Protocol).
const BearerProtocolPrefix = "medicus.bearer."

// ErrSyncClosed means the browser's sync WebSocket closed.
var ErrSyncClosed = errors.New("sync websocket closed")

// maxQueuedFrames bounds the frames a browser sync connection holds for a
// slow reader before it closes the connection.
const maxQueuedFrames = 4096

// dialSync opens the sync WebSocket through the browser's WebSocket API,
// offering protocols and the access token as a subprotocol.
func (c *Client) dialSync(ctx context.Context, url string, protocols []string) (syncConn, string, error) {
	// The server selects one of the offered subprotocols other than the
	// token, as the browser requires: offer binary frames always.
	offered := []any{BearerProtocolPrefix + c.token, proto.SyncSubprotocolBinary}
	for _, p := range protocols {
		if p != proto.SyncSubprotocolBinary {
			offered = append(offered, p)
		}
	}
	ws := js.Global().Get("WebSocket").New(url, js.ValueOf(offered))
	ws.Set("binaryType", "arraybuffer")
	b := &browserConn{ws: ws, ready: make(chan struct{}), wake: make(chan struct{}, 1)}
	b.funcs = []js.Func{
		js.FuncOf(func(js.Value, []js.Value) any { close(b.ready); return nil }),
		js.FuncOf(func(_ js.Value, args []js.Value) any {
			var p []byte
			if d := args[0].Get("data"); d.Type() == js.TypeString {
				p = []byte(d.String())
			} else {
				a := js.Global().Get("Uint8Array").New(d)
				p = make([]byte, a.Get("length").Int())
				js.CopyBytesToGo(p, a)
			}
			b.push(p, nil)
			return nil
		}),
		js.FuncOf(func(_ js.Value, args []js.Value) any {
			code := args[0].Get("code").Int()
			b.push(nil, fmt.Errorf("%w (code %d)", ErrSyncClosed, code))
			return nil
		}),
	}
	ws.Set("onopen", b.funcs[0])
	ws.Set("onmessage", b.funcs[1])
	ws.Set("onclose", b.funcs[2])
	select {
	case <-b.ready:
		return b, ws.Get("protocol").String(), nil
	case <-b.wake:
		b.close()
		return nil, "", fmt.Errorf("open sync: %w", b.err)
	case <-ctx.Done():
		b.close()
		return nil, "", ctx.Err()
	}
}

type browserConn struct {
	ws    js.Value
	funcs []js.Func
	ready chan struct{}
	wake  chan struct{}

	mu       sync.Mutex
	queue    [][]byte
	err      error
	deadline time.Time
}

func (b *browserConn) push(p []byte, err error) {
	b.mu.Lock()
	switch {
	case b.err != nil:
	case err != nil:
		b.err = err
	case len(b.queue) >= maxQueuedFrames:
		b.err = errors.New("sync: reader too slow")
		b.ws.Call("close")
	default:
		b.queue = append(b.queue, p)
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *browserConn) readMessage(buf *bytes.Buffer) error {
	for {
		b.mu.Lock()
		if len(b.queue) > 0 {
			p := b.queue[0]
			b.queue = b.queue[1:]
			b.mu.Unlock()
			buf.Write(p)
			return nil
		}
		err, deadline := b.err, b.deadline
		b.mu.Unlock()
		if err != nil {
			return err
		}
		var timeout <-chan time.Time
		var t *time.Timer
		if !deadline.IsZero() {
			t = time.NewTimer(time.Until(deadline))
			timeout = t.C
		}
		select {
		case <-b.wake:
		case <-timeout:
			return errors.New("sync: read deadline exceeded")
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (b *browserConn) writeJSON(v any) error {
	p, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.ws.Call("send", string(p))
	return nil
}

func (b *browserConn) setReadDeadline(t time.Time) error {
	b.mu.Lock()
	b.deadline = t
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return nil
}

func (b *browserConn) close() error {
	b.mu.Lock()
	funcs := b.funcs
	b.funcs = nil
	b.mu.Unlock()
	if funcs == nil {
		return nil
	}
	for _, h := range []string{"onopen", "onmessage", "onclose"} {
		b.ws.Set(h, js.Null())
	}
	b.ws.Call("close", 1000)
	for _, f := range funcs {
		f.Release()
	}
	b.push(nil, ErrSyncClosed)
	return nil
}
