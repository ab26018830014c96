package sframe_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls"
	"github.com/medicus-health/medicus/crypto/sframe"
)

// TestKIDLayoutMatchesRFCFigure checks KID assignment against the example
// sequence of RFC 9605 §5.2, Figure 7 (E=4, S=6).
func TestKIDLayoutMatchesRFCFigure(t *testing.T) {
	m, err := sframe.NewMLSContext(sframe.AES128GCMSHA256_128, sframe.MLSConfig{EpochBits: 4, IndexBits: 6})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		epoch   uint64
		index   uint32
		context uint64
		kid     uint64
	}{
		{14, 3, 0, 0x3e}, {14, 7, 0, 0x7e}, {14, 20, 0, 0x14e},
		{15, 3, 0, 0x3f}, {15, 5, 0, 0x5f},
		{16, 2, 2, 0x820}, {16, 2, 3, 0xc20},
		{17, 33, 0, 0x211}, {17, 51, 0, 0x331},
	} {
		kid, err := m.KID(c.epoch, c.index, c.context)
		if err != nil || kid != c.kid {
			t.Errorf("epoch %d index %d context %d: KID %#x, %v; want %#x", c.epoch, c.index, c.context, kid, err, c.kid)
		}
		e, i, ctx := m.SplitKID(kid)
		if e != c.epoch%16 || i != c.index || ctx != c.context {
			t.Errorf("SplitKID(%#x) = %d, %d, %d", kid, e, i, ctx)
		}
	}
	if _, err := m.KID(1, 64, 0); !errors.Is(err, sframe.ErrIndexRange) {
		t.Fatalf("index 64 with S=6: %v", err)
	}
}

type member struct {
	name  string
	group *mls.Group
	keys  *sframe.MLSContext
}

func newMember(t *testing.T, name string, g *mls.Group) *member {
	t.Helper()
	m, err := sframe.NewMLSContext(sframe.AES128CTRHMACSHA256_80, sframe.MLSConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddEpoch(g); err != nil {
		t.Fatal(err)
	}
	return &member{name: name, group: g, keys: m}
}

var suite = mls.CipherSuite(0x0001)

func credential(name string) mls.Credential {
	return mls.Credential{CredentialType: mls.CredentialBasic, Identity: []byte(name)}
}

// TestMLSKeysChangeWhenAMemberIsRemoved runs real MLS groups: three members
// exchange SFrame-encrypted frames in epoch 1; after Carol is removed, the
// others move to epoch 2 and Carol can no longer decrypt their frames.
func TestMLSKeysChangeWhenAMemberIsRemoved(t *testing.T) {
	aliceSig, _, _ := mls.GenerateSignatureKey(suite)
	alice, err := mls.CreateGroup(nil, []byte("call-room"), suite, credential("alice"), aliceSig, nil)
	if err != nil {
		t.Fatal(err)
	}
	var adds []*mls.Proposal
	type joiner struct {
		kp   []byte
		priv *mls.KeyPackagePrivate
	}
	var joiners []joiner
	for _, name := range []string{"bob", "carol"} {
		sig, _, _ := mls.GenerateSignatureKey(suite)
		kp, priv, err := mls.NewKeyPackage(suite, credential(name), sig, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := mls.AddProposal(kp)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, p)
		joiners = append(joiners, joiner{kp, priv})
	}
	out, err := alice.Commit(&mls.CommitOptions{Proposals: adds, InlineTree: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	members := []*member{newMember(t, "alice", alice)}
	for i, name := range []string{"bob", "carol"} {
		g, err := mls.JoinFromWelcome(nil, out.Welcome, joiners[i].kp, joiners[i].priv, nil)
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, newMember(t, name, g))
	}
	a, b, c := members[0], members[1], members[2]

	// Everyone decrypts everyone else's frames and learns the sender index.
	for _, sender := range members {
		frame := []byte("frame of " + sender.name)
		ct, err := sender.keys.Encrypt(nil, nil, frame)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(ct, frame) {
			t.Fatal("ciphertext contains the plaintext")
		}
		for _, r := range members {
			if r == sender {
				continue
			}
			pt, h, err := r.keys.Decrypt(nil, nil, ct)
			if err != nil || !bytes.Equal(pt, frame) {
				t.Fatalf("%s decrypting %s: %q %v", r.name, sender.name, pt, err)
			}
			epochBits, index, _ := r.keys.SplitKID(h.KID)
			if index != sender.group.LeafIndex() || epochBits != 1 {
				t.Fatalf("KID %#x: index %d epoch bits %d", h.KID, index, epochBits)
			}
		}
	}
	kidBefore, _ := a.keys.SendKID()

	// Alice removes Carol; Bob processes the commit. Carol is left behind.
	rm, err := a.group.Commit(&mls.CommitOptions{Proposals: []*mls.Proposal{mls.RemoveProposal(c.group.LeafIndex())}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.group.MergePendingCommit(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.group.ProcessMessage(rm.Commit); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*member{a, b} {
		if err := m.keys.AddEpoch(m.group); err != nil {
			t.Fatal(err)
		}
	}
	kidAfter, _ := a.keys.SendKID()
	if kidAfter == kidBefore {
		t.Fatalf("send KID did not change with the epoch: %#x", kidAfter)
	}
	if epoch := alice.Epoch(); epoch != 2 {
		t.Fatalf("epoch %d", epoch)
	}

	ct, err := a.keys.Encrypt(nil, nil, []byte("after removal"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, _, err := b.keys.Decrypt(nil, nil, ct); err != nil || string(pt) != "after removal" {
		t.Fatalf("bob in epoch 2: %q %v", pt, err)
	}
	if _, _, err := c.keys.Decrypt(nil, nil, ct); !errors.Is(err, sframe.ErrUnknownKID) {
		t.Fatalf("removed carol decrypting an epoch-2 frame: %v", err)
	}
	// Even if Carol guessed the KID and used her last epoch's base key for
	// it, authentication fails: the base key changed.
	old, _ := c.group.Export(sframe.BaseKeyLabel, nil, 48)
	guess, _ := sframe.NewContext(sframe.AES128CTRHMACSHA256_80)
	h, _, _ := sframe.ParseHeader(ct)
	guess.AddReceiveKey(h.KID, old)
	if _, _, err := guess.Decrypt(nil, nil, ct); !errors.Is(err, sframe.ErrAuthentication) {
		t.Fatalf("old base key on the new KID: %v", err)
	}
}

// TestMLSEpochRollover checks the §5.2 rule: adding an epoch with the same
// low-order bits as a held one removes the old epoch and its keys.
func TestMLSEpochRollover(t *testing.T) {
	s := sframe.AES128GCMSHA256_128
	sender, _ := sframe.NewMLSContext(s, sframe.MLSConfig{EpochBits: 2})
	receiver, _ := sframe.NewMLSContext(s, sframe.MLSConfig{EpochBits: 2})
	key := func(epoch byte) []byte { return bytes.Repeat([]byte{epoch}, 16) }
	sender.AddEpochKey(1, 0, key(1))
	receiver.AddEpochKey(1, 1, key(1))
	ct1, _ := sender.Encrypt(nil, nil, []byte("epoch 1"))
	if _, _, err := receiver.Decrypt(nil, nil, ct1); err != nil {
		t.Fatal(err)
	}
	receiver.AddEpochKey(5, 1, key(5)) // 5 % 4 == 1: epoch 1 goes
	if got := receiver.Epochs(); len(got) != 1 || got[0] != 5 {
		t.Fatalf("epochs after rollover: %v", got)
	}
	ct1b, _ := sender.Encrypt(nil, nil, []byte("epoch 1 again"))
	if _, _, err := receiver.Decrypt(nil, nil, ct1b); !errors.Is(err, sframe.ErrAuthentication) {
		t.Fatalf("a frame of the dropped epoch: %v", err)
	}
	// Own KIDs are never accepted for receiving.
	own, _ := receiver.Encrypt(nil, nil, []byte("mine"))
	if _, _, err := receiver.Decrypt(nil, nil, own); !errors.Is(err, sframe.ErrUnknownKID) {
		t.Fatalf("own frame: %v", err)
	}
}

// epochKey is an Exporter of a fixed epoch whose exporter output is key.
type epochKey struct {
	epoch uint64
	index uint32
	key   []byte
}

func (e epochKey) Epoch() uint64     { return e.epoch }
func (e epochKey) LeafIndex() uint32 { return e.index }
func (e epochKey) Export(label string, _ []byte, n int) ([]byte, error) {
	if label != sframe.BaseKeyLabel || n != len(e.key) {
		return nil, errors.New("unexpected export")
	}
	return bytes.Clone(e.key), nil
}

// TestMLSStagedEpochRollout: a member adds a new epoch for receiving only
// and keeps sending in the old one until it switches with SendEpoch.
func TestMLSStagedEpochRollout(t *testing.T) {
	s := sframe.AES128GCMSHA256_128
	key := func(epoch byte) []byte { return bytes.Repeat([]byte{epoch}, 16) }
	a, _ := sframe.NewMLSContext(s, sframe.MLSConfig{})
	b, _ := sframe.NewMLSContext(s, sframe.MLSConfig{})
	a.AddEpoch(epochKey{1, 0, key(1)})
	b.AddEpoch(epochKey{1, 1, key(1)})
	if err := b.AddReceiveEpoch(epochKey{2, 1, key(2)}); err != nil {
		t.Fatal(err)
	}
	ct, _ := b.Encrypt(nil, nil, []byte("still epoch 1"))
	if _, _, err := a.Decrypt(nil, nil, ct); err != nil {
		t.Fatalf("a, holding epoch 1 only, decrypting b's frame: %v", err)
	}
	// a moves to epoch 2 and sends in it at once: b can already decrypt.
	a.AddEpoch(epochKey{2, 0, key(2)})
	ct, _ = a.Encrypt(nil, nil, []byte("epoch 2"))
	if _, _, err := b.Decrypt(nil, nil, ct); err != nil {
		t.Fatalf("b, receiving in epoch 2: %v", err)
	}
	if err := b.SendEpoch(3); !errors.Is(err, sframe.ErrUnknownKID) {
		t.Fatalf("switching to an epoch not held: %v", err)
	}
	if err := b.SendEpoch(2); err != nil {
		t.Fatal(err)
	}
	ct, _ = b.Encrypt(nil, nil, []byte("b in epoch 2"))
	if h, _, _ := sframe.ParseHeader(ct); h.KID != 1<<4|2 {
		t.Fatalf("KID %#x after SendEpoch(2)", h.KID)
	}
	if _, _, err := a.Decrypt(nil, nil, ct); err != nil {
		t.Fatalf("a decrypting b's epoch-2 frame: %v", err)
	}
}
