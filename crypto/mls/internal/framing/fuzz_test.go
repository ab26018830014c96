package framing

import (
	"bytes"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
	"github.com/medicus-health/medicus/crypto/mls/internal/secrettree"
	"github.com/medicus-health/medicus/crypto/mls/internal/wire"
)

// FuzzUnprotect feeds arbitrary bytes, decoded as an MLSMessage, to
// Epoch.Unprotect. Seeds are genuine Public and PrivateMessages of every
// content type. Nothing but the seeds themselves may authenticate: any
// accepted message must be byte-identical to a seed, and nothing may panic.
func FuzzUnprotect(f *testing.F) {
	p := newPair(f, 1)
	tag := bytes.Repeat([]byte{9}, p.suite.Nh())
	var seeds [][]byte
	for _, wf := range []wire.WireFormat{wire.WireFormatPublicMessage, wire.WireFormatPrivateMessage} {
		for _, ct := range []wire.ContentType{wire.ContentTypeApplication, wire.ContentTypeProposal, wire.ContentTypeCommit} {
			if wf == wire.WireFormatPublicMessage && ct == wire.ContentTypeApplication {
				continue
			}
			// Each seed at generation 0 of its ratchet, so that a fresh
			// receiver accepts it.
			from := *p.from
			from.SecretTree = secrettree.New(p.suite, bytes.Repeat([]byte{3}, p.suite.Nh()), 4)
			m, err := from.Protect(p.signer, wf, p.content(ct, 2), tag)
			if err != nil {
				f.Fatal(err)
			}
			b, err := codec.Marshal(m)
			if err != nil {
				f.Fatal(err)
			}
			seeds = append(seeds, b)
			f.Add(b)
		}
	}
	f.Add([]byte{0, 1, 0, 2})
	f.Add([]byte{0, 1, 0, 1, 5, 'g', 'r', 'o', 'u', 'p'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m wire.MLSMessage
		if err := codec.Unmarshal(b, &m); err != nil {
			return
		}
		e := *p.to
		e.SecretTree = secrettree.New(p.suite, bytes.Repeat([]byte{3}, p.suite.Nh()), 4)
		if _, err := e.Unprotect(&m, p.keys); err != nil {
			return
		}
		for _, s := range seeds {
			if bytes.Equal(s, b) {
				return
			}
		}
		// A re-encoding may differ only in non-minimal varints, which
		// decode to the same message; compare the canonical form.
		canon, err := codec.Marshal(&m)
		if err != nil {
			t.Fatalf("accepted message does not re-encode: %v", err)
		}
		for _, s := range seeds {
			if bytes.Equal(s, canon) {
				return
			}
		}
		t.Fatalf("accepted a message that is not one of the genuine seeds: %x", b)
	})
}

// FuzzPrivateMessageContent decodes arbitrary bytes as the plaintext of a
// PrivateMessage of each content type, as UnprotectPrivate does after
// decryption; it must fail cleanly on anything malformed.
func FuzzPrivateMessageContent(f *testing.F) {
	p := newPair(f, 1)
	for _, ct := range []wire.ContentType{wire.ContentTypeApplication, wire.ContentTypeProposal, wire.ContentTypeCommit} {
		c := p.content(ct, 2)
		pmc := wire.PrivateMessageContent{ContentType: ct, ApplicationData: c.ApplicationData, Proposal: c.Proposal, Commit: c.Commit,
			Auth: wire.FramedContentAuthData{Signature: []byte("sig"), ConfirmationTag: []byte("tag")}, Padding: 8}
		b, err := codec.Marshal(&pmc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(ct), b)
	}
	f.Fuzz(func(t *testing.T, ct uint8, b []byte) {
		if ct < 1 || ct > 3 {
			return
		}
		pmc := wire.PrivateMessageContent{ContentType: wire.ContentType(ct)}
		if err := codec.Unmarshal(b, &pmc); err != nil {
			return
		}
		msg := &wire.PrivateMessage{GroupID: []byte("group"), Epoch: 7, ContentType: wire.ContentType(ct)}
		fc := pmc.FramedContent(msg, 2)
		if _, err := codec.Marshal(&fc); err != nil {
			t.Fatalf("decoded content does not re-encode: %v", err)
		}
	})
}
