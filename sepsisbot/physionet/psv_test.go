package physionet

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func row(vals ...string) string {
	f := make([]string, NumVariables+1)
	for i := range f {
		f[i] = "NaN"
	}
	f[NumVariables] = "0"
	for i := 0; i+1 < len(vals); i += 2 {
		idx := NumVariables
		if vals[i] != LabelColumn {
			ix, ok := Lookup(vals[i])
			if !ok {
				panic(vals[i])
			}
			idx = int(ix)
		}
		f[idx] = vals[i+1]
	}
	return strings.Join(f, "|")
}

func TestParseReadsValuesAndLabels(t *testing.T) {
	in := Header + "\r\n" + row("HR", "97", "Temp", "36.5", "FiO2", "0.4", "HospAdmTime", "-0.03", "ICULOS", "1") + "\r\n" +
		row("HR", "1e2", "ICULOS", "2", LabelColumn, "1") + "\n"
	s, err := Parse(strings.NewReader(in), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Rows) != 2 {
		t.Fatalf("rows = %d, want 2", len(s.Rows))
	}
	r0 := s.Rows[0]
	if r0.Values[HR] != 97 || r0.Values[Temp] != 36.5 || r0.Values[FiO2] != 0.4 || r0.Values[HospAdmTime] != -0.03 || r0.Label {
		t.Errorf("row 0 = %+v", r0)
	}
	if !math.IsNaN(r0.Values[O2Sat]) {
		t.Errorf("O2Sat = %v, want NaN", r0.Values[O2Sat])
	}
	if s.Rows[1].Values[HR] != 100 || !s.Rows[1].Label || !s.Septic() {
		t.Errorf("row 1 = %+v", s.Rows[1])
	}
}

func TestParseRefusesBadInput(t *testing.T) {
	badHeader := strings.Replace(Header, "HR|O2Sat", "O2Sat|HR", 1)
	tests := []struct {
		name string
		in   string
		lim  Limits
		want error
	}{
		{"empty", "", Limits{}, ErrEmpty},
		{"header only", Header + "\n", Limits{}, ErrEmpty},
		{"swapped header columns", badHeader + "\n" + row(), Limits{}, ErrHeader},
		{"header without label", strings.TrimSuffix(Header, "|SepsisLabel") + "\n", Limits{}, ErrHeader},
		{"too few fields", Header + "\n" + strings.TrimSuffix(row(), "|0"), Limits{}, ErrSyntax},
		{"too many fields", Header + "\n" + row() + "|0", Limits{}, ErrSyntax},
		{"blank line", Header + "\n\n" + row(), Limits{}, ErrSyntax},
		{"word in a number", Header + "\n" + row("HR", "high"), Limits{}, ErrSyntax},
		{"infinity", Header + "\n" + row("HR", "Inf"), Limits{}, ErrSyntax},
		{"hex float", Header + "\n" + row("HR", "0x1p3"), Limits{}, ErrSyntax},
		{"lower-case nan", Header + "\n" + row("HR", "nan"), Limits{}, ErrSyntax},
		{"empty field", Header + "\n" + row("HR", ""), Limits{}, ErrSyntax},
		{"overflow", Header + "\n" + row("HR", "1e999"), Limits{}, ErrSyntax},
		{"label 2", Header + "\n" + row(LabelColumn, "2"), Limits{}, ErrSyntax},
		{"label NaN", Header + "\n" + row(LabelColumn, "NaN"), Limits{}, ErrSyntax},
		{"too many rows", Header + "\n" + row() + "\n" + row(), Limits{MaxRows: 1}, ErrTooManyRows},
		{"too large", Header + "\n" + row(), Limits{MaxBytes: 100}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in), tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVariablesTableIsConsistent(t *testing.T) {
	for i, v := range Variables {
		if int(v.Index) != i || v.Name == "" || v.Unit == "" || v.UCUM == "" {
			t.Errorf("Variables[%d] = %+v", i, v)
		}
		if got, ok := Lookup(v.Name); !ok || got != v.Index {
			t.Errorf("Lookup(%q) = %v, %v", v.Name, got, ok)
		}
	}
	if !strings.HasPrefix(Header, "HR|O2Sat|Temp|") || !strings.HasSuffix(Header, "|HospAdmTime|ICULOS|SepsisLabel") {
		t.Errorf("Header = %q", Header)
	}
}

func TestParseTrainingSetA(t *testing.T) {
	dir, looked := DataDir()
	if dir == "" {
		t.Skipf("PhysioNet 2019 training set A not found (looked in %s; set MEDICUS_PHYSIONET_DIR)", looked)
	}
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 200 {
		t.Fatalf("only %d files in %s", len(files), dir)
	}
	for _, f := range files[:200] {
		s, err := ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range s.Rows {
			if r.Values[ICULOS] <= 0 || math.IsNaN(r.Values[Age]) {
				t.Fatalf("%s row %d: ICULOS %v Age %v", s.ID, i, r.Values[ICULOS], r.Values[Age])
			}
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(Header + "\n" + row("HR", "97", "ICULOS", "1") + "\n"))
	f.Add([]byte(Header + "\r\n" + row("HR", "-1.5e2", LabelColumn, "1")))
	f.Add([]byte(Header + "\n" + row("HR", "x")))
	f.Add([]byte(Header))
	f.Add([]byte("HR|O2Sat\n1|2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(strings.NewReader(string(data)), Limits{MaxBytes: 1 << 16, MaxRows: 100})
		if err != nil {
			if s != nil {
				t.Fatal("stay returned with an error")
			}
			return
		}
		if len(s.Rows) == 0 || len(s.Rows) > 100 {
			t.Fatalf("%d rows", len(s.Rows))
		}
		for _, r := range s.Rows {
			for _, v := range r.Values {
				if math.IsInf(v, 0) {
					t.Fatal("infinite value accepted")
				}
			}
		}
	})
}
