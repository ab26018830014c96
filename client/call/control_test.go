package call

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestControlSocketHangsUp: another process of the profile ends a running
// call through the control socket.
func TestControlSocketHangsUp(t *testing.T) {
	n := newTestNetwork(t)
	a := n.addDevice(alice, "A1", nil)
	b := n.addDevice(bob, "B1", nil)
	out, _ := connect(t, a, b, bob)
	// Unix socket paths are short; t.TempDir can be too long.
	dir, err := os.MkdirTemp("", "mdc")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "call.sock")
	ctl, err := ListenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ListenControl(path); err == nil {
		t.Fatal("a second process took over a live control socket")
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ctl.Serve(ctx, a.sb) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()

	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	ended, err := RequestHangup(rctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ended, []string{out.ID()}) {
		t.Fatalf("ended %v, want [%s]", ended, out.ID())
	}
	expectEnd(t, b, out.ID(), ReasonUserHangup, true)
	if _, err := RequestHangup(rctx, path, out.ID()); err == nil {
		t.Fatal("hanging up an ended call succeeded")
	}
	// Garbage on the socket gets an error reply, not a crash.
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("{\"op\":\"reboot\"}\n"))
	buf := make([]byte, 256)
	k, _ := conn.Read(buf)
	conn.Close()
	if !slices.Contains([]string{`{"error":"unknown request"}` + "\n"}, string(buf[:k])) {
		t.Fatalf("reply %q", buf[:k])
	}
	if _, err := RequestHangup(rctx, filepath.Join(dir, "none.sock"), ""); !errors.Is(err, ErrNoControl) {
		t.Fatalf("no server: %v", err)
	}
}
