package scenario

import (
	"fmt"
	"math/rand/v2"
	"slices"

	pb "github.com/medicus-health/medicus/mlsinterop/mlsclientpb"
)

// Family is a named set of scripts, like one of the runner's config files.
type Family struct {
	Name    string
	Scripts map[string]Script
}

// Extensions used by the scenarios: an empty required_capabilities (type 3)
// and an empty external_senders (type 5).
var (
	requiredCapabilities = &pb.Extension{ExtensionType: 3, ExtensionData: []byte{0, 0, 0}}
	externalSenders      = &pb.Extension{ExtensionType: 5, ExtensionData: []byte{0}}
	bothExtensions       = []*pb.Extension{requiredCapabilities, externalSenders}
)

func add(kp int) Proposal                 { return Proposal{Type: "add", KeyPackage: kp} }
func remove(who string) Proposal          { return Proposal{Type: "remove", Removed: who} }
func externalPSK(step int) Proposal       { return Proposal{Type: "externalPSK", PSKID: step} }
func resumptionPSK(epoch uint64) Proposal { return Proposal{Type: "resumptionPSK", EpochID: epoch} }
func create(actor string, members ...string) Step {
	return Step{Action: CreateGroup, Actor: actor, Members: members}
}
func keyPackage(actor string) Step { return Step{Action: CreateKeyPackage, Actor: actor} }
func psk(clients ...string) Step   { return Step{Action: InstallExternalPSK, Clients: clients} }

// Scenarios returns the scenario families of the interoperability
// test-runner (its configs welcome_join, application, commit,
// external_join, external_proposals, reinit and branch), written for this
// package: the same steps, actors and references.
func Scenarios() []Family {
	return []Family{welcomeJoin(), application(), commit(), externalJoin(), externalProposals(), reinit(), branch()}
}

func welcomeJoin() Family {
	base := func(extra ...Step) Script {
		return append(Script{create("alice"), keyPackage("bob"), {Action: AddProposal, Actor: "alice", KeyPackage: 1}}, extra...)
	}
	commitBy := func(refs []int, force, external bool) Step {
		return Step{Action: FullCommit, Actor: "alice", ByReference: refs, Joiners: []string{"bob"}, ForcePath: force, ExternalTree: external}
	}
	return Family{Name: "welcome_join", Scripts: map[string]Script{
		"no_path_secret":     base(commitBy([]int{2}, false, false)),
		"with_path_secret":   base(commitBy([]int{2}, true, false)),
		"with_psk":           base(psk("alice", "bob"), Step{Action: ExternalPSKProposal, Actor: "alice", PSKID: 3}, commitBy([]int{2, 4}, false, false)),
		"with_external_tree": base(commitBy([]int{2}, false, true)),
	}}
}

func application() Family {
	protect := func(n int) Step {
		return Step{Action: Protect, Actor: "alice", AuthenticatedData: fmt.Sprint("btw", n), Plaintext: fmt.Sprint("hello world ", n)}
	}
	unprotect := func(step int) Step { return Step{Action: Unprotect, Actor: "bob", Ciphertext: step} }
	return Family{Name: "application", Scripts: map[string]Script{
		"in_order":                  {create("alice", "bob"), protect(1), protect(2), protect(3), unprotect(1), unprotect(2), unprotect(3)},
		"out_of_order_within_epoch": {create("alice", "bob"), protect(1), protect(2), protect(3), unprotect(3), unprotect(2), unprotect(1)},
		"out_of_order_across_epochs": {create("alice", "bob"), protect(1), protect(2),
			{Action: FullCommit, Actor: "alice", Members: []string{"bob"}}, protect(3), protect(4),
			unprotect(5), unprotect(4), unprotect(2), unprotect(1)},
	}}
}

func commit() Family {
	full := func(actor string, refs []int, byValue []Proposal, members, joiners []string, force bool) Step {
		return Step{Action: FullCommit, Actor: actor, ByReference: refs, ByValue: byValue, Members: members, Joiners: joiners, ForcePath: force}
	}
	bob := []string{"bob"}
	gce := func(actor string, exts ...*pb.Extension) Step {
		return Step{Action: GroupContextExtensionsProposal, Actor: actor, Extensions: exts}
	}
	allTogether := func(proposer string) Script {
		s := Script{create("alice", "bob"), keyPackage("charlie1"), keyPackage("charlie2"),
			{Action: AddProposal, Actor: "alice", KeyPackage: 1}, {Action: AddProposal, Actor: "alice", KeyPackage: 2},
			full("alice", []int{3, 4}, nil, bob, []string{"charlie1", "charlie2"}, false),
			psk("alice", "bob"), psk("alice", "bob"),
			keyPackage("charlie3"),
			{Action: AddProposal, Actor: proposer, KeyPackage: 8},
			{Action: RemoveProposal, Actor: proposer, Removed: "charlie1"},
			gce(proposer, bothExtensions...),
			{Action: ExternalPSKProposal, Actor: proposer, PSKID: 6},
			{Action: ResumptionPSKProposal, Actor: proposer, EpochID: 1},
		}
		refs := []int{9, 10, 11, 12, 13}
		if proposer == "bob" {
			s = append(s, Step{Action: UpdateProposal, Actor: "bob"})
			refs = append(refs, 14)
		}
		kp := len(s)
		s = append(s, keyPackage("charlie4"))
		return append(s, full("alice", refs, []Proposal{add(kp), remove("charlie2"), externalPSK(7), resumptionPSK(2)}, bob, nil, false))
	}
	return Family{Name: "commit", Scripts: map[string]Script{
		"empty": {create("alice", "bob"), full("alice", nil, nil, bob, nil, false)},
		"add": {create("alice", "bob"),
			keyPackage("charlie1"), keyPackage("charlie2"), keyPackage("charlie3"),
			{Action: AddProposal, Actor: "alice", KeyPackage: 1}, {Action: AddProposal, Actor: "bob", KeyPackage: 2},
			full("alice", []int{4, 5}, []Proposal{add(3)}, bob, []string{"charlie1", "charlie2", "charlie3"}, true),
			keyPackage("charlie4"), keyPackage("charlie5"), keyPackage("charlie6"),
			{Action: AddProposal, Actor: "alice", KeyPackage: 7}, {Action: AddProposal, Actor: "bob", KeyPackage: 8},
			full("alice", []int{10, 11}, []Proposal{add(9)}, []string{"bob", "charlie1", "charlie2"}, []string{"charlie4", "charlie5", "charlie6"}, false),
		},
		"remove": {create("alice", "bob"),
			keyPackage("charlie1"), keyPackage("charlie2"), keyPackage("charlie3"),
			{Action: AddProposal, Actor: "alice", KeyPackage: 1}, {Action: AddProposal, Actor: "alice", KeyPackage: 2}, {Action: AddProposal, Actor: "alice", KeyPackage: 3},
			full("alice", []int{4, 5, 6}, nil, bob, []string{"charlie1", "charlie2", "charlie3"}, false),
			{Action: RemoveProposal, Actor: "alice", Removed: "charlie1"}, {Action: RemoveProposal, Actor: "bob", Removed: "charlie2"},
			full("alice", []int{8, 9}, []Proposal{remove("charlie3")}, bob, nil, false),
		},
		"update": {create("alice", "bob"), {Action: UpdateProposal, Actor: "bob"}, full("alice", []int{1}, nil, bob, nil, false)},
		"group_context_extensions": {create("alice", "bob"),
			gce("alice", bothExtensions...), full("alice", []int{1}, nil, bob, nil, false),
			gce("bob"), full("alice", []int{3}, nil, bob, nil, false),
			full("alice", nil, []Proposal{{Type: "groupContextExtensions", Extensions: []*pb.Extension{requiredCapabilities}}}, bob, nil, false),
		},
		"external_psk": {create("alice", "bob"), psk("alice", "bob"), psk("alice", "bob"), psk("alice", "bob"),
			{Action: ExternalPSKProposal, Actor: "alice", PSKID: 1}, {Action: ExternalPSKProposal, Actor: "bob", PSKID: 2},
			full("alice", []int{4, 5}, []Proposal{externalPSK(3)}, bob, nil, true),
			{Action: ExternalPSKProposal, Actor: "alice", PSKID: 1}, {Action: ExternalPSKProposal, Actor: "bob", PSKID: 2},
			full("alice", []int{7, 8}, []Proposal{externalPSK(3)}, bob, nil, false),
		},
		"resumption_psk": {create("alice", "bob"), full("alice", nil, nil, bob, nil, false), full("alice", nil, nil, bob, nil, false),
			{Action: ResumptionPSKProposal, Actor: "alice", EpochID: 1}, {Action: ResumptionPSKProposal, Actor: "bob", EpochID: 2},
			full("alice", []int{3, 4}, []Proposal{resumptionPSK(3)}, bob, nil, true),
			{Action: ResumptionPSKProposal, Actor: "alice", EpochID: 2}, {Action: ResumptionPSKProposal, Actor: "bob", EpochID: 3},
			full("alice", []int{6, 7}, []Proposal{resumptionPSK(4)}, bob, nil, true),
		},
		"all_together_alice_proposes": allTogether("alice"),
		"all_together_bob_proposes":   allTogether("bob"),
	}}
}

func externalJoin() Family {
	join := func(actor, joiner string, members []string, psks []int, removePrior, externalTree bool) Step {
		return Step{Action: ExternalJoin, Actor: actor, Joiner: joiner, Members: members, PSKs: psks, RemovePrior: removePrior, ExternalTree: externalTree}
	}
	return Family{Name: "external_join", Scripts: map[string]Script{
		"normal":             {create("alice"), join("alice", "bob", nil, nil, false, false)},
		"with_psk":           {create("alice"), psk("alice"), join("alice", "bob", nil, []int{1}, false, false)},
		"removing_prior":     {create("alice"), join("alice", "bob", nil, nil, false, false), join("alice", "bob", nil, nil, true, false)},
		"with_external_tree": {create("alice"), join("alice", "bob", nil, nil, false, true)},
		"with_more_members":  {create("alice", "bob", "charlie", "diana"), join("diana", "ellen", []string{"alice", "bob", "charlie"}, nil, false, false)},
	}}
}

func externalProposals() Family {
	bc := []string{"bob", "charlie"}
	full := func(refs []int, members, joiners []string) Step {
		return Step{Action: FullCommit, Actor: "alice", ByReference: refs, Members: members, Joiners: joiners}
	}
	signer := func(name string) Step { return Step{Action: AddExternalSigner, Actor: "alice", Signer: name} }
	propose := func(by string, d Proposal) Step {
		return Step{Action: ExternalSignerProposal, Actor: by, Member: "alice", Description: d}
	}
	return Family{Name: "external_proposals", Scripts: map[string]Script{
		"joiner_signed_add": {create("alice"), {Action: NewMemberAddProposal, Actor: "alice", Joiner: "bob"}, full([]int{1}, nil, []string{"bob"})},
		"external_add": {create("alice", "bob"), signer("ds"), full([]int{1}, []string{"bob"}, nil),
			keyPackage("charlie"), propose("ds", add(3)), full([]int{4}, []string{"bob"}, []string{"charlie"})},
		"external_remove": {create("alice", "bob", "charlie"), signer("ds"), full([]int{1}, bc, nil),
			propose("ds", remove("bob")), full([]int{3}, []string{"charlie"}, nil)},
		"external_psk": {create("alice", "bob", "charlie"), psk("alice", "bob", "charlie"), signer("ds"), full([]int{2}, bc, nil),
			propose("ds", externalPSK(1)), full([]int{4}, bc, nil)},
		"resumption_psk": {create("alice", "bob", "charlie"), signer("ds"), full([]int{1}, bc, nil),
			propose("ds", resumptionPSK(2)), full([]int{3}, bc, nil)},
		"group_context_extensions": {create("alice", "bob", "charlie"), signer("ds"), full([]int{1}, bc, nil),
			propose("ds", Proposal{Type: "groupContextExtensions", Extensions: []*pb.Extension{requiredCapabilities}}), full([]int{3}, bc, nil)},
		"multiple_external": {create("alice", "bob", "charlie"), psk("alice", "bob", "charlie"), psk("alice", "bob", "charlie"),
			signer("ds1"), full([]int{3}, bc, nil), signer("ds2"), full([]int{5}, bc, nil),
			propose("ds1", externalPSK(1)), propose("ds1", externalPSK(2)), full([]int{7, 8}, bc, nil)},
		"external_reinit": {create("alice", "bob", "charlie"), signer("ds"), full([]int{1}, bc, nil),
			propose("ds", Proposal{Type: "reinit", ChangeGroupID: true, ChangeCipherSuite: true, Extensions: []*pb.Extension{requiredCapabilities}}),
			{Action: ReInit, ExternalReinitProposal: 3, Committer: "alice", Welcomer: "bob", Members: []string{"charlie"}, ForcePath: true}},
	}}
}

func reinit() Family {
	five := func() Step { return create("alice", "bob", "charlie", "diana", "eliza") }
	ri := func(s Step) Script {
		s.Action = ReInit
		if s.Proposer == "" {
			s.Proposer, s.Committer, s.Welcomer, s.Members = "alice", "bob", "charlie", []string{"diana", "eliza"}
		}
		return Script{five(), s}
	}
	return Family{Name: "reinit", Scripts: map[string]Script{
		"change_ciphersuite": ri(Step{ChangeCipherSuite: true}),
		"change_group_id":    ri(Step{ChangeGroupID: true}),
		"change_extensions":  ri(Step{Extensions: bothExtensions}),
		"all_same_actor": ri(Step{Proposer: "alice", Committer: "alice", Welcomer: "alice",
			Members: []string{"bob", "charlie", "diana", "eliza"}, ChangeGroupID: true}),
		"external_tree": ri(Step{ChangeGroupID: true, ExternalTree: true}),
		"force_path":    ri(Step{ChangeGroupID: true, ForcePath: true}),
	}}
}

func branch() Family {
	members := []string{"bob", "charlie", "diana", "eliza"}
	br := func(s Step) Script {
		s.Action, s.Actor, s.Members = Branch, "alice", members
		return Script{create("alice", members...), s}
	}
	return Family{Name: "branch", Scripts: map[string]Script{
		"base":            br(Step{}),
		"with_extensions": br(Step{Extensions: bothExtensions}),
		"external_tree":   br(Step{ExternalTree: true}),
		"force_path":      br(Step{ForcePath: true}),
	}}
}

// DeepRandomParams shapes a deep_random session.
type DeepRandomParams struct {
	InitialSize, MaxSize, Commits int
	// PExternal is the probability of an external join instead of a
	// commit, PResync that such a join re-joins an existing member.
	PExternal, PResync float64
	// MaxAdds and the fractions bound one commit's proposals.
	MaxAdds                         int
	MaxFracUpdates, MaxFracRemovals float64
}

// OfficialDeepRandom are the test-runner's deep_random parameters.
var OfficialDeepRandom = DeepRandomParams{InitialSize: 100, MaxSize: 200, Commits: 100, PExternal: 0.1, PResync: 0.5,
	MaxAdds: 20, MaxFracUpdates: 0.4, MaxFracRemovals: 0.4}

// DeepRandom generates a deep_random session as the runner's generator
// does: an initial group built in one commit, then random commits of Adds
// and Removes by value and Updates by reference, and external joins (some
// of which re-join an existing member, removing its old leaf).
func DeepRandom(p DeepRandomParams, seed uint64) Script {
	rng := rand.New(rand.NewPCG(seed, 0xde))
	next := 0
	newActor := func() string { next++; return fmt.Sprintf("actor%d", next-1) }
	creator := newActor()
	s := Script{{Action: CreateGroup, Actor: creator}}
	var joiners []string
	var adds []Proposal
	for range p.InitialSize - 1 {
		j := newActor()
		adds = append(adds, add(len(s)))
		s = append(s, keyPackage(j))
		joiners = append(joiners, j)
	}
	s = append(s, Step{Action: FullCommit, Actor: creator, ByValue: adds, Joiners: joiners})
	actors := append([]string{creator}, joiners...)
	pick := func(from []string, n int) []string {
		c := slices.Clone(from)
		rng.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
		return c[:n]
	}
	without := func(from, drop []string) []string {
		return slices.DeleteFunc(slices.Clone(from), func(a string) bool { return slices.Contains(drop, a) })
	}
	for range p.Commits {
		if rng.Float64() <= p.PExternal && len(actors) > 1 {
			resync := rng.Float64() <= p.PResync
			var joiner string
			if resync {
				joiner = actors[rng.IntN(len(actors))]
			} else {
				joiner = newActor()
			}
			eligible := without(actors, []string{joiner})
			adder := eligible[rng.IntN(len(eligible))]
			s = append(s, Step{Action: ExternalJoin, Actor: adder, Joiner: joiner, RemovePrior: resync, Members: without(eligible, []string{adder})})
			if !resync {
				actors = append(actors, joiner)
			}
			continue
		}
		n := len(actors)
		nAdd := rng.IntN(min(p.MaxAdds, p.MaxSize-n) + 1)
		nRemove := rng.IntN(int(p.MaxFracRemovals*float64(n)) + 1)
		nUpdate := rng.IntN(int(p.MaxFracUpdates*float64(n)) + 1)
		leavers := pick(actors, nRemove)
		remainers := without(actors, leavers)
		if nUpdate >= len(remainers) {
			nUpdate = len(remainers) - 1
		}
		updaters := pick(remainers, nUpdate)
		eligible := without(remainers, updaters)
		var refs []int
		for _, u := range updaters {
			refs = append(refs, len(s))
			s = append(s, Step{Action: UpdateProposal, Actor: u})
		}
		var byValue []Proposal
		var newJoiners []string
		for range nAdd {
			j := newActor()
			byValue = append(byValue, add(len(s)))
			s = append(s, keyPackage(j))
			newJoiners = append(newJoiners, j)
		}
		for _, l := range leavers {
			byValue = append(byValue, remove(l))
		}
		committer := eligible[rng.IntN(len(eligible))]
		s = append(s, Step{Action: FullCommit, Actor: committer, ByValue: byValue, ByReference: refs, Joiners: newJoiners,
			Members: without(remainers, []string{committer})})
		actors = append(remainers, newJoiners...)
	}
	return s
}
