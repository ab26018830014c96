package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

func sampleEvents() []Event {
	ts := time.UnixMilli(1_795_000_000_123).UTC()
	return []Event{
		{RoomID: "!abcdefghijklmnop:hub.example", Seq: 1, Stream: 7, Sender: "@alice:hub.example", DeviceID: "DEV1", Kind: KindMember, Time: ts,
			Member: &MembershipChange{UserID: "@alice:hub.example", Membership: MembershipJoin, RoomRole: RoomRoleModerator, By: "@alice:hub.example"}},
		{RoomID: "!abcdefghijklmnop:hub.example", Seq: 2, Stream: 8, Sender: "@alice:hub.example", DeviceID: "DEV1", Kind: KindMLSApp, Time: ts, Body: bytes.Repeat([]byte{0xbe}, 1024)},
		{RoomID: "!abcdefghijklmnop:hub.example", Seq: 3, Stream: 1 << 40, Sender: "@bob:hub.example", Kind: KindEphemeral, Time: time.UnixMilli(-5).UTC()},
	}
}

func encodeFrame(evs []Event) []byte {
	frame := []byte{FrameTypeEvents}
	for i := range evs {
		frame = AppendEventRecord(frame, &evs[i])
	}
	return frame
}

func TestEventsFrameRoundTrip(t *testing.T) {
	evs := sampleEvents()
	frame := encodeFrame(evs)
	got, err := DecodeEventsFrame(frame, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, evs) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", got, evs)
	}
	// Repeated fields are shared, not allocated again.
	if unsafe.StringData(got[1].RoomID) != unsafe.StringData(got[0].RoomID) {
		t.Error("the repeated room id was allocated again")
	}
}

func TestEventsFrameIsSmallerThanJSON(t *testing.T) {
	evs := sampleEvents()[1:2]
	frame := encodeFrame(evs)
	// JSON carries the 1 KiB body in base64 (1368 bytes) plus field names.
	if len(frame) > 1024+100 {
		t.Errorf("binary frame of one 1 KiB event is %d bytes", len(frame))
	}
}

func TestDecodeEventsFrameReusesDst(t *testing.T) {
	frame := encodeFrame(sampleEvents())
	dst := make([]Event, 0, 8)
	got, err := DecodeEventsFrame(frame, dst)
	if err != nil || len(got) != 3 || &got[0] != &dst[:1][0] {
		t.Fatalf("got %d events, err %v, reused %v", len(got), err, len(got) > 0 && &got[0] == &dst[:1][0])
	}
}

func TestDecodeEventsFrameIgnoresAppendedFields(t *testing.T) {
	ev := sampleEvents()[1]
	rec := AppendEventRecord(nil, &ev)
	n, k := binary.Uvarint(rec)
	extended := binary.AppendUvarint([]byte{FrameTypeEvents}, n+3)
	extended = append(extended, rec[k:]...)
	extended = append(extended, 9, 9, 9)
	got, err := DecodeEventsFrame(extended, nil)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], ev) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestDecodeEventsFrameRefusesMalformed(t *testing.T) {
	good := encodeFrame(sampleEvents())
	cases := map[string][]byte{
		"empty":          {},
		"json":           []byte(`{"type":"events"}`),
		"no events":      {FrameTypeEvents},
		"truncated":      good[:len(good)-1],
		"record too big": {FrameTypeEvents, 0x7f, 1, 2},
		"bad varint":     append([]byte{FrameTypeEvents, 11}, bytes.Repeat([]byte{0xff}, 11)...),
		"string too long": func() []byte {
			rec := []byte{1, 1, 0, 100, 'x'}
			return append(binary.AppendUvarint([]byte{FrameTypeEvents}, uint64(len(rec))), rec...)
		}(),
		"no flags": func() []byte {
			rec := []byte{1, 1, 0, 0, 0, 0, 0, 0}
			return append(binary.AppendUvarint([]byte{FrameTypeEvents}, uint64(len(rec))), rec...)
		}(),
		"stream overflows int64": func() []byte {
			rec := binary.AppendUvarint(nil, 1<<63)
			rec = append(rec, 1, 0, 0, 0, 0, 0, 0, 0)
			return append(binary.AppendUvarint([]byte{FrameTypeEvents}, uint64(len(rec))), rec...)
		}(),
	}
	for name, frame := range cases {
		t.Run(name, func(t *testing.T) {
			prior := []Event{{Seq: 99}}
			got, err := DecodeEventsFrame(frame, prior)
			if !errors.Is(err, ErrMalformedFrame) {
				t.Fatalf("err = %v, want ErrMalformedFrame", err)
			}
			if len(got) != 1 || got[0].Seq != 99 {
				t.Fatalf("dst changed to %+v", got)
			}
		})
	}
}

func FuzzDecodeEventsFrame(f *testing.F) {
	f.Add(encodeFrame(sampleEvents()))
	f.Add(encodeFrame(sampleEvents()[:1]))
	f.Add([]byte{FrameTypeEvents, 3, 1, 1, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		evs, err := DecodeEventsFrame(frame, nil)
		if err != nil {
			return
		}
		// What decodes re-encodes to a frame that decodes to the same events.
		again, err := DecodeEventsFrame(encodeFrame(evs), nil)
		if err != nil || !reflect.DeepEqual(again, evs) {
			t.Fatalf("re-encoding changed %+v into %+v (%v)", evs, again, err)
		}
	})
}

func BenchmarkDecodeEventsFrame(b *testing.B) {
	evs := make([]Event, 32)
	for i := range evs {
		evs[i] = sampleEvents()[1]
	}
	frame := encodeFrame(evs)
	dst := make([]Event, 0, len(evs))
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = DecodeEventsFrame(frame, dst[:0])
	}
}
