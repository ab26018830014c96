package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/mlsinterop"
)

func mlsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mls",
		Short: "MLS (RFC 9420) tools",
	}
	cmd.AddCommand(mlsInteropServerCmd())
	return cmd
}

func mlsInteropServerCmd() *cobra.Command {
	var port int
	cmd := &cobra.Command{
		Use:   "interop-server",
		Short: "Serve crypto/mls to the MLS working group's interop test-runner (gRPC on 127.0.0.1) until Ctrl-C",
		Long: `interop-server serves the mls_client.MLSClient gRPC service of the MLS
working group's interoperability test-runner (mlswg/mls-implementations),
backed by medicus's crypto/mls, on 127.0.0.1:PORT without TLS. It prints the
address it listens on; --port 0 picks a free port. Group states live in
memory only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port < 0 || port > 65535 {
				return fmt.Errorf("--port %d out of range", port)
			}
			lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("mls interop server: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "mls interop server listening on %s\n", lis.Addr())
			return mlsinterop.Serve(cmd.Context(), lis)
		},
	}
	cmd.Flags().IntVar(&port, "port", 50001, "TCP port on 127.0.0.1 (0 picks a free one)")
	return cmd
}
