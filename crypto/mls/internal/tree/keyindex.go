package tree

import "maps"

// keyIndex maps key bytes to a node index with cheap copies: a base map
// shared between clones and never modified once shared, plus a private
// delta of changes (deleted entries marked -1). Clone copies only the
// delta, so cloning a tree of n members costs O(changes since the last
// flattening), not O(n). When the delta grows past a quarter of the base it
// is folded into a fresh base map.
type keyIndex struct {
	base  map[string]uint32 // read-only once the index has been cloned
	delta map[string]int64  // overrides of base; -1 = deleted
}

func newKeyIndex() *keyIndex {
	return &keyIndex{base: map[string]uint32{}, delta: map[string]int64{}}
}

func (k *keyIndex) get(key []byte) (uint32, bool) {
	if v, ok := k.delta[string(key)]; ok {
		if v < 0 {
			return 0, false
		}
		return uint32(v), true
	}
	v, ok := k.base[string(key)]
	return v, ok
}

func (k *keyIndex) set(key []byte, v uint32) { k.delta[string(key)] = int64(v) }

func (k *keyIndex) del(key []byte) {
	if _, inBase := k.base[string(key)]; inBase {
		k.delta[string(key)] = -1
	} else {
		delete(k.delta, string(key))
	}
}

// flatten folds the delta into a new base map (the old one may be shared).
func (k *keyIndex) flatten() {
	base := make(map[string]uint32, len(k.base)+len(k.delta))
	maps.Copy(base, k.base)
	for key, v := range k.delta {
		if v < 0 {
			delete(base, key)
		} else {
			base[key] = uint32(v)
		}
	}
	k.base, k.delta = base, map[string]int64{}
}

// clone returns an independent index; it may first flatten k.
func (k *keyIndex) clone() *keyIndex {
	if len(k.delta) > len(k.base)/4+64 {
		k.flatten()
	}
	return &keyIndex{base: k.base, delta: maps.Clone(k.delta)}
}
