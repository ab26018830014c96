package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/sepsisbot/bot"
)

func init() {
	sepsisbotSubcommands = append(sepsisbotSubcommands, sepsisbotRunCmd)
}

func sepsisbotRunCmd() *cobra.Command {
	var configPath string
	var printConfig bool
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the sepsis bot: FHIR and HL7 v2 ingestion, risk assessment, alerts in encrypted ICU rooms",
		Long: `run starts the sepsis bot described by a TOML configuration file (keys documented
in package sepsisbot/bot, type Config): it logs the bot user in on first use, joins
the rooms it is invited to, serves FHIR at https://<fhir_listen>/fhir and HL7 v2 over
MLLP at <mllp_listen>, assesses every patient whose data change, and posts alerts,
escalations and daily summaries into its rooms until interrupted.
--print-config prints a commented example configuration.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printConfig {
				_, err := fmt.Fprint(cmd.OutOrStdout(), bot.ExampleConfig)
				return err
			}
			if configPath == "" {
				return fmt.Errorf("--config FILE is required")
			}
			cfg, err := bot.LoadConfig(configPath)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			b, err := bot.New(cmd.Context(), cfg, bot.Options{Logger: log})
			if err != nil {
				return err
			}
			defer b.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "sepsis bot %s running; FHIR %s, MLLP %s\n", cfg.User, b.FHIRAddr(), b.MLLPAddr())
			return b.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "the bot's TOML configuration file")
	cmd.Flags().BoolVar(&printConfig, "print-config", false, "print a commented example configuration file and exit")
	return cmd
}
