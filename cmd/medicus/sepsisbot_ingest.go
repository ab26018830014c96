package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/sepsisbot/replay"
)

func init() {
	sepsisbotSubcommands = append(sepsisbotSubcommands, sepsisbotReplayCmd)
}

// fhirClient returns an HTTP client for the bot's FHIR endpoint that trusts
// the CA certificates in caFile (PEM), or the system roots if caFile is "".
func fhirClient(caFile string) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read --ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}, nil
}

func sepsisbotReplayCmd() *cobra.Command {
	var data, base, token, caFile string
	var speed float64
	var stays int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay --data DIR --fhir URL --token T [--speed N] [--ca FILE] [--stays N] [--json]",
		Short: "Stream PhysioNet 2019 ICU stays into a running bot as FHIR Observations, hour by hour",
		Long: `replay turns the first --stays .psv stays of --data into FHIR R4 Observations
(LOINC codes, UCUM units) and POSTs them as one transaction Bundle per stay and
hour to the bot's FHIR base URL, --speed times faster than real time (3600: one
hour per second). Patients are named stay-<file>. The token may also come from
$MEDICUS_FHIR_TOKEN, which keeps it out of the process list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if base == "" {
				return fmt.Errorf("--fhir URL is required")
			}
			if token == "" {
				token = os.Getenv("MEDICUS_FHIR_TOKEN")
			}
			if token == "" {
				return fmt.Errorf("--token or $MEDICUS_FHIR_TOKEN is required")
			}
			client, err := fhirClient(caFile)
			if err != nil {
				return err
			}
			loaded, err := loadStays(cmd, data, stays)
			if err != nil {
				return err
			}
			st, err := replay.Run(cmd.Context(), replay.Config{Base: base, Token: token, Client: client, Speed: speed}, loaded)
			if asJSON {
				out := map[string]any{"stays": st.Stays, "hours": st.Hours, "bundles": st.Bundles,
					"observations": st.Observations, "ignored": st.Ignored, "complete": err == nil}
				if jerr := json.NewEncoder(cmd.OutOrStdout()).Encode(out); jerr != nil {
					return jerr
				}
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "replayed %d stays: %d hours, %d bundles, %d observations (%d not used by the bot)\n",
					st.Stays, st.Hours, st.Bundles, st.Observations, st.Ignored)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&data, "data", "", "directory of .psv files (e.g. ../shared/physionet2019/training_setA)")
	cmd.Flags().StringVar(&base, "fhir", "", "the bot's FHIR base URL, e.g. https://localhost:8443/fhir")
	cmd.Flags().StringVar(&token, "token", "", "bearer token of the bot's FHIR endpoint (or $MEDICUS_FHIR_TOKEN)")
	cmd.Flags().StringVar(&caFile, "ca", "", "PEM file of the CA that signed the bot's certificate (default: system roots)")
	cmd.Flags().Float64Var(&speed, "speed", 3600, "times faster than real time (3600: one hour of data per second)")
	cmd.Flags().IntVar(&stays, "stays", 5, "replay the first N stays (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}
