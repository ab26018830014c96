package hub

import (
	"testing"

	"github.com/medicus-health/medicus/proto"
)

func events(from, to int64) []proto.Event {
	var evs []proto.Event
	for s := from; s <= to; s++ {
		evs = append(evs, proto.Event{Stream: s, RoomID: "!r:x", Seq: s})
	}
	return evs
}

func TestSinceReturnsContiguousEventsAfterCursor(t *testing.T) {
	h := New(4, 10)
	if got, ok := h.Since(nil, 10, 100); !ok || len(got) != 0 {
		t.Fatalf("Since(latest) = %d entries, ok=%v; want none, true", len(got), ok)
	}
	if _, ok := h.Since(nil, 5, 100); ok {
		t.Fatal("Since(before start) with empty ring reported ok")
	}
	h.Publish(events(11, 13))
	got, ok := h.Since(nil, 11, 100)
	if !ok || len(got) != 2 || got[0].Event.Stream != 12 || got[1].Event.Stream != 13 {
		t.Fatalf("Since(11) = %+v, %v", got, ok)
	}
	if string(got[0].JSON) == "" {
		t.Fatal("entry has no JSON")
	}
	// Overflow the ring: the oldest entries leave it.
	h.Publish(events(14, 16))
	if _, ok := h.Since(nil, 11, 100); ok {
		t.Fatal("Since(11) after overflow reported ok; events 12 are gone")
	}
	got, ok = h.Since(nil, 12, 2)
	if !ok || len(got) != 2 || got[0].Event.Stream != 13 {
		t.Fatalf("Since(12, limit 2) = %+v, %v", got, ok)
	}
}

func TestWakeCoalescesAndNotifiesDevice(t *testing.T) {
	h := New(8, 0)
	a := h.Subscribe("@a:x", "D1")
	b := h.Subscribe("@b:x", "D2")
	h.Publish(events(1, 1))
	h.Publish(events(2, 2))
	for _, s := range []*Subscription{a, b} {
		select {
		case <-s.C:
		default:
			t.Fatal("subscriber not woken")
		}
		select {
		case <-s.C:
			t.Fatal("wake-ups did not coalesce")
		default:
		}
	}
	h.NotifyDevice("@b:x", "D2")
	if a.TakeDeviceMessageFlag() {
		t.Fatal("wrong device flagged")
	}
	if !b.TakeDeviceMessageFlag() || b.TakeDeviceMessageFlag() {
		t.Fatal("device flag not set exactly once")
	}
	h.Unsubscribe(a)
	h.Publish(events(3, 3))
	select {
	case <-a.C:
		t.Fatal("unsubscribed subscriber woken")
	default:
	}
}

func TestNewConnectionReplacesOlderOfSameDevice(t *testing.T) {
	h := New(4, 0)
	old := h.Subscribe("@a:x", "D1")
	other := h.Subscribe("@a:x", "D2")
	h.Subscribe("@a:x", "D1")
	select {
	case <-old.C:
	default:
		t.Fatal("older connection of the device was not woken")
	}
	if !old.Replaced() || other.Replaced() {
		t.Fatalf("replaced: old %v, other device %v; want true, false", old.Replaced(), other.Replaced())
	}
}

func TestRevokeMarksOnlyThatDevice(t *testing.T) {
	h := New(4, 0)
	a, b := h.Subscribe("@a:x", "D1"), h.Subscribe("@a:x", "D2")
	h.Revoke("@a:x", "D1")
	if !a.Revoked() || b.Revoked() {
		t.Fatalf("revoked: D1 %v, D2 %v; want true, false", a.Revoked(), b.Revoked())
	}
	h.Revoke("@a:x", "")
	if !b.Revoked() {
		t.Fatal("revoking all devices left D2")
	}
}
