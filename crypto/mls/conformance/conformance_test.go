package conformance

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// runner checks one test case, given as the raw JSON object of the case.
type runner func(t *testing.T, raw json.RawMessage)

var runners = map[string]runner{}

// register installs the runner for a vector format. Each format's file in
// this package calls it from init.
func register(format string, r runner) {
	if _, dup := runners[format]; dup {
		panic("conformance: duplicate runner for " + format)
	}
	runners[format] = r
}

// formatSignatures recognises a vector format by keys its cases carry. The
// first entry whose keys are all present wins, so more specific entries come
// first.
var formatSignatures = []struct {
	format string
	keys   []string
}{
	{"passive-client", []string{"initial_epoch_authenticator", "epochs", "welcome"}},
	{"tree-math", []string{"n_leaves", "n_nodes"}},
	{"crypto-basics", []string{"ref_hash", "expand_with_label"}},
	{"secret-tree", []string{"encryption_secret", "sender_data", "leaves"}},
	{"message-protection", []string{"membership_key", "application_priv"}},
	{"key-schedule", []string{"initial_init_secret", "epochs"}},
	{"psk_secret", []string{"psks", "psk_secret"}},
	{"transcript-hashes", []string{"interim_transcript_hash_before", "authenticated_content"}},
	{"welcome", []string{"init_priv", "welcome", "signer_pub"}},
	{"tree-operations", []string{"tree_before", "proposal"}},
	{"tree-validation", []string{"tree", "resolutions", "tree_hashes"}},
	{"treekem", []string{"update_paths", "leaves_private"}},
	{"messages", []string{"mls_welcome", "mls_key_package"}},
	{"deserialization", []string{"vlbytes_header", "length"}},
}

func detectFormat(sample map[string]json.RawMessage) (string, bool) {
	for _, sig := range formatSignatures {
		ok := true
		for _, k := range sig.keys {
			if _, has := sample[k]; !has {
				ok = false
				break
			}
		}
		if ok {
			return sig.format, true
		}
	}
	return "", false
}

func vectorsDir() string {
	if d := os.Getenv("MLS_TEST_VECTORS"); d != "" {
		return d
	}
	return filepath.Join("..", "..", "..", "..", "shared", "mls-test-vectors")
}

// TestVectors runs every case of every vector file in the directory.
func TestVectors(t *testing.T) {
	dir := vectorsDir()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skipf("no MLS test vectors (*.json) found in %s; set MLS_TEST_VECTORS to their directory", dir)
	}
	sort.Strings(files)
	var summary []string
	for _, path := range files {
		name := filepath.Base(path)
		passed, failed, skipped := runFile(t, path)
		line := fmt.Sprintf("%-36s %4d passed, %3d failed, %3d skipped", name, passed, failed, skipped)
		summary = append(summary, line)
	}
	fmt.Println("MLS test vectors from " + dir + ":\n" + strings.Join(summary, "\n"))
}

func runFile(t *testing.T, path string) (passed, failed, skipped int) {
	name := filepath.Base(path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return 0, 1, 0
	}
	var cases []json.RawMessage
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Errorf("%s: not a JSON array of cases: %v", name, err)
		return 0, 1, 0
	}
	if len(cases) == 0 {
		return 0, 0, 0
	}
	var sample map[string]json.RawMessage
	if err := json.Unmarshal(cases[0], &sample); err != nil {
		t.Errorf("%s: case 0 is not an object: %v", name, err)
		return 0, len(cases), 0
	}
	format, ok := detectFormat(sample)
	if !ok {
		keys := make([]string, 0, len(sample))
		for k := range sample {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		t.Errorf("%s: unrecognised vector format (keys %v)", name, keys)
		return 0, len(cases), 0
	}
	run, ok := runners[format]
	if !ok {
		// Reported in the summary as skipped, so a missing runner is visible
		// without hiding the results of the formats that do run.
		t.Logf("%s: format %q has no runner; its %d cases are skipped", name, format, len(cases))
		return 0, 0, len(cases)
	}
	for i, c := range cases {
		var res struct{ failed, skipped bool }
		t.Run(fmt.Sprintf("%s/%d", strings.TrimSuffix(name, ".json"), i), func(t *testing.T) {
			defer func() {
				res.failed, res.skipped = t.Failed(), t.Skipped()
			}()
			run(t, c)
		})
		switch {
		case res.failed:
			failed++
		case res.skipped:
			skipped++
		default:
			passed++
		}
	}
	return passed, failed, skipped
}

// hexBytes is a byte string that JSON carries as lower-case hex, as in all
// MLS test vectors. A JSON null decodes to nil.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("hex field: %w", err)
	}
	v, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("hex field: %w", err)
	}
	*h = v
	return nil
}

// decodeCase unmarshals a case strictly into v and fails the test on error.
func decodeCase(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode case: %v", err)
	}
}
