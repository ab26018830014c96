package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/internal/demo"
	"github.com/medicus-health/medicus/sepsisbot/physionet"
)

// demoHospitals are the demo's federated homeservers and their users.
var demoHospitals = []demo.HospitalSpec{
	{Name: "uk-freiburg.test", Users: []demo.UserSpec{{Local: "dr.weber", Role: "doctor"}, {Local: "pfl.schulz", Role: "nurse"}, {Local: "sepsis-bot", Role: "bot"}, {Local: "it.admin", Role: "admin"}}},
	{Name: "uk-heidelberg.test", Users: []demo.UserSpec{{Local: "dr.yilmaz", Role: "doctor"}, {Local: "pfl.nowak", Role: "nurse"}, {Local: "patient.fischer", Role: "patient"}}},
	{Name: "klinikum-stuttgart.test", Users: []demo.UserSpec{{Local: "dr.braun", Role: "doctor"}, {Local: "patient.meyer", Role: "patient"}}},
}

func demoCmd() *cobra.Command {
	var keep, scenario bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run three federated demo hospitals on loopback, play a second opinion with real clients, and keep running until Ctrl-C",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := os.MkdirTemp("", "medicus-demo-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			hospitals, err := demo.StartHospitals(ctx, dir, demoHospitals, logger)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "medicus demo: %d hospitals federate over mutually authenticated TLS (federation CA in %s)\n",
				len(hospitals), filepath.Join(dir, "federation-ca"))
			fmt.Fprintf(out, "directory: %s (removed on exit unless --keep)\n\n", dir)
			for _, h := range hospitals {
				fmt.Fprintf(out, "%s is running at %s\n", h.Name, h.URL)
				fmt.Fprintf(out, "  CA certificate to trust: %s\n", h.CAFile)
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "  USER\tROLE\tPASSWORD")
				for _, u := range h.Users {
					fmt.Fprintf(tw, "  %s\t%s\t%s\n", u.ID, u.Role, u.Password)
				}
				tw.Flush()
				fmt.Fprintln(out)
			}
			freiburg, heidelberg, stuttgart := hospitals[0], hospitals[1], hospitals[2]
			if scenario {
				sc := &demo.Scenario{Dir: filepath.Join(dir, "clients"), Out: out}
				if err := sc.SecondOpinion(ctx, freiburg.Account("dr.weber"), heidelberg.Account("dr.yilmaz"), stuttgart.Account("patient.meyer")); err != nil {
					return fmt.Errorf("demo scenario: %w", err)
				}
				dataDir, _ := physionet.DataDir()
				if err := sc.ICU(ctx, freiburg.Account("dr.weber"), freiburg.Account("pfl.schulz"), freiburg.Account("sepsis-bot"), dataDir); err != nil {
					return fmt.Errorf("demo ICU scenario: %w", err)
				}
				for _, h := range hospitals {
					found, err := demo.FindPlaintext(h.Dir)
					if err != nil {
						return err
					}
					if len(found) > 0 {
						return fmt.Errorf("the homeserver %s stored plaintext: %v", h.Name, found)
					}
				}
				fmt.Fprintf(out, "\nChecked every file of the three homeservers (databases, WAL, media): none contains the texts above.\n")
			}
			fmt.Fprintf(out, "\nUse the command-line client (password on stdin):\n")
			fmt.Fprintf(out, "  medicus client --profile /tmp/me --key-file /tmp/me.key login --server %s --ca %s --user @dr.braun:%s\n", stuttgart.URL, stuttgart.CAFile, stuttgart.Name)
			fmt.Fprintf(out, "  medicus client --profile /tmp/me --key-file /tmp/me.key sync\n")
			fmt.Fprintf(out, "The protocols are described in docs/api.md and docs/federation.md. Press Ctrl-C to stop.\n")
			<-ctx.Done()
			var errs []error
			for _, h := range hospitals {
				errs = append(errs, h.Wait())
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo directory on exit")
	cmd.Flags().BoolVar(&scenario, "scenario", true, "play the scripted cross-hospital second opinion with real clients")
	return cmd
}
