package scenario

import (
	"bytes"
	"fmt"
	"slices"

	pb "github.com/medicus-health/medicus/mlsinterop/mlsclientpb"
)

// step runs one step (with the runner's semantics for each action).
func (r *run) step(i int, st *Step) error {
	switch st.Action {
	case CreateGroup:
		return r.createGroup(i, st)
	case CreateKeyPackage:
		c, err := r.rpc(st.Actor)
		if err != nil {
			return err
		}
		resp, err := c.CreateKeyPackage(r.ctx, &pb.CreateKeyPackageRequest{CipherSuite: r.suite, Identity: []byte(st.Actor)})
		if err != nil {
			return err
		}
		r.tx[st.Actor] = resp.GetTransactionId()
		r.cache[i]["key_package"] = resp.GetKeyPackage()
		return nil
	case ExternalJoin:
		return r.externalJoin(i, st)
	case InstallExternalPSK:
		id, secret := random32(), random32()
		r.cache[i]["psk_id"], r.cache[i]["psk_secret"] = id, secret
		for _, name := range st.Clients {
			c, err := r.rpc(name)
			if err != nil {
				return err
			}
			handle, ok := r.state[name]
			if !ok {
				handle = r.tx[name]
			}
			if _, err := c.StorePSK(r.ctx, &pb.StorePSKRequest{StateOrTransactionId: handle, PskId: id, PskSecret: secret}); err != nil {
				return fmt.Errorf("store psk at %s: %w", name, err)
			}
		}
		return nil
	case AddProposal, UpdateProposal, RemoveProposal, ExternalPSKProposal, ResumptionPSKProposal, GroupContextExtensionsProposal:
		return r.proposal(i, st)
	case FullCommit:
		return r.fullCommit(i, st)
	case Protect:
		c, err := r.rpc(st.Actor)
		if err != nil {
			return err
		}
		resp, err := c.Protect(r.ctx, &pb.ProtectRequest{StateId: r.state[st.Actor], AuthenticatedData: []byte(st.AuthenticatedData), Plaintext: []byte(st.Plaintext)})
		if err != nil {
			return err
		}
		r.cache[i]["ciphertext"] = resp.GetCiphertext()
		r.cache[i]["authenticated_data"], r.cache[i]["plaintext"] = []byte(st.AuthenticatedData), []byte(st.Plaintext)
		return nil
	case Unprotect:
		c, err := r.rpc(st.Actor)
		if err != nil {
			return err
		}
		ct, err := r.get(st.Ciphertext, "ciphertext")
		if err != nil {
			return err
		}
		resp, err := c.Unprotect(r.ctx, &pb.UnprotectRequest{StateId: r.state[st.Actor], Ciphertext: ct})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.GetPlaintext(), r.cache[st.Ciphertext]["plaintext"]) || !bytes.Equal(resp.GetAuthenticatedData(), r.cache[st.Ciphertext]["authenticated_data"]) {
			return fmt.Errorf("unprotected a different message")
		}
		return nil
	case ReInit:
		return r.reinit(st)
	case Branch:
		return r.branch(st)
	case NewMemberAddProposal:
		return r.newMemberAdd(i, st)
	case AddExternalSigner:
		return r.addExternalSigner(i, st)
	case ExternalSignerProposal:
		return r.externalSignerProposal(i, st)
	}
	return fmt.Errorf("unknown action %q", st.Action)
}

func (r *run) createGroup(i int, st *Step) error {
	c, err := r.rpc(st.Actor)
	if err != nil {
		return err
	}
	r.groupID = fmt.Appendf(nil, "group-%x", random32()[:8])
	resp, err := c.CreateGroup(r.ctx, &pb.CreateGroupRequest{GroupId: r.groupID, CipherSuite: r.suite, EncryptHandshake: r.encrypt, Identity: []byte(st.Actor)})
	if err != nil {
		return err
	}
	r.state[st.Actor] = resp.GetStateId()
	if len(st.Members) == 0 {
		return nil
	}
	var byValue []*pb.ProposalDescription
	txs := map[string]uint32{}
	for _, m := range st.Members {
		mc, err := r.rpc(m)
		if err != nil {
			return err
		}
		kp, err := mc.CreateKeyPackage(r.ctx, &pb.CreateKeyPackageRequest{CipherSuite: r.suite, Identity: []byte(m)})
		if err != nil {
			return err
		}
		txs[m] = kp.GetTransactionId()
		byValue = append(byValue, &pb.ProposalDescription{ProposalType: []byte("add"), KeyPackage: kp.GetKeyPackage()})
	}
	commit, err := c.Commit(r.ctx, &pb.CommitRequest{StateId: r.state[st.Actor], ByValue: byValue})
	if err != nil {
		return err
	}
	merged, err := c.HandlePendingCommit(r.ctx, &pb.HandlePendingCommitRequest{StateId: r.state[st.Actor]})
	if err != nil {
		return err
	}
	r.state[st.Actor] = merged.GetStateId()
	for _, m := range st.Members {
		mc, _ := r.rpc(m)
		j, err := mc.JoinGroup(r.ctx, &pb.JoinGroupRequest{TransactionId: txs[m], Welcome: commit.GetWelcome(), EncryptHandshake: r.encrypt, Identity: []byte(m)})
		if err != nil {
			return fmt.Errorf("%s joins: %w", m, err)
		}
		if err := sameEpoch(m, j.GetEpochAuthenticator(), merged.GetEpochAuthenticator()); err != nil {
			return err
		}
		r.state[m] = j.GetStateId()
	}
	return nil
}

func (r *run) externalJoin(i int, st *Step) error {
	c, err := r.rpc(st.Actor)
	if err != nil {
		return err
	}
	gi, err := c.GroupInfo(r.ctx, &pb.GroupInfoRequest{StateId: r.state[st.Actor], ExternalTree: st.ExternalTree})
	if err != nil {
		return err
	}
	var psks []*pb.PreSharedKey
	for _, p := range st.PSKs {
		id, err := r.get(p, "psk_id")
		if err != nil {
			return err
		}
		psks = append(psks, &pb.PreSharedKey{PskId: id, PskSecret: r.cache[p]["psk_secret"]})
	}
	jc, err := r.rpc(st.Joiner)
	if err != nil {
		return err
	}
	j, err := jc.ExternalJoin(r.ctx, &pb.ExternalJoinRequest{GroupInfo: gi.GetGroupInfo(), RatchetTree: gi.GetRatchetTree(), EncryptHandshake: r.encrypt,
		Identity: []byte(st.Joiner), RemovePrior: st.RemovePrior, Psks: psks})
	if err != nil {
		return fmt.Errorf("%s joins externally: %w", st.Joiner, err)
	}
	r.state[st.Joiner] = j.GetStateId()
	r.cache[i]["commit"] = j.GetCommit()
	for _, m := range append(slices.Clone(st.Members), st.Actor) {
		mc, err := r.rpc(m)
		if err != nil {
			return err
		}
		h, err := mc.HandleCommit(r.ctx, &pb.HandleCommitRequest{StateId: r.state[m], Commit: j.GetCommit()})
		if err != nil {
			return fmt.Errorf("%s handles the external commit: %w", m, err)
		}
		if err := sameEpoch(m, h.GetEpochAuthenticator(), j.GetEpochAuthenticator()); err != nil {
			return err
		}
		r.state[m] = h.GetStateId()
	}
	return nil
}

func (r *run) proposal(i int, st *Step) error {
	c, err := r.rpc(st.Actor)
	if err != nil {
		return err
	}
	id := r.state[st.Actor]
	var resp *pb.ProposalResponse
	switch st.Action {
	case AddProposal:
		kp, err := r.get(st.KeyPackage, "key_package")
		if err != nil {
			return err
		}
		resp, err = c.AddProposal(r.ctx, &pb.AddProposalRequest{StateId: id, KeyPackage: kp})
		if err != nil {
			return err
		}
	case UpdateProposal:
		resp, err = c.UpdateProposal(r.ctx, &pb.UpdateProposalRequest{StateId: id})
	case RemoveProposal:
		resp, err = c.RemoveProposal(r.ctx, &pb.RemoveProposalRequest{StateId: id, RemovedId: []byte(st.Removed)})
	case ExternalPSKProposal:
		psk, err := r.get(st.PSKID, "psk_id")
		if err != nil {
			return err
		}
		resp, err = c.ExternalPSKProposal(r.ctx, &pb.ExternalPSKProposalRequest{StateId: id, PskId: psk})
		if err != nil {
			return err
		}
	case ResumptionPSKProposal:
		resp, err = c.ResumptionPSKProposal(r.ctx, &pb.ResumptionPSKProposalRequest{StateId: id, EpochId: st.EpochID})
	case GroupContextExtensionsProposal:
		resp, err = c.GroupContextExtensionsProposal(r.ctx, &pb.GroupContextExtensionsProposalRequest{StateId: id, Extensions: st.Extensions})
	}
	if err != nil {
		return err
	}
	r.cache[i]["proposal"] = resp.GetProposal()
	return nil
}

func (r *run) fullCommit(i int, st *Step) error {
	c, err := r.rpc(st.Actor)
	if err != nil {
		return err
	}
	var byRef [][]byte
	for _, s := range st.ByReference {
		p, err := r.get(s, "proposal")
		if err != nil {
			return err
		}
		byRef = append(byRef, p)
	}
	var byValue []*pb.ProposalDescription
	for k := range st.ByValue {
		d, err := r.description(&st.ByValue[k])
		if err != nil {
			return err
		}
		byValue = append(byValue, d)
	}
	commit, err := c.Commit(r.ctx, &pb.CommitRequest{StateId: r.state[st.Actor], ByReference: byRef, ByValue: byValue, ForcePath: st.ForcePath, ExternalTree: st.ExternalTree})
	if err != nil {
		return err
	}
	r.cache[i]["commit"], r.cache[i]["welcome"] = commit.GetCommit(), commit.GetWelcome()
	merged, err := c.HandlePendingCommit(r.ctx, &pb.HandlePendingCommitRequest{StateId: r.state[st.Actor]})
	if err != nil {
		return err
	}
	r.state[st.Actor] = merged.GetStateId()
	auth := merged.GetEpochAuthenticator()
	for _, m := range st.Members {
		mc, err := r.rpc(m)
		if err != nil {
			return err
		}
		h, err := mc.HandleCommit(r.ctx, &pb.HandleCommitRequest{StateId: r.state[m], Proposal: byRef, Commit: commit.GetCommit()})
		if err != nil {
			return fmt.Errorf("%s handles the commit: %w", m, err)
		}
		if err := sameEpoch(m, h.GetEpochAuthenticator(), auth); err != nil {
			return err
		}
		r.state[m] = h.GetStateId()
	}
	for _, m := range st.Joiners {
		mc, err := r.rpc(m)
		if err != nil {
			return err
		}
		tx, ok := r.tx[m]
		if !ok {
			return fmt.Errorf("no transaction for %s", m)
		}
		req := &pb.JoinGroupRequest{TransactionId: tx, Welcome: commit.GetWelcome(), EncryptHandshake: r.encrypt, Identity: []byte(m)}
		if st.ExternalTree {
			req.RatchetTree = commit.GetRatchetTree()
		}
		j, err := mc.JoinGroup(r.ctx, req)
		if err != nil {
			return fmt.Errorf("%s joins: %w", m, err)
		}
		if err := sameEpoch(m, j.GetEpochAuthenticator(), auth); err != nil {
			return err
		}
		r.state[m] = j.GetStateId()
	}
	return nil
}

func (r *run) reinit(st *Step) error {
	// Everyone but the committer handles the commit; everyone but the
	// welcomer joins the new group.
	notCommitter, notWelcomer := []string{}, []string{}
	for _, m := range append([]string{st.Welcomer, st.Committer, st.Proposer}, st.Members...) {
		if m == "" {
			continue
		}
		if m != st.Committer && !slices.Contains(notCommitter, m) {
			notCommitter = append(notCommitter, m)
		}
		if m != st.Welcomer && !slices.Contains(notWelcomer, m) {
			notWelcomer = append(notWelcomer, m)
		}
	}
	groupID := r.newGroupID(st.ChangeGroupID)
	if st.ChangeCipherSuite {
		if err := r.changeSuite(); err != nil {
			return err
		}
	}
	var proposal []byte
	if st.Proposer != "" {
		c, err := r.rpc(st.Proposer)
		if err != nil {
			return err
		}
		p, err := c.ReInitProposal(r.ctx, &pb.ReInitProposalRequest{StateId: r.state[st.Proposer], CipherSuite: r.suite, GroupId: groupID, Extensions: st.Extensions})
		if err != nil {
			return err
		}
		proposal = p.GetProposal()
	} else {
		var err error
		if proposal, err = r.get(st.ExternalReinitProposal, "proposal"); err != nil {
			return err
		}
	}
	cc, err := r.rpc(st.Committer)
	if err != nil {
		return err
	}
	commit, err := cc.ReInitCommit(r.ctx, &pb.CommitRequest{StateId: r.state[st.Committer], ByReference: [][]byte{proposal}})
	if err != nil {
		return err
	}
	pending, err := cc.HandlePendingReInitCommit(r.ctx, &pb.HandlePendingCommitRequest{StateId: r.state[st.Committer]})
	if err != nil {
		return err
	}
	reinitIDs := map[string]uint32{st.Committer: pending.GetReinitId()}
	keyPackages := map[string][]byte{st.Committer: pending.GetKeyPackage()}
	for _, m := range notCommitter {
		mc, err := r.rpc(m)
		if err != nil {
			return err
		}
		h, err := mc.HandleReInitCommit(r.ctx, &pb.HandleCommitRequest{StateId: r.state[m], Proposal: [][]byte{proposal}, Commit: commit.GetCommit()})
		if err != nil {
			return fmt.Errorf("%s handles the reinit commit: %w", m, err)
		}
		if err := sameEpoch(m, h.GetEpochAuthenticator(), pending.GetEpochAuthenticator()); err != nil {
			return err
		}
		reinitIDs[m], keyPackages[m] = h.GetReinitId(), h.GetKeyPackage()
	}
	var kps [][]byte
	for _, m := range notWelcomer {
		kps = append(kps, keyPackages[m])
	}
	wc, err := r.rpc(st.Welcomer)
	if err != nil {
		return err
	}
	w, err := wc.ReInitWelcome(r.ctx, &pb.ReInitWelcomeRequest{ReinitId: reinitIDs[st.Welcomer], KeyPackage: kps, ForcePath: st.ForcePath, ExternalTree: st.ExternalTree})
	if err != nil {
		return err
	}
	r.state[st.Welcomer] = w.GetStateId()
	for _, m := range notWelcomer {
		mc, _ := r.rpc(m)
		req := &pb.HandleReInitWelcomeRequest{ReinitId: reinitIDs[m], Welcome: w.GetWelcome()}
		if st.ExternalTree {
			req.RatchetTree = w.GetRatchetTree()
		}
		j, err := mc.HandleReInitWelcome(r.ctx, req)
		if err != nil {
			return fmt.Errorf("%s joins the reinitialized group: %w", m, err)
		}
		if err := sameEpoch(m, j.GetEpochAuthenticator(), w.GetEpochAuthenticator()); err != nil {
			return err
		}
		r.state[m] = j.GetStateId()
	}
	return nil
}

func (r *run) branch(st *Step) error {
	txs := map[string]uint32{}
	var kps [][]byte
	for _, m := range st.Members {
		mc, err := r.rpc(m)
		if err != nil {
			return err
		}
		kp, err := mc.CreateKeyPackage(r.ctx, &pb.CreateKeyPackageRequest{CipherSuite: r.suite, Identity: []byte(m)})
		if err != nil {
			return err
		}
		txs[m] = kp.GetTransactionId()
		kps = append(kps, kp.GetKeyPackage())
	}
	c, err := r.rpc(st.Actor)
	if err != nil {
		return err
	}
	b, err := c.CreateBranch(r.ctx, &pb.CreateBranchRequest{StateId: r.state[st.Actor], GroupId: fmt.Appendf(nil, "branch-%x", random32()[:8]),
		Extensions: st.Extensions, KeyPackages: kps, ForcePath: st.ForcePath, ExternalTree: st.ExternalTree})
	if err != nil {
		return err
	}
	old := map[string]uint32{}
	for _, m := range st.Members {
		mc, _ := r.rpc(m)
		req := &pb.HandleBranchRequest{StateId: r.state[m], TransactionId: txs[m], Welcome: b.GetWelcome()}
		if st.ExternalTree {
			req.RatchetTree = b.GetRatchetTree()
		}
		h, err := mc.HandleBranch(r.ctx, req)
		if err != nil {
			return fmt.Errorf("%s joins the branch: %w", m, err)
		}
		if err := sameEpoch(m, h.GetEpochAuthenticator(), b.GetEpochAuthenticator()); err != nil {
			return err
		}
		old[m], r.state[m] = r.state[m], h.GetStateId()
	}
	r.state[st.Actor] = b.GetStateId()
	for m, id := range old {
		mc, _ := r.rpc(m)
		if _, err := mc.Free(r.ctx, &pb.FreeRequest{StateId: id}); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) newMemberAdd(i int, st *Step) error {
	c, err := r.rpc(st.Actor)
	if err != nil {
		return err
	}
	gi, err := c.GroupInfo(r.ctx, &pb.GroupInfoRequest{StateId: r.state[st.Actor]})
	if err != nil {
		return err
	}
	jc, err := r.rpc(st.Joiner)
	if err != nil {
		return err
	}
	p, err := jc.NewMemberAddProposal(r.ctx, &pb.NewMemberAddProposalRequest{GroupInfo: gi.GetGroupInfo(), Identity: []byte(st.Joiner)})
	if err != nil {
		return err
	}
	r.tx[st.Joiner] = p.GetTransactionId()
	r.cache[i]["proposal"] = p.GetProposal()
	return nil
}

func (r *run) addExternalSigner(i int, st *Step) error {
	sc, err := r.rpc(st.Signer)
	if err != nil {
		return err
	}
	s, err := sc.CreateExternalSigner(r.ctx, &pb.CreateExternalSignerRequest{CipherSuite: r.suite, Identity: []byte(st.Signer)})
	if err != nil {
		return err
	}
	r.signer[st.Signer] = s.GetSignerId()
	c, err := r.rpc(st.Actor)
	if err != nil {
		return err
	}
	p, err := c.AddExternalSigner(r.ctx, &pb.AddExternalSignerRequest{StateId: r.state[st.Actor], ExternalSender: s.GetExternalSender()})
	if err != nil {
		return err
	}
	r.cache[i]["proposal"] = p.GetProposal()
	return nil
}

func (r *run) externalSignerProposal(i int, st *Step) error {
	mc, err := r.rpc(st.Member)
	if err != nil {
		return err
	}
	gi, err := mc.GroupInfo(r.ctx, &pb.GroupInfoRequest{StateId: r.state[st.Member], ExternalTree: true})
	if err != nil {
		return err
	}
	d, err := r.description(&st.Description)
	if err != nil {
		return err
	}
	c, err := r.rpc(st.Actor)
	if err != nil {
		return err
	}
	p, err := c.ExternalSignerProposal(r.ctx, &pb.ExternalSignerProposalRequest{SignerId: r.signer[st.Actor], GroupInfo: gi.GetGroupInfo(),
		RatchetTree: gi.GetRatchetTree(), Description: d})
	if err != nil {
		return err
	}
	r.cache[i]["proposal"] = p.GetProposal()
	return nil
}
