package mlsinterop

import (
	"bytes"
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medicus-health/medicus/crypto/mls"
	pb "github.com/medicus-health/medicus/mlsinterop/mlsclientpb"
)

// ---- becoming a member ----

// CreateGroup creates a one-member group with a basic credential.
func (s *Server) CreateGroup(_ context.Context, r *pb.CreateGroupRequest) (*pb.CreateGroupResponse, error) {
	suite, err := suiteOf(r.GetCipherSuite())
	if err != nil {
		return nil, err
	}
	sig, _, err := mls.GenerateSignatureKey(suite)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "signature key: %v", err)
	}
	m := newMember(nil, r.GetEncryptHandshake())
	if m.group, err = mls.CreateGroup(m.cfg, r.GetGroupId(), suite, basic(r.GetIdentity()), sig, nil); err != nil {
		return nil, mlsError("create group", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.addState(m)
	if err != nil {
		return nil, err
	}
	return &pb.CreateGroupResponse{StateId: id}, nil
}

// CreateKeyPackage creates a KeyPackage and returns its private keys too
// (for passive-client test vectors).
func (s *Server) CreateKeyPackage(_ context.Context, r *pb.CreateKeyPackageRequest) (*pb.CreateKeyPackageResponse, error) {
	suite, err := suiteOf(r.GetCipherSuite())
	if err != nil {
		return nil, err
	}
	tx, err := newKeyPackage(suite, basic(r.GetIdentity()))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.addTx(tx)
	if err != nil {
		return nil, err
	}
	return &pb.CreateKeyPackageResponse{TransactionId: id, KeyPackage: tx.keyPackage,
		InitPriv: tx.priv.InitKey, EncryptionPriv: tx.priv.EncryptionKey, SignaturePriv: tx.priv.SignatureKey}, nil
}

// JoinGroup joins from a Welcome with a transaction's KeyPackage; the
// transaction (and its PSKs) becomes the group state.
func (s *Server) JoinGroup(_ context.Context, r *pb.JoinGroupRequest) (*pb.JoinGroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.tx(r.GetTransactionId())
	if err != nil {
		return nil, err
	}
	m := newMember(tx.psks, r.GetEncryptHandshake())
	if m.group, err = mls.JoinFromWelcome(m.cfg, r.GetWelcome(), tx.keyPackage, tx.priv, optionalTree(r.GetRatchetTree())); err != nil {
		return nil, mlsError("join", err)
	}
	delete(s.txs, r.GetTransactionId())
	id, err := s.addState(m)
	if err != nil {
		return nil, err
	}
	return &pb.JoinGroupResponse{StateId: id, EpochAuthenticator: m.group.EpochAuthenticator()}, nil
}

// ExternalJoin joins by external commit (RFC 9420 §12.4.3.2), removing the
// joiner's old leaf if asked and injecting the given external PSKs.
func (s *Server) ExternalJoin(_ context.Context, r *pb.ExternalJoinRequest) (*pb.ExternalJoinResponse, error) {
	m := newMember(nil, r.GetEncryptHandshake())
	opts := &mls.ExternalJoinOptions{RatchetTree: optionalTree(r.GetRatchetTree())}
	for _, p := range r.GetPsks() {
		m.psks[string(p.GetPskId())] = bytes.Clone(p.GetPskSecret())
		opts.ExternalPSKs = append(opts.ExternalPSKs, p.GetPskId())
	}
	info, err := mls.InspectGroupInfo(m.cfg, r.GetGroupInfo(), opts.RatchetTree)
	if err != nil {
		return nil, mlsError("external join: group info", err)
	}
	if r.GetRemovePrior() {
		leaf, err := leafOf(info.Members, r.GetIdentity())
		if err != nil {
			return nil, err
		}
		opts.ResyncLeaf = &leaf
	}
	sig, _, err := mls.GenerateSignatureKey(info.CipherSuite)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "signature key: %v", err)
	}
	g, commit, err := mls.JoinExternal(m.cfg, r.GetGroupInfo(), basic(r.GetIdentity()), sig, opts)
	if err != nil {
		return nil, mlsError("external join", err)
	}
	m.group = g
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.addState(m)
	if err != nil {
		return nil, err
	}
	return &pb.ExternalJoinResponse{StateId: id, Commit: commit, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

// ---- using a group state ----

// GroupInfo returns a GroupInfo with external_pub, with the tree inline or
// beside it.
func (s *Server) GroupInfo(_ context.Context, r *pb.GroupInfoRequest) (*pb.GroupInfoResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	gi, err := m.group.GroupInfo(!r.GetExternalTree(), true)
	if err != nil {
		return nil, mlsError("group info", err)
	}
	resp := &pb.GroupInfoResponse{GroupInfo: gi}
	if r.GetExternalTree() {
		if resp.RatchetTree, err = m.group.RatchetTree(); err != nil {
			return nil, mlsError("ratchet tree", err)
		}
	}
	return resp, nil
}

// StateAuth returns the epoch authenticator (RFC 9420 §8.7).
func (s *Server) StateAuth(_ context.Context, r *pb.StateAuthRequest) (*pb.StateAuthResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	return &pb.StateAuthResponse{StateAuthSecret: m.group.EpochAuthenticator()}, nil
}

// Export is MLS-Exporter (RFC 9420 §8.5).
func (s *Server) Export(_ context.Context, r *pb.ExportRequest) (*pb.ExportResponse, error) {
	if r.GetKeyLength() > maxExportLength {
		return nil, status.Errorf(codes.InvalidArgument, "key length %d", r.GetKeyLength())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	out, err := m.group.Export(r.GetLabel(), r.GetContext(), int(r.GetKeyLength()))
	if err != nil {
		return nil, mlsError("export", err)
	}
	return &pb.ExportResponse{ExportedSecret: out}, nil
}

// Protect encrypts an application message.
func (s *Server) Protect(_ context.Context, r *pb.ProtectRequest) (*pb.ProtectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	ct, err := m.group.EncryptApplication(r.GetPlaintext(), r.GetAuthenticatedData())
	if err != nil {
		return nil, mlsError("protect", err)
	}
	return &pb.ProtectResponse{Ciphertext: ct}, nil
}

// Unprotect decrypts an application message, of this epoch or a recent one.
func (s *Server) Unprotect(_ context.Context, r *pb.UnprotectRequest) (*pb.UnprotectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	res, err := m.group.ProcessMessage(r.GetCiphertext())
	if err != nil {
		return nil, mlsError("unprotect", err)
	}
	if res.Kind != mls.ResultApplication {
		return nil, status.Error(codes.InvalidArgument, "unprotect: not an application message")
	}
	return &pb.UnprotectResponse{AuthenticatedData: res.AuthenticatedData, Plaintext: res.ApplicationData}, nil
}

// ---- proposals by members ----

// propose sends p by reference and remembers the message as the member's.
func (s *Server) propose(id uint32, build func(m *member) (*mls.Proposal, error)) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(id)
	if err != nil {
		return nil, err
	}
	p, err := build(m)
	if err != nil {
		return nil, err
	}
	msg, err := m.group.Propose(p, m.encrypt)
	if err != nil {
		return nil, mlsError("propose", err)
	}
	m.sent[string(msg)] = true
	return &pb.ProposalResponse{Proposal: msg}, nil
}

// AddProposal proposes adding a KeyPackage's owner.
func (s *Server) AddProposal(_ context.Context, r *pb.AddProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(r.GetStateId(), func(*member) (*mls.Proposal, error) {
		p, err := mls.AddProposal(r.GetKeyPackage())
		if err != nil {
			return nil, mlsError("add proposal", err)
		}
		return p, nil
	})
}

// UpdateProposal proposes a fresh leaf key for the member.
func (s *Server) UpdateProposal(_ context.Context, r *pb.UpdateProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	msg, err := m.group.ProposeUpdate(m.encrypt)
	if err != nil {
		return nil, mlsError("update proposal", err)
	}
	m.sent[string(msg)] = true
	return &pb.ProposalResponse{Proposal: msg}, nil
}

// RemoveProposal proposes removing the member with the given identity.
func (s *Server) RemoveProposal(_ context.Context, r *pb.RemoveProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(r.GetStateId(), func(m *member) (*mls.Proposal, error) {
		leaf, err := leafOf(m.group.Members(), r.GetRemovedId())
		if err != nil {
			return nil, err
		}
		return mls.RemoveProposal(leaf), nil
	})
}

// ExternalPSKProposal proposes injecting an external PSK.
func (s *Server) ExternalPSKProposal(_ context.Context, r *pb.ExternalPSKProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(r.GetStateId(), func(m *member) (*mls.Proposal, error) {
		return m.group.ExternalPSKProposal(r.GetPskId()), nil
	})
}

// ResumptionPSKProposal proposes injecting a past epoch's resumption PSK.
func (s *Server) ResumptionPSKProposal(_ context.Context, r *pb.ResumptionPSKProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(r.GetStateId(), func(m *member) (*mls.Proposal, error) {
		return m.group.ResumptionPSKProposal(r.GetEpochId()), nil
	})
}

// GroupContextExtensionsProposal proposes new GroupContext extensions.
func (s *Server) GroupContextExtensionsProposal(_ context.Context, r *pb.GroupContextExtensionsProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(r.GetStateId(), func(*member) (*mls.Proposal, error) {
		exts, err := extensions(r.GetExtensions())
		if err != nil {
			return nil, err
		}
		return mls.GroupContextExtensionsProposal(exts), nil
	})
}

// ReInitProposal proposes reinitializing the group.
func (s *Server) ReInitProposal(_ context.Context, r *pb.ReInitProposalRequest) (*pb.ProposalResponse, error) {
	return s.propose(r.GetStateId(), func(*member) (*mls.Proposal, error) {
		suite, err := suiteOf(r.GetCipherSuite())
		if err != nil {
			return nil, err
		}
		exts, err := extensions(r.GetExtensions())
		if err != nil {
			return nil, err
		}
		return mls.ReInitProposal(bytes.Clone(r.GetGroupId()), suite, exts), nil
	})
}

// describedProposal builds a proposal from the runner's description for
// the group of suite and groupID with the given members; g is the
// proposer's group, or nil for an external signer.
func describedProposal(d *pb.ProposalDescription, members []mls.Member, suite mls.CipherSuite, groupID []byte, g *mls.Group) (*mls.Proposal, error) {
	switch string(d.GetProposalType()) {
	case "add":
		p, err := mls.AddProposal(d.GetKeyPackage())
		if err != nil {
			return nil, mlsError("add proposal", err)
		}
		return p, nil
	case "remove":
		leaf, err := leafOf(members, d.GetRemovedId())
		if err != nil {
			return nil, err
		}
		return mls.RemoveProposal(leaf), nil
	case "externalPSK":
		if g != nil {
			return g.ExternalPSKProposal(d.GetPskId()), nil
		}
		return mls.NewExternalPSKProposal(suite, d.GetPskId())
	case "resumptionPSK":
		if g != nil {
			return g.ResumptionPSKProposal(d.GetEpochId()), nil
		}
		return mls.NewResumptionPSKProposal(suite, groupID, d.GetEpochId())
	case "groupContextExtensions":
		exts, err := extensions(d.GetExtensions())
		if err != nil {
			return nil, err
		}
		return mls.GroupContextExtensionsProposal(exts), nil
	case "reinit":
		if g != nil {
			return nil, status.Error(codes.InvalidArgument, "a member proposes reinit with ReInitProposal")
		}
		rs, err := suiteOf(d.GetCipherSuite())
		if err != nil {
			return nil, err
		}
		exts, err := extensions(d.GetExtensions())
		if err != nil {
			return nil, err
		}
		return mls.ReInitProposal(bytes.Clone(d.GetGroupId()), rs, exts), nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "unknown proposal type %q", d.GetProposalType())
}

// ---- commits ----

// absorb processes proposals handed over by the runner, skipping the
// member's own.
func (m *member) absorb(proposals [][]byte) error {
	for i, p := range proposals {
		if m.sent[string(p)] {
			continue
		}
		res, err := m.group.ProcessMessage(p)
		if err != nil {
			return mlsError("proposal", err)
		}
		if res.Kind != mls.ResultProposal {
			return status.Errorf(codes.InvalidArgument, "proposal %d is not a proposal", i)
		}
	}
	return nil
}

// Commit commits the proposals by reference and by value; the new epoch
// is pending until HandlePendingCommit.
func (s *Server) Commit(_ context.Context, r *pb.CommitRequest) (*pb.CommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	if err := m.absorb(r.GetByReference()); err != nil {
		return nil, err
	}
	opts := &mls.CommitOptions{ForcePath: r.GetForcePath(), InlineTree: !r.GetExternalTree(), Private: m.encrypt}
	for _, d := range r.GetByValue() {
		p, err := describedProposal(d, m.group.Members(), m.group.CipherSuite(), m.group.GroupID(), m.group)
		if err != nil {
			return nil, err
		}
		opts.Proposals = append(opts.Proposals, p)
	}
	out, err := m.group.Commit(opts)
	if err != nil {
		return nil, mlsError("commit", err)
	}
	m.sent[string(out.Commit)] = true
	resp := &pb.CommitResponse{Commit: out.Commit, Welcome: out.Welcome}
	if r.GetExternalTree() {
		if resp.RatchetTree, err = m.group.PendingRatchetTree(); err != nil {
			return nil, mlsError("commit", err)
		}
	}
	return resp, nil
}

// HandleCommit processes another member's commit and the proposals it
// references.
func (s *Server) HandleCommit(_ context.Context, r *pb.HandleCommitRequest) (*pb.HandleCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.handleCommit(r)
	if err != nil {
		return nil, err
	}
	return &pb.HandleCommitResponse{StateId: r.GetStateId(), EpochAuthenticator: m.group.EpochAuthenticator()}, nil
}

func (s *Server) handleCommit(r *pb.HandleCommitRequest) (*member, error) {
	m, err := s.state(r.GetStateId())
	if err != nil {
		return nil, err
	}
	if err := m.absorb(r.GetProposal()); err != nil {
		return nil, err
	}
	res, err := m.group.ProcessMessage(r.GetCommit())
	if err != nil {
		return nil, mlsError("handle commit", err)
	}
	if res.Kind != mls.ResultCommit {
		return nil, status.Error(codes.InvalidArgument, "handle commit: not a commit")
	}
	clear(m.sent)
	return m, nil
}

// HandlePendingCommit applies the member's own pending commit.
func (s *Server) HandlePendingCommit(_ context.Context, r *pb.HandlePendingCommitRequest) (*pb.HandleCommitResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.mergePending(r.GetStateId())
	if err != nil {
		return nil, err
	}
	return &pb.HandleCommitResponse{StateId: r.GetStateId(), EpochAuthenticator: m.group.EpochAuthenticator()}, nil
}

func (s *Server) mergePending(id uint32) (*member, error) {
	m, err := s.state(id)
	if err != nil {
		return nil, err
	}
	if err := m.group.MergePendingCommit(); err != nil {
		return nil, mlsError("handle pending commit", err)
	}
	clear(m.sent)
	return m, nil
}
