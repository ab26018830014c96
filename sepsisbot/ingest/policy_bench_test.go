package ingest

import (
	"context"
	"log/slog"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/medicus-health/medicus/sepsisbot/alerting"
	"github.com/medicus-health/medicus/sepsisbot/features"
	"github.com/medicus-health/medicus/sepsisbot/model"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// BenchmarkAlertPolicyOnSetA runs the default model and the alert policy
// over the first 2,000 stays of PhysioNet set A, hour by hour, and reports
// the alert burden and the stays alerted:
//
//	MEDICUS_PHYSIONET_DIR=/work/shared/physionet2019/training_setA \
//	  go test -run '^$' -bench AlertPolicy -benchtime 1x ./sepsisbot/ingest/
//
// hours_above/patient-day counts the hours at or above the threshold (an
// alert every hour without the policy); alerts/patient-day counts the
// policy's alerts (new and worsening). The default model was trained on
// part of set A, so the sensitivity here is optimistic; the model's honest
// figures come from cross-validation (medicus sepsisbot cv).
func BenchmarkAlertPolicyOnSetA(b *testing.B) {
	dir, looked := physionet.DataDir()
	if dir == "" {
		b.Skipf("PhysioNet 2019 set A not found (looked at %s; set MEDICUS_PHYSIONET_DIR)", looked)
	}
	files, err := physionet.Files(dir)
	if err != nil {
		b.Fatal(err)
	}
	files = files[:min(2000, len(files))]
	var stays []*physionet.Stay
	for _, f := range files {
		s, err := physionet.ParseFile(f)
		if err != nil {
			b.Fatal(err)
		}
		stays = append(stays, s)
	}
	m, err := model.Default()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		audit, err := alerting.OpenAuditLog(filepath.Join(b.TempDir(), "audit.db"))
		if err != nil {
			b.Fatal(err)
		}
		clk := &clock{now: t0}
		sink := &roomLog{}
		eng, err := alerting.NewEngine(context.Background(), alerting.Config{Threshold: m.Threshold, DefaultRoom: "!icu:example",
			Clock: clk, Logger: slog.New(slog.DiscardHandler)}, sink, audit)
		if err != nil {
			b.Fatal(err)
		}
		var hours, above, septic, septicAlerted, otherAlerted int
		var leads []float64
		for _, s := range stays {
			fp := features.NewPatient()
			before := len(sink.alerts)
			onset := -1 // clinical onset: first label + 6 hours
			for t, r := range s.Rows {
				if r.Label && onset < 0 {
					onset = t + 6
				}
			}
			firstAlert := -1
			for t, r := range s.Rows {
				clk.now = t0.Add(time.Duration(t) * time.Hour)
				fp.Add(features.Hour{Time: clk.now, Values: r.Values})
				risk, _ := m.Risk(fp)
				hours++
				if risk >= m.Threshold {
					above++
				}
				if err := eng.Observe(context.Background(), alerting.Assessment{Patient: s.ID, Risk: risk, DataTime: clk.now}); err != nil {
					b.Fatal(err)
				}
				if firstAlert < 0 && len(sink.alerts) > before {
					firstAlert = t
				}
			}
			// Close the stay's episode so that the next stay starts clean.
			if err := eng.Observe(context.Background(), alerting.Assessment{Patient: s.ID, Risk: 0, DataTime: clk.now}); err != nil {
				b.Fatal(err)
			}
			if onset >= 0 {
				septic++
				if firstAlert >= 0 && firstAlert <= onset {
					septicAlerted++
					leads = append(leads, float64(onset-firstAlert))
				}
			} else if firstAlert >= 0 {
				otherAlerted++
			}
		}
		audit.Close()
		days := float64(hours) / 24
		sort.Float64s(leads)
		b.ReportMetric(float64(len(stays)), "stays")
		b.ReportMetric(float64(above)/days, "hours_above/patient-day")
		b.ReportMetric(float64(len(sink.alerts))/days, "alerts/patient-day")
		b.ReportMetric(float64(septicAlerted)/float64(max(septic, 1)), "septic_alerted_by_onset")
		b.ReportMetric(float64(otherAlerted)/float64(max(len(stays)-septic, 1)), "nonseptic_alerted")
		if len(leads) > 0 {
			b.ReportMetric(leads[len(leads)/2], "median_lead_h")
		}
	}
}
