package call

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// The control socket lets one `medicus client` process end the calls that
// another process of the same profile is running: `medicus client call` and
// `answer` serve it (ListenControl, Control.Serve) while they run, and `medicus client
// hangup` asks it (RequestHangup). It is a Unix socket in the profile
// directory, readable by its owner only; each connection carries one JSON
// request line and one JSON reply line.

// maxControlLine bounds a request or reply line on the control socket.
const maxControlLine = 4 << 10

type controlRequest struct {
	Op     string `json:"op"` // "hangup"
	CallID string `json:"call_id,omitempty"`
}

type controlReply struct {
	Ended []string `json:"ended,omitempty"`
	Error string   `json:"error,omitempty"`
}

// ErrNoControl is returned by RequestHangup when no process serves the
// control socket.
var ErrNoControl = errors.New("call: no call running on this profile")

// Control is a listening control socket.
type Control struct {
	l    net.Listener
	path string
}

// ListenControl creates the control socket at path (owner-only). A stale
// socket file from a process that is gone is replaced; a live one makes it
// fail.
func ListenControl(path string) (*Control, error) {
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another call process is running", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Control{l: l, path: path}, nil
}

// Serve answers requests until ctx is done, then removes the socket. A
// hangup request ends the call it names (or every active call of sb if it
// names none) with user_hangup.
func (c *Control) Serve(ctx context.Context, sb *Switchboard) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { c.l.Close() })
	defer stop()
	defer os.Remove(c.path)
	for {
		conn, err := c.l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("control socket: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(sendTimeout))
			reply := serveControl(ctx, sb, conn)
			b, _ := json.Marshal(reply)
			conn.Write(append(b, '\n'))
		}()
	}
}

func serveControl(ctx context.Context, sb *Switchboard, conn io.Reader) controlReply {
	line, err := bufio.NewReader(io.LimitReader(conn, maxControlLine)).ReadBytes('\n')
	if err != nil {
		return controlReply{Error: "request must be one line of JSON"}
	}
	var req controlRequest
	if err := json.Unmarshal(line, &req); err != nil || req.Op != "hangup" || (req.CallID != "" && !ValidID(req.CallID)) {
		return controlReply{Error: "unknown request"}
	}
	var ended []string
	for _, c := range sb.Calls(ctx) {
		if c.State() == StateEnded || (req.CallID != "" && c.ID() != req.CallID) {
			continue
		}
		if err := sb.Hangup(ctx, c.ID(), ReasonUserHangup); err == nil {
			ended = append(ended, c.ID())
		}
	}
	if req.CallID != "" && len(ended) == 0 {
		return controlReply{Error: fmt.Sprintf("no active call %s", req.CallID)}
	}
	return controlReply{Ended: ended}
}

// RequestHangup asks the process serving the control socket at path to hang
// up call callID (every active call if empty) and returns the ids of the
// calls it ended. It returns ErrNoControl if no process serves the socket.
func RequestHangup(ctx context.Context, path, callID string) ([]string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNoControl, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	b, _ := json.Marshal(controlRequest{Op: "hangup", CallID: callID})
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	line, err := bufio.NewReader(io.LimitReader(conn, maxControlLine)).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var reply controlReply
	if err := json.Unmarshal(line, &reply); err != nil {
		return nil, fmt.Errorf("control socket: malformed reply")
	}
	if reply.Error != "" {
		return nil, fmt.Errorf("hang up: %s", reply.Error)
	}
	return reply.Ended, nil
}
