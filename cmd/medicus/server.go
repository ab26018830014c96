package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/server"
	"github.com/medicus-health/medicus/server/homedir"
)

func serverCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "server", Short: "Create and run a homeserver"}
	cmd.AddCommand(serverInitCmd(), serverRunCmd())
	return cmd
}

func serverInitCmd() *cobra.Command {
	var dir, name, listen string
	var opts homedir.InitOptions
	cmd := &cobra.Command{
		Use:   "init --dir DIR --name SERVER_NAME",
		Short: "Create a homeserver directory: config, database, TLS certificate and ca.pem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := homedir.Init(dir, name, listen, opts); err != nil {
				return err
			}
			abs, _ := filepath.Abs(filepath.Join(dir, homedir.CAFile))
			fmt.Fprintf(cmd.OutOrStdout(), "homeserver %s created in %s\n", name, dir)
			if _, err := os.Stat(abs); err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "clients must trust the CA certificate %s\n", abs)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "homeserver directory to create (required)")
	cmd.Flags().StringVar(&name, "name", "", "server name, a DNS name such as uk-freiburg.example (required)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8443", "client API address")
	cmd.Flags().StringVar(&opts.TLSCertFile, "tls-cert", "", "use this PEM certificate chain instead of a local CA's")
	cmd.Flags().StringVar(&opts.TLSKeyFile, "tls-key", "", "the key of --tls-cert")
	cmd.Flags().StringVar(&opts.CACertFile, "tls-ca", "", "CA certificate clients must trust for --tls-cert (copied to ca.pem)")
	cmd.Flags().StringVar(&opts.FederationListen, "federation-listen", "", "server-to-server address; enables federation")
	cmd.Flags().StringVar(&opts.FederationCertDir, "federation-cert-dir", "", "directory written by `medicus pki issue` for this server")
	cmd.Flags().StringVar(&opts.FederationCA, "federation-ca", "", "federation CA certificate")
	cmd.Flags().StringVar(&opts.FederationCRL, "federation-crl", "", "federation CA revocation list (crl.pem)")
	cmd.Flags().StringArrayVar(&opts.FederationPeers, "peer", nil, "a peer server as name=host:port (repeatable)")
	cmd.MarkFlagRequired("dir")
	cmd.MarkFlagRequired("name")
	return cmd
}

func serverRunCmd() *cobra.Command {
	var dir string
	var debug bool
	var cpuProfile string
	cmd := &cobra.Command{
		Use:   "run --dir DIR",
		Short: "Run a homeserver until SIGINT or SIGTERM, then shut down gracefully",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := homedir.Load(dir)
			if err != nil {
				return err
			}
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			srv, err := server.New(cfg, logger)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Listen)
			if err != nil {
				srv.Close()
				return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
			}
			return srv.Serve(cmd.Context(), ln)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "homeserver directory (required)")
	cmd.Flags().BoolVar(&debug, "debug", false, "log at debug level")
	cmd.Flags().StringVar(&cpuProfile, "cpu-profile", "", "write a CPU profile (pprof) to this file until shutdown")
	cmd.MarkFlagRequired("dir")
	return cmd
}
