package hl7

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// AckCode is MSA-1 in original acknowledgement mode (HL7 v2.5 §2.9.2,
// table 0008).
type AckCode string

const (
	// AckAccept (AA): the message was processed.
	AckAccept AckCode = "AA"
	// AckError (AE): the message has errors in its content and should not
	// be sent again unchanged.
	AckError AckCode = "AE"
	// AckReject (AR): the message was rejected for its header (type,
	// version) or for a reason unrelated to its content, such as the
	// receiver being unable to store it; the sender may retry.
	AckReject AckCode = "AR"
)

// AckDetail is one ERR segment of an acknowledgement.
type AckDetail struct {
	// Segment and Seq locate the error (ERR-2: segment ID and the
	// occurrence of that segment, from 1; Field if not zero); Segment ""
	// leaves ERR-2 empty.
	Segment    string
	Seq, Field int
	// Code is an HL7 table 0357 error code: 100 segment sequence error,
	// 102 data type error, 103 table value not found, 200 unsupported
	// message type, 202 unsupported processing ID, 203 unsupported
	// version, 207 application internal error.
	Code string
	// Severity is ERR-4: E error, W warning, I information.
	Severity string
	// Text is the diagnostic (ERR-7), free text without content values.
	Text string
}

// errorCodeText names the table 0357 codes used here.
var errorCodeText = map[string]string{
	"100": "Segment sequence error", "102": "Data type error", "103": "Table value not found",
	"200": "Unsupported message type", "202": "Unsupported processing id", "203": "Unsupported version ID", "207": "Application internal error",
}

// maxAckDetails bounds the ERR segments of one acknowledgement.
const maxAckDetails = 50

// BuildAck builds the acknowledgement of a message: MSH with the sending
// and receiving application and facility swapped, MSH-9 ACK^<event>^ACK,
// a fresh control ID, the processing ID and version of the original; MSA
// with the code and the original control ID; and one ERR per detail (at
// most 50). orig may be nil when the message could not be parsed; the ACK
// then uses the default delimiters and empty header fields.
func BuildAck(orig *Message, code AckCode, text string, details []AckDetail, now time.Time) []byte {
	d := DefaultDelimiters
	var sendApp, sendFac, recvApp, recvFac, event, controlID, processing, version string
	processing, version = "P", "2.5"
	if orig != nil {
		d = orig.Delimiters
		h := orig.MSH()
		sendApp, sendFac, recvApp, recvFac = h.Raw(3), h.Raw(4), h.Raw(5), h.Raw(6)
		_, event = orig.Type()
		controlID = h.Raw(10)
		if p := h.Raw(11); p != "" {
			processing = p
		}
		if v := h.Raw(12); v != "" {
			version = v
		}
	}
	f := string(d.Field)
	enc := string([]byte{d.Component, d.Repetition, d.Escape, d.Subcomponent})
	var id [10]byte
	_, _ = rand.Read(id[:])
	msgType := "ACK"
	if event != "" {
		msgType = "ACK" + string(d.Component) + Escape(event, d) + string(d.Component) + "ACK"
	}
	var b strings.Builder
	b.WriteString(strings.Join([]string{"MSH" + f + enc, recvApp, recvFac, sendApp, sendFac,
		now.UTC().Format("20060102150405") + "+0000", "", msgType, hex.EncodeToString(id[:]), processing, version}, f))
	b.WriteByte('\r')
	b.WriteString(strings.Join([]string{"MSA", string(code), controlID, Escape(text, d)}, f))
	b.WriteByte('\r')
	for i, det := range details {
		if i == maxAckDetails {
			break
		}
		cwe := det.Code + string(d.Component) + Escape(errorCodeText[det.Code], d) + string(d.Component) + "HL70357"
		loc := ""
		if det.Segment != "" {
			loc = det.Segment + string(d.Component) + strconv.Itoa(det.Seq)
			if det.Field > 0 {
				loc += string(d.Component) + strconv.Itoa(det.Field)
			}
		}
		b.WriteString(strings.Join([]string{"ERR", "", loc, cwe, det.Severity, "", "", Escape(det.Text, d)}, f))
		b.WriteByte('\r')
	}
	return []byte(b.String())
}
