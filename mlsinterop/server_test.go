package mlsinterop_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/mlsinterop"
	pb "github.com/medicus-health/medicus/mlsinterop/mlsclientpb"
	"github.com/medicus-health/medicus/mlsinterop/scenario"
)

// startServer serves a Server on a loopback port until the test ends and
// returns a client connected to it.
func startServer(t *testing.T) pb.MLSClientClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mlsinterop.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return pb.NewMLSClientClient(conn)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// assign gives the script's actors alternately to the clients, starting
// with clients[first].
func assign(s scenario.Script, clients []*scenario.Client, first int) map[string]*scenario.Client {
	m := map[string]*scenario.Client{}
	for i, a := range s.Actors() {
		m[a] = clients[(i+first)%len(clients)]
	}
	return m
}

// TestScenariosTwoServers runs every scenario family between two in-process
// servers in suite 0x0001, with public and encrypted handshakes and both
// assignments of actors; the end-to-end test in test/ covers every suite
// against the real binary.
func TestScenariosTwoServers(t *testing.T) {
	ctx := testCtx(t)
	var clients []*scenario.Client
	for range 2 {
		c, err := scenario.Connect(ctx, startServer(t))
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	if clients[0].Name != mlsinterop.Name || len(clients[0].Supported) != len(mls.SupportedCipherSuites()) {
		t.Fatalf("name %q suites %v", clients[0].Name, clients[0].Supported)
	}
	for _, f := range scenario.Scenarios() {
		names := make([]string, 0, len(f.Scripts))
		for n := range f.Scripts {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for _, encrypt := range []bool{false, true} {
				for first := range 2 {
					t.Run(fmt.Sprintf("%s/%s/encrypt=%v/first=%d", f.Name, n, encrypt, first), func(t *testing.T) {
						s := f.Scripts[n]
						if step, err := scenario.Run(ctx, s, assign(s, clients, first), 1, encrypt); err != nil {
							t.Fatalf("failed at step %d: %v", step, err)
						}
					})
				}
			}
		}
	}
	t.Run("deep_random/small", func(t *testing.T) {
		p := scenario.DeepRandomParams{InitialSize: 8, MaxSize: 16, Commits: 12, PExternal: 0.2, PResync: 0.5,
			MaxAdds: 4, MaxFracUpdates: 0.4, MaxFracRemovals: 0.4}
		s := scenario.DeepRandom(p, 1)
		if step, err := scenario.Run(ctx, s, assign(s, clients, 0), 1, true); err != nil {
			t.Fatalf("failed at step %d: %v", step, err)
		}
	})
}

// TestServerRefusesBadRequests checks stable gRPC codes for bad handles,
// suites and messages.
func TestServerRefusesBadRequests(t *testing.T) {
	ctx := testCtx(t)
	c := startServer(t)
	code := func(err error) codes.Code { return status.Code(err) }
	if _, err := c.Protect(ctx, &pb.ProtectRequest{StateId: 42}); code(err) != codes.NotFound {
		t.Fatalf("protect with an unknown state: %v", err)
	}
	if _, err := c.CreateGroup(ctx, &pb.CreateGroupRequest{CipherSuite: 0x10000, GroupId: []byte("g")}); code(err) != codes.InvalidArgument {
		t.Fatalf("create group with suite 0x10000: %v", err)
	}
	if _, err := c.CreateKeyPackage(ctx, &pb.CreateKeyPackageRequest{CipherSuite: 0x00ff}); code(err) != codes.InvalidArgument {
		t.Fatalf("key package of an unknown suite: %v", err)
	}
	g, err := c.CreateGroup(ctx, &pb.CreateGroupRequest{CipherSuite: 1, GroupId: []byte("g"), Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.HandleCommit(ctx, &pb.HandleCommitRequest{StateId: g.GetStateId(), Commit: []byte{0, 1, 0, 1, 9}}); code(err) != codes.InvalidArgument {
		t.Fatalf("garbage commit: %v", err)
	}
	if _, err := c.HandlePendingCommit(ctx, &pb.HandlePendingCommitRequest{StateId: g.GetStateId()}); code(err) != codes.FailedPrecondition {
		t.Fatalf("no pending commit: %v", err)
	}
	if _, err := c.RemoveProposal(ctx, &pb.RemoveProposalRequest{StateId: g.GetStateId(), RemovedId: []byte("nobody")}); code(err) != codes.NotFound {
		t.Fatalf("remove a non-member: %v", err)
	}
	if _, err := c.Export(ctx, &pb.ExportRequest{StateId: g.GetStateId(), KeyLength: 1 << 20}); code(err) != codes.InvalidArgument {
		t.Fatalf("export of 1 MiB: %v", err)
	}
	if _, err := c.Commit(ctx, &pb.CommitRequest{StateId: g.GetStateId(), ByValue: []*pb.ProposalDescription{{ProposalType: []byte("bogus")}}}); code(err) != codes.InvalidArgument {
		t.Fatalf("unknown proposal type: %v", err)
	}
	if _, err := c.Free(ctx, &pb.FreeRequest{StateId: g.GetStateId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StateAuth(ctx, &pb.StateAuthRequest{StateId: g.GetStateId()}); code(err) != codes.NotFound {
		t.Fatalf("state after Free: %v", err)
	}
}

// TestKeyPackagePrivatesMakeAPassiveClient checks what the runner's
// passive-client conversion relies on: the private keys CreateKeyPackage
// returns let another implementation (here crypto/mls directly) join from
// the Welcome and follow the group's commits.
func TestKeyPackagePrivatesMakeAPassiveClient(t *testing.T) {
	ctx := testCtx(t)
	c := startServer(t)
	for _, suite := range mls.SupportedCipherSuites() {
		t.Run(fmt.Sprintf("%#04x", uint16(suite)), func(t *testing.T) {
			g, err := c.CreateGroup(ctx, &pb.CreateGroupRequest{CipherSuite: uint32(suite), GroupId: []byte("g"), Identity: []byte("alice"), EncryptHandshake: true})
			if err != nil {
				t.Fatal(err)
			}
			kp, err := c.CreateKeyPackage(ctx, &pb.CreateKeyPackageRequest{CipherSuite: uint32(suite), Identity: []byte("bob")})
			if err != nil {
				t.Fatal(err)
			}
			commit, err := c.Commit(ctx, &pb.CommitRequest{StateId: g.GetStateId(), ByValue: []*pb.ProposalDescription{{ProposalType: []byte("add"), KeyPackage: kp.GetKeyPackage()}}})
			if err != nil {
				t.Fatal(err)
			}
			merged, err := c.HandlePendingCommit(ctx, &pb.HandlePendingCommitRequest{StateId: g.GetStateId()})
			if err != nil {
				t.Fatal(err)
			}
			priv := &mls.KeyPackagePrivate{InitKey: kp.GetInitPriv(), EncryptionKey: kp.GetEncryptionPriv(), SignatureKey: kp.GetSignaturePriv()}
			passive, err := mls.JoinFromWelcome(nil, commit.GetWelcome(), kp.GetKeyPackage(), priv, nil)
			if err != nil {
				t.Fatalf("passive join: %v", err)
			}
			if !bytes.Equal(passive.EpochAuthenticator(), merged.GetEpochAuthenticator()) {
				t.Fatal("passive client disagrees after joining")
			}
			next, err := c.Commit(ctx, &pb.CommitRequest{StateId: g.GetStateId(), ForcePath: true})
			if err != nil {
				t.Fatal(err)
			}
			merged, err = c.HandlePendingCommit(ctx, &pb.HandlePendingCommitRequest{StateId: g.GetStateId()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := passive.ProcessMessage(next.GetCommit()); err != nil {
				t.Fatalf("passive client processes the commit: %v", err)
			}
			if !bytes.Equal(passive.EpochAuthenticator(), merged.GetEpochAuthenticator()) {
				t.Fatal("passive client disagrees after a commit")
			}
		})
	}
}
