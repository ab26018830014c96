package mlsinterop

import (
	"bytes"
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medicus-health/medicus/crypto/mls"
	pb "github.com/medicus-health/medicus/mlsinterop/mlsclientpb"
)

// ---- proposals from outside the group (RFC 9420 §12.1.8) ----

// NewMemberAddProposal creates a KeyPackage and the joiner's own Add
// proposal for the group of a GroupInfo; the transaction later joins from
// the Welcome with JoinGroup.
func (s *Server) NewMemberAddProposal(_ context.Context, r *pb.NewMemberAddProposalRequest) (*pb.NewMemberAddProposalResponse, error) {
	info, err := mls.InspectGroupInfo(nil, r.GetGroupInfo(), nil)
	if err != nil {
		return nil, mlsError("new member proposal: group info", err)
	}
	tx, err := newKeyPackage(info.CipherSuite, basic(r.GetIdentity()))
	if err != nil {
		return nil, err
	}
	prop, err := mls.NewMemberAddProposal(r.GetGroupInfo(), tx.keyPackage, tx.priv.SignatureKey)
	if err != nil {
		return nil, mlsError("new member proposal", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.addTx(tx)
	if err != nil {
		return nil, err
	}
	return &pb.NewMemberAddProposalResponse{TransactionId: id, Proposal: prop,
		InitPriv: tx.priv.InitKey, EncryptionPriv: tx.priv.EncryptionKey, SignaturePriv: tx.priv.SignatureKey}, nil
}

// CreateExternalSigner creates an external sender (such as a delivery
// service) and returns its ExternalSender entry.
func (s *Server) CreateExternalSigner(_ context.Context, r *pb.CreateExternalSignerRequest) (*pb.CreateExternalSignerResponse, error) {
	suite, err := suiteOf(r.GetCipherSuite())
	if err != nil {
		return nil, err
	}
	priv, pub, err := mls.GenerateSignatureKey(suite)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "signature key: %v", err)
	}
	entry, err := mls.MarshalExternalSender(mls.ExternalSender{SignatureKey: pub, Credential: basic(r.GetIdentity())})
	if err != nil {
		return nil, mlsError("external sender", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	s.signers[id] = &signer{suite: suite, priv: priv, pub: pub}
	return &pb.CreateExternalSignerResponse{SignerId: id, ExternalSender: entry}, nil
}

// AddExternalSigner proposes GroupContext extensions whose external_senders
// extension has the given entry appended.
func (s *Server) AddExternalSigner(_ context.Context, r *pb.AddExternalSignerRequest) (*pb.ProposalResponse, error) {
	entry, err := mls.UnmarshalExternalSender(r.GetExternalSender())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v", err)
	}
	return s.propose(r.GetStateId(), func(m *member) (*mls.Proposal, error) {
		current := m.group.Extensions()
		senders, err := mls.ExternalSenders(current)
		if err != nil {
			return nil, mlsError("external senders", err)
		}
		ext, err := mls.ExternalSendersExtension(append(senders, entry))
		if err != nil {
			return nil, mlsError("external senders", err)
		}
		var exts []mls.Extension
		replaced := false
		for _, e := range current {
			if e.ExtensionType == ext.ExtensionType {
				e, replaced = ext, true
			}
			exts = append(exts, e)
		}
		if !replaced {
			exts = append(exts, ext)
		}
		return mls.GroupContextExtensionsProposal(exts), nil
	})
}

// ExternalSignerProposal makes an external sender's proposal for the group
// of a GroupInfo. The sender's index is found in the group's
// external_senders extension by its signature key (the runner leaves
// signer_index zero).
func (s *Server) ExternalSignerProposal(_ context.Context, r *pb.ExternalSignerProposalRequest) (*pb.ProposalResponse, error) {
	s.mu.Lock()
	sg, ok := s.signers[r.GetSignerId()]
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no external signer %d", r.GetSignerId())
	}
	info, err := mls.InspectGroupInfo(nil, r.GetGroupInfo(), optionalTree(r.GetRatchetTree()))
	if err != nil {
		return nil, mlsError("external proposal: group info", err)
	}
	if info.CipherSuite != sg.suite {
		return nil, status.Error(codes.InvalidArgument, "external signer of another cipher suite")
	}
	senders, err := mls.ExternalSenders(info.Extensions)
	if err != nil {
		return nil, mlsError("external senders", err)
	}
	index := -1
	for i, e := range senders {
		if bytes.Equal(e.SignatureKey, sg.pub) {
			index = i
			break
		}
	}
	if index < 0 {
		return nil, status.Error(codes.FailedPrecondition, "the signer is not among the group's external senders")
	}
	if r.GetDescription() == nil {
		return nil, status.Error(codes.InvalidArgument, "no proposal description")
	}
	p, err := describedProposal(r.GetDescription(), info.Members, info.CipherSuite, info.GroupID, nil)
	if err != nil {
		return nil, err
	}
	msg, err := mls.NewExternalProposal(info.CipherSuite, info.GroupID, info.Epoch, uint32(index), sg.priv, p)
	if err != nil {
		return nil, mlsError("external proposal", err)
	}
	return &pb.ProposalResponse{Proposal: msg}, nil
}
