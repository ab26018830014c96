// Package mlsinterop serves crypto/mls over the MLS working group's
// interoperability protocol: the gRPC service mls_client.MLSClient that the
// test-runner of mlswg/mls-implementations drives through its scenarios
// (welcome_join, application, commit, external_join, external_proposals,
// reinit, branch, deep_random) against any set of implementations.
//
// A Server keeps the test-runner's handles — group states, transactions
// (KeyPackages awaiting a Welcome), external signers and reinitializations —
// in memory. It lives outside crypto/ so that the RFC 9420 package keeps
// depending on the standard library and circl only; nothing of medicus
// imports it except the command `medicus mls interop-server`.
package mlsinterop

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medicus-health/medicus/crypto/mls"
	pb "github.com/medicus-health/medicus/mlsinterop/mlsclientpb"
)

// Name is what the Name RPC reports.
const Name = "medicus crypto/mls"

// Limits on what the test-runner can make a Server hold.
const (
	// MaxHandles bounds the live handles of all kinds.
	MaxHandles = 1 << 18
	// MaxMessageSize bounds a gRPC message (a Welcome with the ratchet tree
	// of a few thousand members).
	MaxMessageSize = 16 << 20
	// pastEpochs is how many past epochs' application keys each group
	// keeps, for the runner's out-of-order-across-epochs scenario
	// (RFC 9420 §15.3).
	pastEpochs = 4
	// maxExportLength bounds Export's key_length.
	maxExportLength = 1 << 16
)

// Server implements mls_client.MLSClient with crypto/mls. It is safe for
// concurrent use; RPCs are served one at a time.
type Server struct {
	pb.UnimplementedMLSClientServer

	mu      sync.Mutex
	next    uint32 // the last handle issued; handles of all kinds share it
	states  map[uint32]*member
	txs     map[uint32]*transaction
	signers map[uint32]*signer
	reinits map[uint32]*reinit
}

// NewServer returns a Server with no handles.
func NewServer() *Server {
	return &Server{states: map[uint32]*member{}, txs: map[uint32]*transaction{}, signers: map[uint32]*signer{}, reinits: map[uint32]*reinit{}}
}

// Serve serves the MLSClient service on lis until ctx is done, then stops
// gracefully and returns nil; it returns the listener's error otherwise.
func Serve(ctx context.Context, lis net.Listener) error {
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize))
	pb.RegisterMLSClientServer(gs, NewServer())
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			gs.GracefulStop()
		case <-done:
		}
	}()
	err := gs.Serve(lis)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// member is one client's state in one group.
type member struct {
	group   *mls.Group
	encrypt bool // handshake messages as PrivateMessage
	cfg     *mls.Config
	psks    map[string][]byte // external PSKs by id
	// sent holds the handshake messages this member sent in the current
	// epoch: the runner hands them back in proposal lists, and a member
	// cannot decrypt its own PrivateMessages.
	sent map[string]bool
}

func newMember(psks map[string][]byte, encrypt bool) *member {
	if psks == nil {
		psks = map[string][]byte{}
	}
	m := &member{encrypt: encrypt, psks: psks, sent: map[string]bool{}}
	m.cfg = &mls.Config{
		ExternalPSK: func(id []byte) ([]byte, bool) { s, ok := m.psks[string(id)]; return s, ok },
		PastEpochs:  pastEpochs,
	}
	return m
}

// successor is a member of a group that resumes m's (branch, reinit): the
// same client, so the same PSK store and handshake mode.
func (m *member) successor(g *mls.Group) *member {
	return &member{group: g, encrypt: m.encrypt, cfg: m.cfg, psks: m.psks, sent: map[string]bool{}}
}

// transaction is a KeyPackage awaiting a Welcome.
type transaction struct {
	keyPackage []byte
	priv       *mls.KeyPackagePrivate
	psks       map[string][]byte
}

// signer is an external sender (RFC 9420 §12.1.8.1).
type signer struct {
	suite mls.CipherSuite
	priv  []byte
	pub   []byte
}

// reinit is a member of a reinitialized group with its KeyPackage for the
// new group (RFC 9420 §11.2).
type reinit struct {
	old *member
	tx  *transaction
}

// ---- handles ----

var errTooManyHandles = status.Error(codes.ResourceExhausted, "too many live handles; Free some")

func (s *Server) handles() int { return len(s.states) + len(s.txs) + len(s.signers) + len(s.reinits) }

// newID issues a handle; ids are never zero and never reused.
func (s *Server) newID() (uint32, error) {
	if s.handles() >= MaxHandles {
		return 0, errTooManyHandles
	}
	s.next++
	return s.next, nil
}

func (s *Server) addState(m *member) (uint32, error) {
	id, err := s.newID()
	if err != nil {
		return 0, err
	}
	s.states[id] = m
	return id, nil
}

func (s *Server) addTx(tx *transaction) (uint32, error) {
	id, err := s.newID()
	if err != nil {
		return 0, err
	}
	s.txs[id] = tx
	return id, nil
}

func (s *Server) state(id uint32) (*member, error) {
	m, ok := s.states[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no group state %d", id)
	}
	return m, nil
}

func (s *Server) tx(id uint32) (*transaction, error) {
	t, ok := s.txs[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no transaction %d", id)
	}
	return t, nil
}

// mlsError maps an error of crypto/mls to a gRPC status.
func mlsError(op string, err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, mls.ErrInvalidMessage), errors.Is(err, mls.ErrInvalidCommit), errors.Is(err, mls.ErrInvalidProposal),
		errors.Is(err, mls.ErrInvalidWelcome), errors.Is(err, mls.ErrWrongGroup):
		code = codes.InvalidArgument
	case errors.Is(err, mls.ErrWrongEpoch), errors.Is(err, mls.ErrNotMember), errors.Is(err, mls.ErrNoPendingCommit):
		code = codes.FailedPrecondition
	case errors.Is(err, mls.ErrUnknownPSK):
		code = codes.NotFound
	}
	slog.Debug("mls interop: rpc failed", "op", op, "code", code.String())
	return status.Errorf(code, "%s: %v", op, err)
}

func suiteOf(v uint32) (mls.CipherSuite, error) {
	if v == 0 || v > 0xffff {
		return 0, status.Errorf(codes.InvalidArgument, "cipher suite %d", v)
	}
	return mls.CipherSuite(v), nil
}

func basic(identity []byte) mls.Credential {
	return mls.Credential{CredentialType: mls.CredentialBasic, Identity: bytes.Clone(identity)}
}

func extensions(es []*pb.Extension) ([]mls.Extension, error) {
	out := make([]mls.Extension, 0, len(es))
	for _, e := range es {
		if e.GetExtensionType() > 0xffff {
			return nil, status.Errorf(codes.InvalidArgument, "extension type %d", e.GetExtensionType())
		}
		out = append(out, mls.Extension{ExtensionType: mls.ExtensionType(e.GetExtensionType()), ExtensionData: bytes.Clone(e.GetExtensionData())})
	}
	return out, nil
}

// optionalTree maps the protocol's empty bytes to "no tree".
func optionalTree(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// leafOf finds the leaf of the member whose basic identity is identity.
func leafOf(members []mls.Member, identity []byte) (uint32, error) {
	for _, m := range members {
		if bytes.Equal(m.Credential.Identity, identity) {
			return m.LeafIndex, nil
		}
	}
	return 0, status.Errorf(codes.NotFound, "no member %q", identity)
}

// newKeyPackage makes a KeyPackage with a basic credential and a fresh
// signature key.
func newKeyPackage(suite mls.CipherSuite, cred mls.Credential) (*transaction, error) {
	sig, _, err := mls.GenerateSignatureKey(suite)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "signature key: %v", err)
	}
	kp, priv, err := mls.NewKeyPackage(suite, cred, sig, nil)
	if err != nil {
		return nil, mlsError("key package", err)
	}
	return &transaction{keyPackage: kp, priv: priv, psks: map[string][]byte{}}, nil
}

// ---- RPCs: the implementation ----

// Name reports the implementation's name.
func (s *Server) Name(context.Context, *pb.NameRequest) (*pb.NameResponse, error) {
	return &pb.NameResponse{Name: Name}, nil
}

// SupportedCiphersuites lists crypto/mls's cipher suites.
func (s *Server) SupportedCiphersuites(context.Context, *pb.SupportedCiphersuitesRequest) (*pb.SupportedCiphersuitesResponse, error) {
	r := &pb.SupportedCiphersuitesResponse{}
	for _, cs := range mls.SupportedCipherSuites() {
		r.Ciphersuites = append(r.Ciphersuites, uint32(cs))
	}
	return r, nil
}

// Free releases a handle of any kind.
func (s *Server) Free(_ context.Context, r *pb.FreeRequest) (*pb.FreeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.GetStateId()
	delete(s.states, id)
	delete(s.txs, id)
	delete(s.signers, id)
	delete(s.reinits, id)
	return &pb.FreeResponse{}, nil
}

// StorePSK stores an external PSK at a group state or a transaction.
func (s *Server) StorePSK(_ context.Context, r *pb.StorePSKRequest) (*pb.StorePSKResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := r.GetStateOrTransactionId()
	var store map[string][]byte
	if m, ok := s.states[id]; ok {
		store = m.psks
	} else if t, ok := s.txs[id]; ok {
		store = t.psks
	} else {
		return nil, status.Errorf(codes.NotFound, "no state or transaction %d", id)
	}
	if len(store) >= 1<<12 {
		return nil, status.Error(codes.ResourceExhausted, "too many PSKs")
	}
	store[string(r.GetPskId())] = bytes.Clone(r.GetPskSecret())
	return &pb.StorePSKResponse{}, nil
}
