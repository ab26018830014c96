package score

import (
	"testing"

	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

type kv map[physionet.Index]float64

func values(m kv) physionet.Values {
	v := physionet.Missing()
	for k, x := range m {
		v[k] = x
	}
	return v
}

func TestQSOFAHandWorked(t *testing.T) {
	tests := []struct {
		name string
		in   kv
		want int
	}{
		{"all missing scores 0", kv{}, 0},
		{"RR 22 and SBP 100 are both met (inclusive)", kv{physionet.Resp: 22, physionet.SBP: 100}, 2},
		{"RR 21.9 and SBP 100.1 are not", kv{physionet.Resp: 21.9, physionet.SBP: 100.1}, 0},
		{"tachypnoea only", kv{physionet.Resp: 30, physionet.SBP: 130}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := QSOFA(values(tt.in))
			if r.Points != tt.want || r.Max != 2 {
				t.Fatalf("points %d max %d, want %d max 2", r.Points, r.Max, tt.want)
			}
			if r.Components[2].Available {
				t.Fatal("mentation reported available")
			}
		})
	}
}

func TestSIRSHandWorked(t *testing.T) {
	tests := []struct {
		name string
		in   kv
		want int
	}{
		{"normal", kv{physionet.Temp: 37, physionet.HR: 80, physionet.Resp: 16, physionet.WBC: 8}, 0},
		{"bounds are strict", kv{physionet.Temp: 38, physionet.HR: 90, physionet.Resp: 20, physionet.WBC: 12}, 0},
		{"hypothermia, tachycardia", kv{physionet.Temp: 35.9, physionet.HR: 91}, 2},
		{"low PaCO2 counts for respiration", kv{physionet.Resp: 14, physionet.PaCO2: 31}, 1},
		{"all four", kv{physionet.Temp: 38.5, physionet.HR: 120, physionet.Resp: 28, physionet.WBC: 3.9}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := SIRS(values(tt.in)); r.Points != tt.want {
				t.Fatalf("points %d, want %d (%+v)", r.Points, tt.want, r.Components)
			}
		})
	}
}

func TestNEWS2HandWorked(t *testing.T) {
	tests := []struct {
		name string
		in   kv
		want int
	}{
		{"healthy adult on air", kv{physionet.Resp: 16, physionet.O2Sat: 98, physionet.FiO2: 0.21, physionet.SBP: 120, physionet.HR: 70, physionet.Temp: 37}, 0},
		// RR 22 → 2, SpO2 94 → 1, O2 → 2, SBP 105 → 1, HR 112 → 2, T 38.4 → 1 = 9.
		{"septic picture", kv{physionet.Resp: 22, physionet.O2Sat: 94, physionet.FiO2: 0.4, physionet.SBP: 105, physionet.HR: 112, physionet.Temp: 38.4}, 9},
		// RR 8 → 3, SpO2 91 → 3, SBP 90 → 3, HR 40 → 3, T 35.0 → 3 = 15.
		{"lower extremes", kv{physionet.Resp: 8, physionet.O2Sat: 91, physionet.SBP: 90, physionet.HR: 40, physionet.Temp: 35.0}, 15},
		// RR 25 → 3, SBP 220 → 3, HR 131 → 3, T 39.1 → 2 = 11.
		{"upper extremes", kv{physionet.Resp: 25, physionet.SBP: 220, physionet.HR: 131, physionet.Temp: 39.1}, 11},
		// Band edges after rounding: RR 20.4 → 20 → 0; RR 20.5 → 21 → 2.
		{"RR 20.4 rounds into 12–20", kv{physionet.Resp: 20.4}, 0},
		{"RR 20.5 rounds into 21–24", kv{physionet.Resp: 20.5}, 2},
		{"T 36.04 rounds to 36.0 (1 point)", kv{physionet.Temp: 36.04}, 1},
		{"T 36.05 rounds to 36.1 (0 points)", kv{physionet.Temp: 36.05}, 0},
		{"HR 51 and 91", kv{physionet.HR: 51}, 0},
		{"HR 91", kv{physionet.HR: 91}, 1},
		{"SpO2 96 is 0, 95 is 1", kv{physionet.O2Sat: 95}, 1},
		{"FiO2 given as a percentage", kv{physionet.FiO2: 40}, 2},
		{"FiO2 0.21 is air", kv{physionet.FiO2: 0.21}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NEWS2(values(tt.in))
			if r.Points != tt.want {
				t.Fatalf("points %d, want %d (%+v)", r.Points, tt.want, r.Components)
			}
		})
	}
}

func TestSOFAHandWorked(t *testing.T) {
	tests := []struct {
		name string
		in   kv
		want [6]int // respiration, coagulation, liver, cardiovascular, CNS, renal
	}{
		{"normal", kv{physionet.Platelets: 250, physionet.BilirubinTotal: 0.8, physionet.MAP: 85, physionet.Creatinine: 0.9}, [6]int{0, 0, 0, 0, 0, 0}},
		{"lower band edges", kv{physionet.Platelets: 149, physionet.BilirubinTotal: 1.2, physionet.MAP: 69.9, physionet.Creatinine: 1.2}, [6]int{0, 1, 1, 1, 0, 1}},
		{"middle", kv{physionet.Platelets: 99, physionet.BilirubinTotal: 2.0, physionet.MAP: 70, physionet.Creatinine: 3.5}, [6]int{0, 2, 2, 0, 0, 3}},
		{"worst", kv{physionet.Platelets: 19, physionet.BilirubinTotal: 12, physionet.MAP: 40, physionet.Creatinine: 5}, [6]int{0, 4, 4, 1, 0, 4}},
		{"platelets 50 is 2, 49 is 3", kv{physionet.Platelets: 49}, [6]int{0, 3, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := SOFA(values(tt.in))
			sum := 0
			for i, c := range r.Components {
				if c.Points != tt.want[i] {
					t.Errorf("%s = %d, want %d", c.Name, c.Points, tt.want[i])
				}
				sum += tt.want[i]
			}
			if r.Points != sum || r.Max != 13 {
				t.Errorf("total %d max %d, want %d max 13", r.Points, r.Max, sum)
			}
			if r.Components[0].Available || r.Components[4].Available {
				t.Error("respiration or CNS reported available")
			}
		})
	}
}
