// Package hub fans out newly committed room events to the sync connections of
// a homeserver. It keeps the most recent events, already encoded in both
// sync forms (JSON and the binary record of proto.SyncSubprotocolBinary), in
// a fixed-size ring, so that connected devices read new events from memory
// and each event is encoded once however many devices receive it.
//
// The hub never pushes events into a connection: it only wakes subscribers,
// which then pull from the ring by their own cursor. A slow subscriber
// therefore never blocks the others or grows memory; if it falls behind the
// ring, Since reports so and it catches up from the store.
package hub

import (
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/medicus-health/medicus/proto"
)

// Entry is an event with its encodings. Event holds everything but the
// body, which only the encodings carry, so that the ring does not hold each
// body three times.
type Entry struct {
	Event proto.Event
	// JSON is the event as a JSON object.
	JSON []byte
	// Record is the event's binary record (proto.AppendEventRecord).
	Record []byte
}

// Hub is safe for concurrent use.
type Hub struct {
	mu    sync.Mutex
	ring  []Entry // circular buffer of the newest events
	head  int     // index of the oldest entry
	count int
	last  int64 // stream position of the newest event published or known at start
	subs  map[*Subscription]struct{}
}

// Subscription wakes one sync connection.
type Subscription struct {
	// C receives a value when there may be something new. It has a buffer of
	// one, so wake-ups coalesce.
	C        chan struct{}
	user     string
	device   string
	dm       atomic.Bool
	revoked  atomic.Bool
	replaced atomic.Bool
}

// Replaced reports whether a newer connection of the same device
// subscribed; this one must close, so a device holds one connection.
func (s *Subscription) Replaced() bool { return s.replaced.Load() }

// Revoked reports whether the subscriber's device was revoked; its
// connection must close.
func (s *Subscription) Revoked() bool { return s.revoked.Load() }

// TakeDeviceMessageFlag reports whether device messages were queued for the
// subscriber since the last call, and clears the flag.
func (s *Subscription) TakeDeviceMessageFlag() bool { return s.dm.Swap(false) }

// New returns a hub keeping the newest capacity events, where last is the
// newest stream position already in the store.
func New(capacity int, last int64) *Hub {
	if capacity < 1 {
		capacity = 1
	}
	return &Hub{ring: make([]Entry, capacity), last: last, subs: make(map[*Subscription]struct{})}
}

// Subscribe registers a connection of a user's device. Older connections
// of the same device are marked replaced and woken.
func (h *Hub) Subscribe(user, device string) *Subscription {
	s := &Subscription{C: make(chan struct{}, 1), user: user, device: device}
	h.mu.Lock()
	defer h.mu.Unlock()
	for old := range h.subs {
		if old.user == user && old.device == device {
			old.replaced.Store(true)
			wake(old)
		}
	}
	h.subs[s] = struct{}{}
	return s
}

// Unsubscribe removes a subscription.
func (h *Hub) Unsubscribe(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

func wake(s *Subscription) {
	select {
	case s.C <- struct{}{}:
	default:
	}
}

// Publish adds committed events, which must continue the stream in order,
// and wakes all subscribers. It does not retain evs.
func (h *Hub) Publish(evs []proto.Event) {
	entries := make([]Entry, len(evs))
	for i := range evs {
		ev := &evs[i]
		b, err := json.Marshal(ev)
		if err != nil {
			// proto.Event always encodes; keep the entry so the stream has no hole.
			b = []byte("{}")
		}
		entries[i] = Entry{Event: *ev, JSON: b, Record: proto.AppendEventRecord(nil, ev)}
		entries[i].Event.Body = nil
	}
	h.mu.Lock()
	for _, e := range entries {
		idx := (h.head + h.count) % len(h.ring)
		if h.count == len(h.ring) {
			h.head = (h.head + 1) % len(h.ring)
		} else {
			h.count++
		}
		h.ring[idx] = e
		h.last = e.Event.Stream
	}
	for s := range h.subs {
		wake(s)
	}
	h.mu.Unlock()
}

// NotifyDevice wakes the connections of one device because device messages
// were queued for it.
func (h *Hub) NotifyDevice(user, device string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.user == user && s.device == device {
			s.dm.Store(true)
			wake(s)
		}
	}
}

// Revoke marks the connections of a user's device (of all the user's
// devices if device is empty) as revoked and wakes them.
func (h *Hub) Revoke(user, device string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		if s.user == user && (device == "" || s.device == device) {
			s.revoked.Store(true)
			wake(s)
		}
	}
}

// WakeAll wakes every subscriber, e.g. at shutdown.
func (h *Hub) WakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		wake(s)
	}
}

// Last returns the newest stream position the hub knows.
func (h *Hub) Last() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// Since returns up to limit entries with stream > cursor, in order,
// appended to dst (which it may reuse; pass dst[:0] to avoid allocating).
// ok is false if entries after cursor have already left the ring, in which
// case the caller reads them from the store.
func (h *Hub) Since(dst []Entry, cursor int64, limit int) (entries []Entry, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cursor >= h.last {
		return dst, true
	}
	if h.count == 0 {
		return dst, false
	}
	oldest := h.ring[h.head].Event.Stream
	if cursor < oldest-1 {
		return dst, false
	}
	// Streams in the ring are contiguous, so the offset is arithmetic.
	start := int(cursor - oldest + 1)
	n := min(h.count-start, limit)
	for i := range n {
		dst = append(dst, h.ring[(h.head+start+i)%len(h.ring)])
	}
	return dst, true
}
