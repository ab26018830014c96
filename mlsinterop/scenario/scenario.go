// Package scenario drives MLS interoperability clients (gRPC service
// mls_client.MLSClient) through scripted scenarios the way the MLS working
// group's test-runner does: a script is a list of steps, each run by an
// actor (a role such as "alice") assigned to one of the clients; later steps
// refer to earlier ones' outputs (KeyPackages, proposals, ciphertexts) by
// step index, and every member's epoch authenticator is compared after each
// commit.
//
// Scenarios returns medicus's own rendering of the runner's scenario
// families (welcome_join, application, commit, external_join,
// external_proposals, reinit, branch) and DeepRandom generates deep_random
// sessions. The package is used by tests that pair two or more instances of
// `medicus mls interop-server`.
package scenario

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"sort"

	pb "github.com/medicus-health/medicus/mlsinterop/mlsclientpb"
)

// Action names a step's operation (the runner's action names).
type Action string

// Actions.
const (
	CreateGroup                    Action = "createGroup"
	CreateKeyPackage               Action = "createKeyPackage"
	ExternalJoin                   Action = "externalJoin"
	InstallExternalPSK             Action = "installExternalPSK"
	AddProposal                    Action = "addProposal"
	UpdateProposal                 Action = "updateProposal"
	RemoveProposal                 Action = "removeProposal"
	ExternalPSKProposal            Action = "externalPSKProposal"
	ResumptionPSKProposal          Action = "resumptionPSKProposal"
	GroupContextExtensionsProposal Action = "groupContextExtensionsProposal"
	FullCommit                     Action = "fullCommit"
	Protect                        Action = "protect"
	Unprotect                      Action = "unprotect"
	ReInit                         Action = "reinit"
	Branch                         Action = "branch"
	NewMemberAddProposal           Action = "newMemberAddProposal"
	AddExternalSigner              Action = "addExternalSigner"
	ExternalSignerProposal         Action = "externalSignerProposal"
)

// Proposal describes a proposal made by value or by an external signer.
type Proposal struct {
	Type string // add, remove, externalPSK, resumptionPSK, groupContextExtensions, reinit
	// KeyPackage and PSKID are step indexes.
	KeyPackage, PSKID int
	Removed           string
	EpochID           uint64
	Extensions        []*pb.Extension
	// ChangeGroupID and ChangeCipherSuite shape a reinit proposal.
	ChangeGroupID, ChangeCipherSuite bool
}

// Step is one step of a script; which fields matter depends on Action.
type Step struct {
	Action Action
	Actor  string

	Members, Joiners []string // createGroup, fullCommit, externalJoin, branch, reinit
	KeyPackage       int      // addProposal: step of the KeyPackage
	Removed          string   // removeProposal: identity
	PSKID            int      // externalPSKProposal: step of the PSK
	EpochID          uint64   // resumptionPSKProposal
	Extensions       []*pb.Extension

	ByReference  []int // fullCommit: steps of proposals
	ByValue      []Proposal
	ForcePath    bool
	ExternalTree bool

	Joiner      string // externalJoin, newMemberAddProposal
	RemovePrior bool
	PSKs        []int // externalJoin: steps of PSKs

	Clients []string // installExternalPSK

	AuthenticatedData, Plaintext string // protect
	Ciphertext                   int    // unprotect: step

	// reinit
	Proposer, Committer, Welcomer    string
	ChangeCipherSuite, ChangeGroupID bool
	ExternalReinitProposal           int // step of an external signer's proposal

	Signer      string   // addExternalSigner
	Member      string   // externalSignerProposal: whose GroupInfo
	Description Proposal // externalSignerProposal
}

// Script is a scenario: steps run in order.
type Script []Step

// Actors returns the script's actors in order of first appearance.
func (s Script) Actors() []string {
	var out []string
	add := func(names ...string) {
		for _, n := range names {
			if n != "" && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	for _, st := range s {
		add(st.Actor)
		switch st.Action {
		case CreateGroup:
			add(st.Members...)
		case ExternalJoin, NewMemberAddProposal:
			add(st.Joiner)
		case AddExternalSigner:
			add(st.Signer)
		}
	}
	return out
}

// Client is one implementation under test.
type Client struct {
	RPC       pb.MLSClientClient
	Name      string
	Supported []uint32
}

// Connect asks an implementation for its name and cipher suites.
func Connect(ctx context.Context, rpc pb.MLSClientClient) (*Client, error) {
	n, err := rpc.Name(ctx, &pb.NameRequest{})
	if err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	cs, err := rpc.SupportedCiphersuites(ctx, &pb.SupportedCiphersuitesRequest{})
	if err != nil {
		return nil, fmt.Errorf("supported cipher suites: %w", err)
	}
	return &Client{RPC: rpc, Name: n.GetName(), Supported: cs.GetCiphersuites()}, nil
}

// run is the state of one script run.
type run struct {
	ctx     context.Context
	suite   uint32
	encrypt bool
	clients map[string]*Client
	state   map[string]uint32
	tx      map[string]uint32
	signer  map[string]uint32
	cache   []map[string][]byte
	groupID []byte
}

// Run runs script with actors assigned to clients, in suite, with
// handshake messages encrypted or not. It returns the index of the step
// that failed and why, or -1 and nil. States it created are freed.
func Run(ctx context.Context, script Script, assign map[string]*Client, suite uint32, encrypt bool) (int, error) {
	r := &run{ctx: ctx, suite: suite, encrypt: encrypt, clients: assign, state: map[string]uint32{}, tx: map[string]uint32{},
		signer: map[string]uint32{}, cache: make([]map[string][]byte, len(script))}
	for i := range r.cache {
		r.cache[i] = map[string][]byte{}
	}
	failed, err := -1, error(nil)
	for i := range script {
		if e := r.step(i, &script[i]); e != nil {
			failed, err = i, fmt.Errorf("step %d (%s by %s): %w", i, script[i].Action, script[i].Actor, e)
			break
		}
	}
	for actor, id := range r.state {
		if _, e := r.clients[actor].RPC.Free(ctx, &pb.FreeRequest{StateId: id}); e != nil && err == nil {
			failed, err = len(script), fmt.Errorf("free %s: %w", actor, e)
		}
	}
	return failed, err
}

func (r *run) rpc(actor string) (pb.MLSClientClient, error) {
	c, ok := r.clients[actor]
	if !ok {
		return nil, fmt.Errorf("actor %q has no client", actor)
	}
	return c.RPC, nil
}

func (r *run) get(step int, key string) ([]byte, error) {
	if step < 0 || step >= len(r.cache) {
		return nil, fmt.Errorf("no step %d", step)
	}
	v, ok := r.cache[step][key]
	if !ok {
		return nil, fmt.Errorf("no %s at step %d", key, step)
	}
	return v, nil
}

// sameEpoch checks a member's epoch authenticator against the committer's.
func sameEpoch(who string, got, want []byte) error {
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s disagrees on the epoch authenticator", who)
	}
	return nil
}

// changeSuite picks another cipher suite supported by every client.
func (r *run) changeSuite() error {
	var common []uint32
	for i, c := range r.sortedClients() {
		if i == 0 {
			common = slices.Clone(c.Supported)
			continue
		}
		common = slices.DeleteFunc(common, func(s uint32) bool { return !slices.Contains(c.Supported, s) })
	}
	common = slices.DeleteFunc(common, func(s uint32) bool { return s == r.suite })
	if len(common) == 0 {
		return fmt.Errorf("no other cipher suite supported by every client")
	}
	slices.Sort(common)
	r.suite = common[0]
	return nil
}

func (r *run) sortedClients() []*Client {
	names := make([]string, 0, len(r.clients))
	for n := range r.clients {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*Client, len(names))
	for i, n := range names {
		out[i] = r.clients[n]
	}
	return out
}

func (r *run) newGroupID(change bool) []byte {
	id := slices.Clone(r.groupID)
	if change {
		id = append(id, "++"...)
	}
	return id
}

func (r *run) description(p *Proposal) (*pb.ProposalDescription, error) {
	d := &pb.ProposalDescription{ProposalType: []byte(p.Type)}
	var err error
	switch p.Type {
	case "add":
		d.KeyPackage, err = r.get(p.KeyPackage, "key_package")
	case "remove":
		d.RemovedId = []byte(p.Removed)
	case "externalPSK":
		d.PskId, err = r.get(p.PSKID, "psk_id")
	case "resumptionPSK":
		d.EpochId = p.EpochID
	case "groupContextExtensions":
		d.Extensions = p.Extensions
	case "reinit":
		d.Extensions = p.Extensions
		if p.ChangeCipherSuite {
			err = r.changeSuite()
		}
		d.CipherSuite, d.GroupId = r.suite, r.newGroupID(p.ChangeGroupID)
	default:
		err = fmt.Errorf("unknown proposal type %q", p.Type)
	}
	return d, err
}

func random32() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}
