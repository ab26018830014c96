package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medicus-health/medicus/sepsisbot/fhirapi"
	"github.com/medicus-health/medicus/sepsisbot/ingest"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// writeStay writes a PSV file whose rows set HR and Resp to the given
// values (everything else NaN but Age and Gender).
func writeStay(t *testing.T, dir, name string, hr []string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(physionet.Header + "\n")
	for i, v := range hr {
		f := make([]string, physionet.NumVariables+1)
		for j := range f {
			f[j] = "NaN"
		}
		f[physionet.HR], f[physionet.Resp], f[physionet.Age], f[physionet.Gender] = v, "21", "64", "1"
		f[physionet.ICULOS], f[physionet.NumVariables] = string(rune('1'+i)), "0"
		b.WriteString(strings.Join(f, "|") + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReplayCommandStreamsStaysIntoTheBotsFHIREndpoint(t *testing.T) {
	store := ingest.NewStore(ingest.StoreConfig{})
	h, err := fhirapi.NewHandler(fhirapi.HandlerConfig{Token: "tok-123", Sink: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", h))
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "psv")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	writeStay(t, data, "p000001.psv", []string{"88", "97", "105"})
	writeStay(t, data, "p000002.psv", []string{"71", "74"})
	writeStay(t, data, "p000003.psv", []string{"120"})

	cmd := sepsisbotReplayCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--data", data, "--fhir", srv.URL + "/fhir", "--ca", ca, "--stays", "2", "--speed", "1e9", "--json"})
	t.Setenv("MEDICUS_FHIR_TOKEN", "tok-123")
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if got["stays"] != 2.0 || got["hours"] != 3.0 || got["bundles"] != 5.0 || got["observations"] != 14.0 || got["complete"] != true {
		t.Fatalf("output %v", got)
	}
	if names := store.Patients(); len(names) != 2 || names[0] != "stay-p000001" || names[1] != "stay-p000002" {
		t.Fatalf("patients %v", names)
	}
	p, _ := store.Patient("stay-p000001")
	if len(p.Hours) != 3 || p.Hours[2].Values["HR"].Value != 105 || p.Age != 64 {
		t.Fatalf("patient %+v", p)
	}
}

func TestReplayCommandRefusesAnUntrustedServer(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	data := t.TempDir()
	writeStay(t, data, "p000001.psv", []string{"88"})
	cmd := sepsisbotReplayCmd()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetArgs([]string{"--data", data, "--fhir", srv.URL + "/fhir", "--token", "x", "--speed", "1e9"})
	err := cmd.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
}
