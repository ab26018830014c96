package mlsinterop

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medicus-health/medicus/crypto/mls"
	pb "github.com/medicus-health/medicus/mlsinterop/mlsclientpb"
)

// ---- reinitialization (RFC 9420 §11.2) ----

// ReInitCommit commits a ReInit proposal (by reference).
func (s *Server) ReInitCommit(ctx context.Context, r *pb.CommitRequest) (*pb.CommitResponse, error) {
	return s.Commit(ctx, r)
}

// HandlePendingReInitCommit applies the own ReInit commit and prepares a
// KeyPackage for the new group.
func (s *Server) HandlePendingReInitCommit(_ context.Context, r *pb.HandlePendingCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.mergePending(r.GetStateId())
	if err != nil {
		return nil, err
	}
	return s.startReInit(m)
}

// HandleReInitCommit applies another member's ReInit commit and prepares a
// KeyPackage for the new group.
func (s *Server) HandleReInitCommit(_ context.Context, r *pb.HandleCommitRequest) (*pb.HandleReInitCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.handleCommit(r)
	if err != nil {
		return nil, err
	}
	return s.startReInit(m)
}

// startReInit makes the member's KeyPackage for the group that replaces its
// reinitialized one: the ReInit's cipher suite, the same credential, a new
// signature key.
func (s *Server) startReInit(m *member) (*pb.HandleReInitCommitResponse, error) {
	ri := m.group.ReInit()
	if ri == nil {
		return nil, status.Error(codes.FailedPrecondition, "the commit did not reinitialize the group")
	}
	own := m.group.Members()
	var cred mls.Credential
	for _, mb := range own {
		if mb.LeafIndex == m.group.LeafIndex() {
			cred = mb.Credential
		}
	}
	tx, err := newKeyPackage(ri.CipherSuite, cred)
	if err != nil {
		return nil, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	s.reinits[id] = &reinit{old: m, tx: tx}
	return &pb.HandleReInitCommitResponse{ReinitId: id, KeyPackage: tx.keyPackage, EpochAuthenticator: m.group.EpochAuthenticator()}, nil
}

func (s *Server) reinit(id uint32) (*reinit, error) {
	ri, ok := s.reinits[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no reinit %d", id)
	}
	return ri, nil
}

// ReInitWelcome creates the new group with the other members' KeyPackages.
func (s *Server) ReInitWelcome(_ context.Context, r *pb.ReInitWelcomeRequest) (*pb.CreateSubgroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ri, err := s.reinit(r.GetReinitId())
	if err != nil {
		return nil, err
	}
	opts := &mls.CommitOptions{ForcePath: r.GetForcePath(), InlineTree: !r.GetExternalTree(), Private: ri.old.encrypt}
	ng, out, err := ri.old.group.ReInitGroupWithKey(ri.tx.priv.SignatureKey, r.GetKeyPackage(), opts)
	if err != nil {
		return nil, mlsError("reinit welcome", err)
	}
	resp, err := s.startSubgroup(ri.old, ng, out, r.GetExternalTree())
	if err != nil {
		return nil, err
	}
	delete(s.reinits, r.GetReinitId())
	return resp, nil
}

// HandleReInitWelcome joins the new group from its Welcome.
func (s *Server) HandleReInitWelcome(_ context.Context, r *pb.HandleReInitWelcomeRequest) (*pb.JoinGroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ri, err := s.reinit(r.GetReinitId())
	if err != nil {
		return nil, err
	}
	g, err := mls.JoinReInit(ri.old.cfg, ri.old.group, r.GetWelcome(), ri.tx.keyPackage, ri.tx.priv, optionalTree(r.GetRatchetTree()))
	if err != nil {
		return nil, mlsError("join reinitialized group", err)
	}
	id, err := s.addState(ri.old.successor(g))
	if err != nil {
		return nil, err
	}
	delete(s.reinits, r.GetReinitId())
	return &pb.JoinGroupResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

// startSubgroup merges the first commit of a group that resumes old's and
// registers its state.
func (s *Server) startSubgroup(old *member, ng *mls.Group, out *mls.CommitOutput, externalTree bool) (*pb.CreateSubgroupResponse, error) {
	if err := ng.MergePendingCommit(); err != nil {
		return nil, mlsError("new group", err)
	}
	resp := &pb.CreateSubgroupResponse{Welcome: out.Welcome, EpochAuthenticator: ng.EpochAuthenticator()}
	if externalTree {
		var err error
		if resp.RatchetTree, err = ng.RatchetTree(); err != nil {
			return nil, mlsError("new group", err)
		}
	}
	id, err := s.addState(old.successor(ng))
	if err != nil {
		return nil, err
	}
	resp.StateId = id
	return resp, nil
}

// ---- branching (RFC 9420 §11.3) ----

// CreateBranch creates a subgroup with the given members' new KeyPackages.
func (s *Server) CreateBranch(_ context.Context, r *pb.CreateBranchRequest) (*pb.CreateSubgroupResponse, error) {
	exts, err := extensions(r.GetExtensions())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	opts := &mls.CommitOptions{ForcePath: r.GetForcePath(), InlineTree: !r.GetExternalTree(), Private: m.encrypt}
	ng, out, err := m.group.Branch(r.GetGroupId(), exts, r.GetKeyPackages(), opts)
	if err != nil {
		return nil, mlsError("branch", err)
	}
	return s.startSubgroup(m, ng, out, r.GetExternalTree())
}

// HandleBranch joins a subgroup of the member's group with a transaction's
// KeyPackage.
func (s *Server) HandleBranch(_ context.Context, r *pb.HandleBranchRequest) (*pb.HandleBranchResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	tx, err := s.tx(r.GetTransactionId())
	if err != nil {
		return nil, err
	}
	g, err := mls.JoinBranch(m.cfg, m.group, r.GetWelcome(), tx.keyPackage, tx.priv, optionalTree(r.GetRatchetTree()))
	if err != nil {
		return nil, mlsError("join branch", err)
	}
	delete(s.txs, r.GetTransactionId())
	id, err := s.addState(m.successor(g))
	if err != nil {
		return nil, err
	}
	return &pb.HandleBranchResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, nil
}
