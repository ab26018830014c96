package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/internal/demo"
	"github.com/medicus-health/medicus/server"
	"github.com/medicus-health/medicus/server/homedir"
)

// demoUsers are created on the demo homeserver, a few of each role.
var demoUsers = []struct{ local, role string }{
	{"dr.weber", "doctor"}, {"dr.yilmaz", "doctor"},
	{"pfl.schulz", "nurse"}, {"pfl.nowak", "nurse"},
	{"patient.meyer", "patient"}, {"patient.fischer", "patient"},
	{"sepsis-bot", "bot"},
	{"it.admin", "admin"},
}

func demoCmd() *cobra.Command {
	var listen, name string
	var keep, scenario bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local demo homeserver with users of every role until Ctrl-C",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := os.MkdirTemp("", "medicus-demo-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			hsDir := filepath.Join(dir, name)
			cfg, err := homedir.Init(hsDir, name, ln.Addr().String(), homedir.InitOptions{})
			if err != nil {
				ln.Close()
				return err
			}
			admin, err := server.OpenAdmin(cfg)
			if err != nil {
				ln.Close()
				return err
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tROLE\tPASSWORD")
			passwords := map[string]string{}
			for _, u := range demoUsers {
				pw := generatePassword()
				id, err := admin.AddUser(cmd.Context(), u.local, u.role, pw)
				if err != nil {
					admin.Close()
					ln.Close()
					return err
				}
				passwords[u.local] = pw
				fmt.Fprintf(tw, "%s\t%s\t%s\n", id, u.role, pw)
			}
			if err := admin.Close(); err != nil {
				ln.Close()
				return err
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			srv, err := server.New(cfg, logger)
			if err != nil {
				ln.Close()
				return err
			}
			url := "https://" + ln.Addr().String()
			ca := filepath.Join(hsDir, homedir.CAFile)
			fmt.Fprintf(out, "medicus demo homeserver %q is running at %s\n", name, url)
			fmt.Fprintf(out, "directory: %s (removed on exit unless --keep)\n", hsDir)
			fmt.Fprintf(out, "CA certificate to trust: %s\n\n", ca)
			tw.Flush()
			u := demoUsers[0].local
			fmt.Fprintf(out, "\nTry it:\n  curl --cacert %s %s/v1/health\n", ca, url)
			fmt.Fprintf(out, "  curl --cacert %s -d '{\"user_id\":\"@%s:%s\",\"password\":\"<password above>\"}' %s/v1/login\n", ca, u, name, url)
			fmt.Fprintf(out, "Administer it while it runs:\n  medicus admin user list --dir %s\n", hsDir)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(cmd.Context(), ln) }()
			if scenario {
				caPEM, err := os.ReadFile(ca)
				if err != nil {
					return err
				}
				account := func(local string) demo.Account {
					return demo.Account{UserID: "@" + local + ":" + name, Password: passwords[local], ServerURL: url, CA: caPEM}
				}
				sc := &demo.Scenario{Dir: filepath.Join(dir, "clients"), Out: out}
				if err := sc.SecondOpinion(cmd.Context(), account("dr.weber"), account("dr.yilmaz"), account("patient.meyer")); err != nil {
					return fmt.Errorf("demo scenario: %w", err)
				}
				found, err := demo.FindPlaintext(hsDir)
				if err != nil {
					return err
				}
				if len(found) > 0 {
					return fmt.Errorf("the homeserver stored plaintext: %v", found)
				}
				fmt.Fprintf(out, "\nChecked every file of the homeserver (database, WAL, media): none contains the texts above.\n")
				fmt.Fprintf(out, "\nUse the command-line client (password on stdin):\n")
				fmt.Fprintf(out, "  medicus client --profile /tmp/me --key-file /tmp/me.key login --server %s --ca %s --user @%s:%s\n", url, ca, demoUsers[1].local, name)
				fmt.Fprintf(out, "  medicus client --profile /tmp/me --key-file /tmp/me.key sync\n")
			}
			fmt.Fprintf(out, "The protocol is described in docs/api.md. Press Ctrl-C to stop.\n")
			return <-served
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "client API address (port 0 picks a free port)")
	cmd.Flags().StringVar(&name, "name", "uk-freiburg.example", "server name of the demo homeserver")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo directory on exit")
	cmd.Flags().BoolVar(&scenario, "scenario", true, "play the scripted second-opinion scenario with real clients")
	return cmd
}
