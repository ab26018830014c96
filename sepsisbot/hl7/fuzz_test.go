package hl7

import (
	"bufio"
	"bytes"
	"context"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{labORU, monitorORU, "MSH|^~\\&|A|B|C|D|20261129||ORU^R01|1|P|2.5\rOBX|1|NM|8867-4^HR^LN||80|/min|||||F|||202611291000\r", "MSH|^~\\&#|", `\X41\`} {
		f.Add([]byte(s))
	}
	rc := &Receiver{Sink: &memorySink{}, Now: func() time.Time { return testNow }, Logger: quiet}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The receiver must answer every input with a parseable
		// acknowledgement.
		ack := rc.HandleMessage(context.Background(), data)
		if _, err := Parse(ack); err != nil {
			t.Fatalf("acknowledgement does not parse: %v\n%q", err, ack)
		}
		m, err := Parse(data)
		if err != nil {
			return
		}
		for i := range m.Segments {
			for n := range m.Segments[i].Fields {
				m.Segments[i].Get(n, 1, 1, 1)
				m.Segments[i].Get(n, 2, 3, 2)
			}
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("\x0bMSH|x\r\x1c\r"))
	f.Add([]byte("\r\n\x0ba\x1c\r\x0bb\x1c\r"))
	f.Add([]byte("\x0b\x0b\x1c"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			msg, err := ReadFrame(r, 256)
			if err != nil {
				return
			}
			if len(msg) > 256 || bytes.IndexByte(msg, 0x0b) >= 0 || bytes.IndexByte(msg, 0x1c) >= 0 {
				t.Fatalf("frame %q violates the framing", msg)
			}
			// What was read must frame back to bytes that read the same.
			var buf bytes.Buffer
			if err := WriteFrame(&buf, msg); err != nil {
				t.Fatal(err)
			}
			again, err := ReadFrame(bufio.NewReader(&buf), 256)
			if err != nil || !bytes.Equal(again, msg) {
				t.Fatalf("round trip of %q gave %q, %v", msg, again, err)
			}
		}
	})
}
