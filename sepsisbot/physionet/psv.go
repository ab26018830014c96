package physionet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

var nan = math.NaN()

// Default limits for [Parse]. The longest stay in training set A has 336
// rows (55 KB); a year of hourly rows is 8,760.
const (
	DefaultMaxBytes = 4 << 20
	DefaultMaxRows  = 10000
	maxFieldBytes   = 64
)

// Errors returned by [Parse], wrapped with the line number where they occur.
var (
	// ErrHeader means the first line is not the 41-column PhysioNet 2019
	// header in its exact order.
	ErrHeader = errors.New("physionet: header is not the PhysioNet 2019 header")
	// ErrSyntax means a data row is malformed: wrong number of fields, a
	// field that is neither a finite decimal number nor NaN, or a
	// SepsisLabel other than 0 or 1.
	ErrSyntax = errors.New("physionet: malformed row")
	// ErrTooLarge means the input exceeds Limits.MaxBytes.
	ErrTooLarge = errors.New("physionet: input too large")
	// ErrTooManyRows means the input has more data rows than Limits.MaxRows.
	ErrTooManyRows = errors.New("physionet: too many rows")
	// ErrEmpty means the input has a header but no data rows, or nothing at all.
	ErrEmpty = errors.New("physionet: no data rows")
)

// Limits bound what [Parse] accepts. Zero fields take the defaults.
type Limits struct {
	MaxBytes int64 // total input size; default DefaultMaxBytes
	MaxRows  int   // data rows; default DefaultMaxRows
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxRows <= 0 {
		l.MaxRows = DefaultMaxRows
	}
	return l
}

// Row is one hour of an ICU stay.
type Row struct {
	Values Values // the 40 variables; NaN where not measured
	Label  bool   // SepsisLabel: true from six hours before clinical onset onwards
}

// Stay is one ICU stay: one row per hour, in file order. Row t (0-based) is
// the t-th hour of the stay; the challenge's utility is defined on t.
type Stay struct {
	ID   string // file name without directory and extension, e.g. "p000009"
	Rows []Row
}

// Labels returns the SepsisLabel column.
func (s *Stay) Labels() []bool {
	out := make([]bool, len(s.Rows))
	for i, r := range s.Rows {
		out[i] = r.Label
	}
	return out
}

// Septic reports whether any row has SepsisLabel 1.
func (s *Stay) Septic() bool {
	for _, r := range s.Rows {
		if r.Label {
			return true
		}
	}
	return false
}

// Header is the exact header line of a PhysioNet 2019 file.
var Header = func() string {
	names := make([]string, 0, NumVariables+1)
	for _, v := range Variables {
		names = append(names, v.Name)
	}
	return strings.Join(append(names, LabelColumn), "|")
}()

// Parse reads one PhysioNet 2019 .psv file: the exact 41-column header, then
// one row per hour of 41 pipe-separated fields, each a finite decimal number
// or "NaN", the last (SepsisLabel) 0 or 1. Line endings may be LF or CRLF; a
// final newline is optional; blank lines are refused. Errors wrap one of the
// sentinel errors of this package and name the line. Parse never reads more
// than limits.MaxBytes+1 bytes from r.
func Parse(r io.Reader, limits Limits) (*Stay, error) {
	limits = limits.withDefaults()
	data, err := io.ReadAll(io.LimitReader(r, limits.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("physionet: read: %w", err)
	}
	if int64(len(data)) > limits.MaxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limits.MaxBytes)
	}
	if len(data) == 0 {
		return nil, ErrEmpty
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	s := &Stay{}
	line := 0
	var fields [NumVariables + 1][]byte
	for len(data) > 0 || line == 0 {
		var l []byte
		l, data, _ = bytes.Cut(data, []byte("\n"))
		l = bytes.TrimSuffix(l, []byte("\r"))
		line++
		if line == 1 {
			if string(l) != Header {
				return nil, fmt.Errorf("line 1: %w", ErrHeader)
			}
			continue
		}
		if len(s.Rows) >= limits.MaxRows {
			return nil, fmt.Errorf("line %d: %w: more than %d", line, ErrTooManyRows, limits.MaxRows)
		}
		n := 0
		for rest := l; ; n++ {
			if n > NumVariables {
				return nil, fmt.Errorf("line %d: %w: more than %d fields", line, ErrSyntax, NumVariables+1)
			}
			f, tail, found := bytes.Cut(rest, []byte("|"))
			fields[n] = f
			if !found {
				n++
				break
			}
			rest = tail
		}
		if n != NumVariables+1 {
			return nil, fmt.Errorf("line %d: %w: %d fields, want %d", line, ErrSyntax, n, NumVariables+1)
		}
		var row Row
		for i := range NumVariables {
			v, err := parseField(fields[i])
			if err != nil {
				return nil, fmt.Errorf("line %d: column %s: %w", line, Variables[i].Name, err)
			}
			row.Values[i] = v
		}
		switch string(fields[NumVariables]) {
		case "0":
		case "1":
			row.Label = true
		default:
			return nil, fmt.Errorf("line %d: column %s: %w: %q is not 0 or 1", line, LabelColumn, ErrSyntax, truncate(fields[NumVariables]))
		}
		s.Rows = append(s.Rows, row)
	}
	if len(s.Rows) == 0 {
		return nil, ErrEmpty
	}
	return s, nil
}

func parseField(f []byte) (float64, error) {
	if string(f) == "NaN" {
		return nan, nil
	}
	if len(f) == 0 || len(f) > maxFieldBytes {
		return 0, fmt.Errorf("%w: %q is not a number", ErrSyntax, truncate(f))
	}
	// Only plain decimals: digits, one sign, one point, an exponent. This
	// refuses "Inf", "0x1p3", "1_000" that strconv would accept.
	for _, c := range f {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return 0, fmt.Errorf("%w: %q is not a number", ErrSyntax, truncate(f))
		}
	}
	v, err := strconv.ParseFloat(string(f), 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: %q is not a number", ErrSyntax, truncate(f))
	}
	return v, nil
}

func truncate(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}

// ParseFile parses the file at path with default limits and sets the
// stay's ID from the file name.
func ParseFile(path string) (*Stay, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s, err := Parse(f, Limits{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.ID = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return s, nil
}

// Files returns the paths of the .psv files directly in dir, sorted by
// name (the order the official evaluation uses). Hidden files are skipped.
func Files(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("physionet: list %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		if e.Type().IsRegular() && !strings.HasPrefix(name, ".") && strings.HasSuffix(strings.ToLower(name), ".psv") {
			out = append(out, filepath.Join(dir, name))
		}
	}
	sort.Strings(out)
	return out, nil
}

// DataDir returns the directory of PhysioNet 2019 training set A:
// $MEDICUS_PHYSIONET_DIR if set, else ../shared/physionet2019/training_setA
// relative to the root of the repository that contains the working
// directory (the directory holding go.mod). When the directory does not
// exist it returns "" and the path it looked at, for a clear skip message.
func DataDir() (dir, looked string) {
	if d := os.Getenv("MEDICUS_PHYSIONET_DIR"); d != "" {
		looked = d
	} else {
		wd, err := os.Getwd()
		if err != nil {
			return "", "(working directory unknown)"
		}
		root := wd
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				root = wd
				break
			}
			root = parent
		}
		looked = filepath.Join(root, "..", "shared", "physionet2019", "training_setA")
	}
	if st, err := os.Stat(looked); err == nil && st.IsDir() {
		return looked, looked
	}
	return "", looked
}
