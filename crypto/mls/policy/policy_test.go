package policy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

func standard(t testing.TB) *RoomPolicy {
	t.Helper()
	p, err := New(map[string]uint8{mod: RoleModerator, doc: RoleDoctor, pat: RolePatient, bot: RoleBot})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyRoundTripsCanonically(t *testing.T) {
	p := standard(t)
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	q, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := q.Marshal()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding differs: %v", err)
	}
	r, ok := q.RoleOf(pat)
	if !ok || r.Name != "patient" || r.Has(AddParticipant) || !r.Has(AddOwnClient) {
		t.Fatalf("patient role %+v", r)
	}
	if _, ok := q.RoleOf(nurse); ok {
		t.Fatal("an unlisted user has a role")
	}
	if r, _ := q.RoleOf(bot); r.Has(RemoveParticipant) || r.Has(RemoveOwnClient) || r.Has(AddOwnClient) {
		t.Fatalf("bot may do something: %+v", r)
	}
	if r, _ := q.RoleOf(mod); !r.Has(UpdatePolicy) || !containsRole(r.AddableRoles, RolePatient) {
		t.Fatalf("moderator role %+v", r)
	}
	// WithParticipant keeps the list sorted, so the encoding stays valid.
	if _, err := q.WithParticipant("@aaa:x", RoleNurse).WithoutParticipant(doc).Marshal(); err != nil {
		t.Fatal(err)
	}
	if _, ok := q.RoleOf("@aaa:x"); ok {
		t.Fatal("WithParticipant modified its receiver")
	}
}

// encode writes a policy without validating it, to build invalid inputs.
func encode(v uint8, roles []Role, parts []Participant) []byte {
	var w codec.Writer
	p := &RoomPolicy{Roles: roles, Participants: parts}
	p.MarshalMLS(&w)
	b, _ := w.Bytes()
	b[0] = v
	return b
}

func TestParseRefusesMalformedPolicies(t *testing.T) {
	roles := StandardRoles()
	parts := []Participant{{doc, RoleDoctor}, {mod, RoleModerator}}
	valid := encode(1, roles, parts)
	if _, err := Parse(valid); err != nil {
		t.Fatalf("valid policy refused: %v", err)
	}
	many := make([]Role, MaxRoles+1)
	for i := range many {
		many[i] = Role{Index: uint8(i + 1), Name: fmt.Sprint("r", i)}
	}
	for name, b := range map[string][]byte{
		"empty":                    nil,
		"version 2":                encode(2, roles, parts),
		"trailing byte":            append(bytes.Clone(valid), 0),
		"truncated":                valid[:len(valid)-1],
		"no roles":                 encode(1, nil, nil),
		"too many roles":           encode(1, many, nil),
		"role index zero":          encode(1, []Role{{Index: 0, Name: "x"}}, nil),
		"roles not ascending":      encode(1, []Role{{Index: 2, Name: "a"}, {Index: 1, Name: "b"}}, nil),
		"duplicate role name":      encode(1, []Role{{Index: 1, Name: "a"}, {Index: 2, Name: "a"}}, nil),
		"upper-case role name":     encode(1, []Role{{Index: 1, Name: "Admin"}}, nil),
		"empty role name":          encode(1, []Role{{Index: 1, Name: ""}}, nil),
		"long role name":           encode(1, []Role{{Index: 1, Name: strings.Repeat("a", MaxNameLen+1)}}, nil),
		"unknown capability":       encode(1, []Role{{Index: 1, Name: "a", Capabilities: []Capability{9}}}, nil),
		"capabilities unsorted":    encode(1, []Role{{Index: 1, Name: "a", Capabilities: []Capability{2, 1}}}, nil),
		"duplicate capability":     encode(1, []Role{{Index: 1, Name: "a", Capabilities: []Capability{1, 1}}}, nil),
		"undefined addable role":   encode(1, []Role{{Index: 1, Name: "a", AddableRoles: []uint8{7}}}, nil),
		"participants unsorted":    encode(1, roles, []Participant{{mod, RoleModerator}, {doc, RoleDoctor}}),
		"duplicate participant":    encode(1, roles, []Participant{{doc, RoleDoctor}, {doc, RoleNurse}}),
		"undefined role":           encode(1, roles, []Participant{{doc, 9}}),
		"empty user id":            encode(1, roles, []Participant{{"", RoleDoctor}}),
		"user id with a space":     encode(1, roles, []Participant{{"@a b:c", RoleDoctor}}),
		"user id too long":         encode(1, roles, []Participant{{strings.Repeat("u", MaxUserIDLen+1), RoleDoctor}}),
		"non-minimal length":       append([]byte{1, 0x40, 0x00}, valid[2:]...),
		"vector longer than input": {1, 0x7f, 0xff},
	} {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := Parse(make([]byte, MaxEncodedSize+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized input: %v", err)
	}
}

func TestFromExtensionsNeedsThePolicy(t *testing.T) {
	if _, err := FromExtensions(nil); !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("no extensions: %v", err)
	}
	p := standard(t)
	exts, err := p.ReplaceIn(nil)
	if err != nil {
		t.Fatal(err)
	}
	exts, err = p.WithParticipant(nurse, RoleNurse).ReplaceIn(exts)
	if err != nil || len(exts) != 1 {
		t.Fatalf("ReplaceIn: %d extensions, %v", len(exts), err)
	}
	q, err := FromExtensions(exts)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := q.RoleOf(nurse); !ok || r.Index != RoleNurse {
		t.Fatal("replaced policy lost the new participant")
	}
}

// FuzzParse checks that Parse never panics and that whatever it accepts is
// the canonical encoding of the policy (re-encodes to the same bytes).
func FuzzParse(f *testing.F) {
	f.Add(encode(1, StandardRoles(), []Participant{{doc, RoleDoctor}, {mod, RoleModerator}}))
	f.Add(encode(1, StandardRoles(), nil))
	f.Add(encode(1, []Role{{Index: 1, Name: "a", Capabilities: []Capability{1, 2}, AddableRoles: []uint8{1}}}, []Participant{{"@x:y", 1}}))
	f.Add(encode(2, StandardRoles(), nil))
	f.Add([]byte{1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("accepted policy does not re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("accepted a non-canonical encoding:\n in %x\nout %x", b, out)
		}
	})
}
