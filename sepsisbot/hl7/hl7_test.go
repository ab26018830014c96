package hl7

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/fhirobs"
)

var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

var quiet = slog.New(slog.DiscardHandler)

// labORU is an ORU^R01 as a laboratory system sends it: results of a blood
// gas and a clinical chemistry order, with LOINC codes, UCUM units, a
// German decimal comma (not valid in NM) and a local code without LOINC.
var labORU = strings.Join([]string{
	`MSH|^~\&|LAB|UKF-LAB|SEPSISBOT|ICU3|20261129083012+0100||ORU^R01^ORU_R01|MSG00042|P|2.5|||AL|NE|DEU|8859/1`,
	`PID|1||icu3-bed07^^^UKF^PI||Bed07^ICU3||19580312|M`,
	`PV1|1|I|ICU3^07^1^UKF||||||||||||||||V123`,
	`OBR|1|ORD4711|LAB4711|BGA^Blutgasanalyse^L|||20261129080000+0100`,
	`OBX|1|NM|2524-7^Lactate [Moles/volume] in Serum or Plasma^LN||4.2|mmol/L^mmol/L^UCUM|0.5-2.2|H|||F`,
	`OBX|2|NM|2744-1^pH of Arterial blood^LN||7.29||7.35-7.45|L|||F|||20261129080500+0100`,
	`OBX|3|NM|2019-8^Carbon dioxide [Partial pressure] in Arterial blood^LN||4.1|kPa^kPa^UCUM|||||F`,
	`OBR|2|ORD4712|LAB4712|KC^Klinische Chemie^L|||20261129075500+0100`,
	`OBX|1|NM|14682-9^Creatinine [Moles/volume] in Serum or Plasma^LN||150|umol/L^µmol/L^UCUM|59-104|H|||F`,
	`OBX|2|NM|6690-2^Leukocytes [#/volume] in Blood by Automated count^LN||15,3|10*3/uL^/nl^UCUM|4-10|H|||F`,
	`OBX|3|NM|1988-5^C reactive protein [Mass/volume] in Serum or Plasma^LN||182|mg/L^mg/l^UCUM|<5|H|||F`,
	`OBX|4|NM|CREA-K^Kreatinin-Clearance^L||54|mL/min||||F`,
	`OBX|5|SN|10839-9^Troponin I.cardiac [Mass/volume] in Serum or Plasma^LN||<^0.01|ng/mL^ng/mL^UCUM|||||F`,
	`OBX|6|NM|777-3^Platelets [#/volume] in Blood by Automated count^LN||88|10*3/uL|||||P`,
	`OBX|7|NM|718-7^Hemoglobin [Mass/volume] in Blood^LN||9.1|g/dL|||||X`,
}, "\r") + "\r"

func TestORUMapsLabResults(t *testing.T) {
	m, err := Parse([]byte(labORU))
	if err != nil {
		t.Fatal(err)
	}
	oru, err := ParseORU(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if oru.ControlID != "MSG00042" || len(oru.Results) != 10 {
		t.Fatalf("control %q, %d results", oru.ControlID, len(oru.Results))
	}
	rep := oru.Map(testNow)
	obr1 := time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC)
	obr2 := time.Date(2026, 11, 29, 6, 55, 0, 0, time.UTC)
	want := []fhirobs.Measurement{
		{Variable: "Lactate", Value: 4.2, Time: obr1},
		{Variable: "pH", Value: 7.29, Time: obr1.Add(5 * time.Minute)},
		{Variable: "PaCO2", Value: 4.1 * 7.50062, Time: obr1},
		{Variable: "Creatinine", Value: 150 / 88.42, Time: obr2},
		{Variable: "TroponinI", Value: 0.01, Time: obr2},
		{Variable: "Platelets", Value: 88, Time: obr2},
	}
	if len(rep.Measurements) != len(want) {
		t.Fatalf("got %d measurements %+v, issues %v", len(rep.Measurements), rep.Measurements, rep.Issues)
	}
	for i, m := range rep.Measurements {
		w := want[i]
		if m.Variable != w.Variable || math.Abs(m.Value-w.Value) > 1e-9 || !m.Time.Equal(w.Time) || m.Patient != "icu3-bed07" || m.Bed != "ICU3/07/1" {
			t.Errorf("measurement %d = %+v, want %s %v at %v", i, m, w.Variable, w.Value, w.Time)
		}
	}
	wantIssues := []struct {
		ref string
		err error
	}{
		{"OBX^5", fhirobs.ErrNoValue},     // "15,3"
		{"OBX^6", fhirobs.ErrUnknownCode}, // CRP is not a model variable
		{"OBX^7", fhirobs.ErrUnknownCode}, // local code only
		{"OBX^10", fhirobs.ErrStatus},     // X: result cannot be obtained
	}
	if len(rep.Issues) != len(wantIssues) {
		t.Fatalf("issues %v", rep.Issues)
	}
	for i, w := range wantIssues {
		if rep.Issues[i].Ref != w.ref || !errors.Is(rep.Issues[i], w.err) {
			t.Errorf("issue %d = %v, want %s %v", i, rep.Issues[i], w.ref, w.err)
		}
	}
}

// monitorORU comes from a patient-monitor gateway that uses other
// delimiters, LF segment ends, IEEE 11073 MDC codes with LOINC as the
// alternate code, escape sequences, and local times without an offset.
const monitorORU = "MSH#$%@*#MONITOR-GW#ICU3#SEPSISBOT#ICU3#20261129093000##ORU$R01$ORU_R01#7781#P#2.6\n" +
	"PID#1##ps-0815$$$ICU3$PI\n" +
	"PV1#1#I#ICU3$12\n" +
	"OBR#1###VITALS$Vitals @T@ and @F@ escaped###20261129092900\n" +
	"OBX#1#NM#150456$MDC_PULS_OXIM_SAT_O2$MDC$59408-5$SpO2$LN##91#262688$MDC_DIM_PERCENT$MDC$@R@$@R@$UCUM#####F\n" +
	"OBX#2#NM#149530$MDC_PULS_RATE$MDC$8867-4$Heart rate$LN##127#{beats}/min#####F\n" +
	"OBX#3#NM#150344$MDC_TEMP$MDC$8310-5$Body temperature$LN##102.2#[degF]#####F###20261129091500\n" +
	"OBX#4#NM#151562$MDC_RESP_RATE$MDC$9279-1$Resp rate$LN##29#/min#####F\n"

func TestORUUsesTheMessagesDelimitersAndAlternateLOINCCodes(t *testing.T) {
	m, err := Parse([]byte(monitorORU))
	if err != nil {
		t.Fatal(err)
	}
	if m.Delimiters != (Delimiters{Field: '#', Component: '$', Repetition: '%', Escape: '@', Subcomponent: '*'}) {
		t.Fatalf("delimiters %+v", m.Delimiters)
	}
	if got := m.Segments[3].Get(4, 1, 2, 1); got != "Vitals * and # escaped" {
		t.Fatalf("OBR-4.2 = %q", got)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone database: ", err)
	}
	oru, err := ParseORU(m, berlin)
	if err != nil {
		t.Fatal(err)
	}
	rep := oru.Map(testNow)
	if len(rep.Issues) != 0 || len(rep.Measurements) != 4 {
		t.Fatalf("report %+v", rep)
	}
	got := map[string]fhirobs.Measurement{}
	for _, m := range rep.Measurements {
		got[m.Variable] = m
	}
	if got["O2Sat"].Value != 91 || got["HR"].Value != 127 || got["Resp"].Value != 29 || math.Abs(got["Temp"].Value-39) > 1e-9 {
		t.Fatalf("values %+v", got)
	}
	if want := time.Date(2026, 11, 29, 8, 29, 0, 0, time.UTC); !got["HR"].Time.Equal(want) {
		t.Fatalf("HR time %v, want %v (09:29 in Berlin)", got["HR"].Time, want)
	}
	if want := time.Date(2026, 11, 29, 8, 15, 0, 0, time.UTC); !got["Temp"].Time.Equal(want) {
		t.Fatalf("Temp time %v, want OBX-14 %v", got["Temp"].Time, want)
	}
	if got["HR"].Patient != "ps-0815" || got["HR"].Bed != "ICU3/12" {
		t.Fatalf("patient %q bed %q", got["HR"].Patient, got["HR"].Bed)
	}
}

func TestUnescape(t *testing.T) {
	d := DefaultDelimiters
	tests := []struct{ in, want string }{
		{`plain`, `plain`},
		{`a\F\b\S\c\T\d\R\e\E\f`, `a|b^c&d~e\f`},
		{`line1\.br\line2`, "line1\nline2"},
		{`\H\bold\N\`, `bold`},
		{`\X41420A\`, "AB\n"},
		{`\X4\`, ``},
		{`\Cxxyy\text`, `text`},
		{`unterminated \F`, `unterminated \F`},
		{`\\`, ``},
	}
	for _, tt := range tests {
		if got := Unescape(tt.in, d); got != tt.want {
			t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, s := range []string{"a|b^c&d~e\\f", "two\nlines", "µmol/L"} {
		if got := Unescape(Escape(s, d), d); got != s {
			t.Errorf("round trip of %q gave %q", s, got)
		}
	}
}

func TestParseRefusesMalformedMessages(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"no MSH", "PID|1||x\r", ErrMalformed},
		{"short MSH-2", "MSH|^~|A\r", ErrMalformed},
		{"repeated delimiter", "MSH|^^\\&|A\r", ErrMalformed},
		{"letter as delimiter", "MSH|^~\\A|A\r", ErrMalformed},
		{"bad segment name", "MSH|^~\\&|A\rpid|1\r", ErrMalformed},
		{"segment name too long", "MSH|^~\\&|A\rPIDX|1\r", ErrMalformed},
		{"second MSH", "MSH|^~\\&|A\rMSH|^~\\&|B\r", ErrMalformed},
		{"too many fields", "MSH|^~\\&|A\rOBX" + strings.Repeat("|", MaxFields) + "\r", ErrTooLarge},
		{"too many segments", "MSH|^~\\&|A\r" + strings.Repeat("NTE|1\r", MaxSegments), ErrTooLarge},
		{"too large", "MSH|^~\\&|A\rNTE|" + strings.Repeat("x", MaxMessageBytes), ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse([]byte(tt.in)); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"202611290830", time.Date(2026, 11, 29, 8, 30, 0, 0, time.UTC), true},
		{"20261129083015", time.Date(2026, 11, 29, 8, 30, 15, 0, time.UTC), true},
		{"20261129083015.25", time.Date(2026, 11, 29, 8, 30, 15, 250e6, time.UTC), true},
		{"20261129083015+0100", time.Date(2026, 11, 29, 7, 30, 15, 0, time.UTC), true},
		{"20261129083015.1-0500", time.Date(2026, 11, 29, 13, 30, 15, 100e6, time.UTC), true},
		{"20261129", time.Time{}, false},
		{"2026112908", time.Time{}, false},
		{"20261329083015", time.Time{}, false},
		{"2026112908301x", time.Time{}, false},
		{"20261129083015+01", time.Time{}, false},
		{"202611290830.5", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := ParseTime(tt.in, time.UTC)
		if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, fhirobs.ErrTime) {
			t.Errorf("ParseTime(%q) error %v does not wrap ErrTime", tt.in, err)
		}
	}
}

// memorySink is a real Sink that keeps measurements in memory.
type memorySink struct {
	mu  sync.Mutex
	ms  []fhirobs.Measurement
	err error
}

func (s *memorySink) Ingest(_ context.Context, ms []fhirobs.Measurement) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.ms = append(s.ms, ms...)
	return nil
}

func (s *memorySink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ms)
}

func parseAck(t *testing.T, ack []byte) (msa *Segment, errs []*Segment, msh *Segment) {
	t.Helper()
	m, err := Parse(ack)
	if err != nil {
		t.Fatalf("acknowledgement does not parse: %v\n%q", err, ack)
	}
	for i := range m.Segments {
		switch s := &m.Segments[i]; s.Name {
		case "MSA":
			msa = s
		case "ERR":
			errs = append(errs, s)
		}
	}
	if msa == nil {
		t.Fatalf("no MSA in %q", ack)
	}
	return msa, errs, m.MSH()
}

func TestReceiverAcknowledgesStoredResultsWithWarnings(t *testing.T) {
	sink := &memorySink{}
	rc := &Receiver{Sink: sink, Now: func() time.Time { return testNow }, Logger: quiet}
	msa, errs, msh := parseAck(t, rc.HandleMessage(context.Background(), []byte(labORU)))
	if msa.Get(1, 1, 1, 1) != "AA" || msa.Get(2, 1, 1, 1) != "MSG00042" {
		t.Fatalf("MSA %q", msa.Fields)
	}
	if msh.Get(3, 1, 1, 1) != "SEPSISBOT" || msh.Get(5, 1, 1, 1) != "LAB" || msh.Get(6, 1, 1, 1) != "UKF-LAB" {
		t.Fatalf("MSH applications not swapped: %q", msh.Fields)
	}
	if msh.Get(9, 1, 1, 1) != "ACK" || msh.Get(9, 1, 2, 1) != "R01" || msh.Get(12, 1, 1, 1) != "2.5" || msh.Get(10, 1, 1, 1) == "" {
		t.Fatalf("MSH %q", msh.Fields)
	}
	if len(errs) != 4 || errs[0].Get(2, 1, 1, 1) != "OBX" || errs[0].Get(2, 1, 2, 1) != "5" || errs[0].Get(4, 1, 1, 1) != "W" {
		t.Fatalf("ERR segments %v", errs)
	}
	if sink.count() != 6 {
		t.Fatalf("sink has %d measurements, want 6", sink.count())
	}
}

func TestReceiverRejectsWhatItCannotProcess(t *testing.T) {
	adt := strings.Replace(labORU, "ORU^R01^ORU_R01", "ADT^A01^ADT_A01", 1)
	oldVersion := strings.Replace(labORU, "|P|2.5|", "|P|2.1|", 1)
	training := strings.Replace(labORU, "|P|2.5|", "|T|2.5|", 1)
	tests := []struct {
		name string
		msg  string
		sink *memorySink
		code AckCode
		err  string
	}{
		{"garbage", "hello", &memorySink{}, AckError, "102"},
		{"another message type", adt, &memorySink{}, AckReject, "200"},
		{"unsupported version", oldVersion, &memorySink{}, AckReject, "203"},
		{"training message", training, &memorySink{}, AckReject, "202"},
		{"sink failure", labORU, &memorySink{err: errors.New("database locked")}, AckReject, "207"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &Receiver{Sink: tt.sink, Now: func() time.Time { return testNow }, Logger: quiet}
			msa, errs, _ := parseAck(t, rc.HandleMessage(context.Background(), []byte(tt.msg)))
			if AckCode(msa.Get(1, 1, 1, 1)) != tt.code || len(errs) != 1 || errs[0].Get(3, 1, 1, 1) != tt.err || errs[0].Get(4, 1, 1, 1) != "E" {
				t.Fatalf("MSA %q ERR %v", msa.Fields, errs)
			}
			if tt.sink.count() != 0 {
				t.Fatal("rejected message reached the sink")
			}
		})
	}
}
