package wire

import (
	"runtime"
	"testing"

	"github.com/medicus-health/medicus/crypto/mls/internal/codec"
)

// Bounds on memory per input byte for the worst-case inputs below. Go values
// of slices and pointers are larger than their minimal encodings (an empty
// opaque is one byte on the wire, a 24-byte slice header in memory), so some
// ratio is inherent; the test keeps it bounded by constants. maxRetained
// bounds the decoded value that stays live; maxAllocated bounds everything
// allocated while decoding, including the garbage of growing slices.
const (
	maxRetained  = 48
	maxAllocated = 192
)

// TestDecodeMemoryIsProportionalToInput decodes inputs made of the smallest
// possible vector elements, the worst case for memory per input byte, and
// checks the memory decoding takes per input byte.
func TestDecodeMemoryIsProportionalToInput(t *testing.T) {
	const elems = 20000
	cases := map[string]struct {
		build func(w *codec.Writer)
		v     func() codec.Unmarshaler
	}{
		"commit of empty references": {func(w *codec.Writer) {
			w.WriteVector(func(w *codec.Writer) {
				for range min(elems, MaxProposalsPerCommit) {
					w.WriteUint8(uint8(ProposalOrRefTypeReference))
					w.WriteOpaque(nil)
				}
			})
			w.WriteOptional(false, nil)
		}, func() codec.Unmarshaler { return &Commit{} }},
		"update path of empty ciphertexts": {func(w *codec.Writer) {
			leaf := sampleLeaf(LeafNodeSourceCommit)
			leaf.MarshalMLS(w)
			w.WriteVector(func(w *codec.Writer) {
				w.WriteOpaque(nil)
				w.WriteVector(func(w *codec.Writer) {
					for range elems {
						w.WriteOpaque(nil)
						w.WriteOpaque(nil)
					}
				})
			})
		}, func() codec.Unmarshaler { return &UpdatePath{} }},
		"ratchet tree of blank and empty parent nodes": {func(w *codec.Writer) {
			w.WriteVector(func(w *codec.Writer) {
				for i := range elems {
					if i%2 == 0 {
						w.WriteUint8(0)
						continue
					}
					w.WriteUint8(1)
					(&Node{NodeType: NodeTypeParent, ParentNode: &ParentNode{}}).MarshalMLS(w)
				}
			})
		}, func() codec.Unmarshaler { return &RatchetTree{} }},
		"welcome of empty secrets": {func(w *codec.Writer) {
			w.WriteUint16(1)
			w.WriteVector(func(w *codec.Writer) {
				for range elems {
					(&EncryptedGroupSecrets{}).MarshalMLS(w)
				}
			})
			w.WriteOpaque(nil)
		}, func() codec.Unmarshaler { return &Welcome{} }},
		"group secrets of empty psks": {func(w *codec.Writer) {
			w.WriteOpaque(nil)
			w.WriteOptional(false, nil)
			w.WriteVector(func(w *codec.Writer) {
				for range elems {
					(&PreSharedKeyID{PSKType: PSKTypeExternal}).MarshalMLS(w)
				}
			})
		}, func() codec.Unmarshaler { return &GroupSecrets{} }},
	}
	for name, c := range cases {
		var w codec.Writer
		c.build(&w)
		input, err := w.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		v := c.v()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err = codec.Unmarshal(input, v)
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(v)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		allocated := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(input))
		retained := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(len(input))
		t.Logf("%s: %d input bytes; per input byte %.1f bytes retained, %.1f allocated", name, len(input), retained, allocated)
		if retained > maxRetained {
			t.Errorf("%s: decoded value holds %.1f bytes per input byte, more than %d", name, retained, maxRetained)
		}
		if allocated > maxAllocated {
			t.Errorf("%s: decoding allocated %.1f bytes per input byte, more than %d", name, allocated, maxAllocated)
		}
	}
}
