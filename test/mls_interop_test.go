package test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/medicus-health/medicus/mlsinterop/mlsclientpb"
	"github.com/medicus-health/medicus/mlsinterop/scenario"
)

// interopServer is a `medicus mls interop-server` child process.
type interopServer struct {
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
	stderr *bytes.Buffer
}

// startInteropServer runs `medicus mls interop-server --port 0` and waits
// for the address it prints.
func startInteropServer(t *testing.T) *interopServer {
	t.Helper()
	s := &interopServer{cmd: exec.Command(medicusBin, "mls", "interop-server", "--port", "0"), exited: make(chan struct{}), stderr: &bytes.Buffer{}}
	s.cmd.Stderr = s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() { // drain until the process exits
		}
		s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			if code := s.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("interop server exited with %d: %s", code, s.stderr)
			}
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
			t.Errorf("interop server did not stop within 30s of SIGTERM")
		}
	})
	select {
	case line, ok := <-lines:
		const prefix = "mls interop server listening on "
		if !ok || !strings.HasPrefix(line, prefix) {
			t.Fatalf("interop server said %q: %s", line, s.stderr)
		}
		s.addr = strings.TrimPrefix(line, prefix)
	case <-time.After(60 * time.Second):
		t.Fatalf("interop server printed no address within 60s: %s", s.stderr)
	}
	return s
}

// interopResults collects pass/fail counts per scenario and suite for the
// summary table.
type interopResults struct {
	mu     sync.Mutex
	counts map[string]map[uint32][2]int // scenario → suite → {passed, failed}
}

func (r *interopResults) add(name string, suite uint32, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts[name] == nil {
		r.counts[name] = map[uint32][2]int{}
	}
	c := r.counts[name][suite]
	if ok {
		c[0]++
	} else {
		c[1]++
	}
	r.counts[name][suite] = c
}

func (r *interopResults) table(suites []uint32) string {
	var b strings.Builder
	b.WriteString("| scenario |")
	for _, s := range suites {
		fmt.Fprintf(&b, " %#04x |", s)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(suites)) + "\n")
	names := make([]string, 0, len(r.counts))
	for n := range r.counts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "| %s |", n)
		for _, s := range suites {
			c := r.counts[n][s]
			fmt.Fprintf(&b, " %d/%d |", c[0], c[0]+c[1])
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestMLSInteropScenarios pairs two `medicus mls interop-server` processes
// and drives them, over the interop gRPC protocol, through every scenario
// of the MLS working group's test-runner (welcome_join, application,
// commit, external_join, external_proposals, reinit, branch, deep_random)
// in every cipher suite they support, with actors assigned alternately to
// the two servers, so every scenario crosses process boundaries. Each
// (scenario, suite) runs once, with public or encrypted handshake messages
// and which server takes the first actor alternating across the matrix;
// MEDICUS_MLS_INTEROP_FULL=1 runs all four combinations each, and
// MEDICUS_MLS_INTEROP_DEEP=official the runner's deep_random size (100–200
// members, 100 commits) instead of a reduced session. The summary table is
// logged (go test -v).
func TestMLSInteropScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	var clients []*scenario.Client
	for range 2 {
		srv := startInteropServer(t)
		conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c, err := scenario.Connect(ctx, pb.NewMLSClientClient(conn))
		if err != nil {
			t.Fatalf("connect to %s: %v", srv.addr, err)
		}
		clients = append(clients, c)
	}
	suites := slices.Clone(clients[0].Supported)
	slices.Sort(suites)
	if len(suites) < 7 {
		t.Fatalf("the interop server supports only %v", suites)
	}
	full := os.Getenv("MEDICUS_MLS_INTEROP_FULL") != ""
	res := &interopResults{counts: map[string]map[uint32][2]int{}}
	assign := func(s scenario.Script, first int) map[string]*scenario.Client {
		m := map[string]*scenario.Client{}
		for i, a := range s.Actors() {
			m[a] = clients[(i+first)%2]
		}
		return m
	}
	runOne := func(t *testing.T, name string, s scenario.Script, suite uint32, encrypt bool, first int) {
		step, err := scenario.Run(ctx, s, assign(s, first), suite, encrypt)
		res.add(name, suite, err == nil)
		if err != nil {
			t.Errorf("%s suite %#04x encrypt=%v first=%d: failed at step %d: %v", name, suite, encrypt, first, step, err)
		}
	}
	for _, f := range scenario.Scenarios() {
		t.Run(f.Name, func(t *testing.T) {
			names := make([]string, 0, len(f.Scripts))
			for n := range f.Scripts {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, suite := range suites {
				for _, n := range names {
					for k := range 4 {
						encrypt, first := k%2 == 1, k/2
						if !full && k != (int(suite)+len(n))%4 {
							continue
						}
						runOne(t, f.Name+"/"+n, f.Scripts[n], suite, encrypt, first)
					}
				}
			}
		})
	}
	t.Run("deep_random", func(t *testing.T) {
		p := scenario.DeepRandomParams{InitialSize: 8, MaxSize: 14, Commits: 10, PExternal: 0.2, PResync: 0.5,
			MaxAdds: 3, MaxFracUpdates: 0.4, MaxFracRemovals: 0.4}
		if os.Getenv("MEDICUS_MLS_INTEROP_DEEP") == "official" {
			p = scenario.OfficialDeepRandom
		}
		for i, suite := range suites {
			s := scenario.DeepRandom(p, uint64(suite))
			runOne(t, "deep_random/random", s, suite, i%2 == 1, i%2)
		}
	})
	t.Logf("scenario runs passed per cipher suite:\n%s", res.table(suites))
}
