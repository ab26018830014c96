// Command medicus runs and administers medicus homeservers. It is thin: it
// parses flags and calls the packages that do the work.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "medicus",
		Short:         "medicus — an end-to-end encrypted clinical messenger",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serverCmd(), adminCmd(), demoCmd(), clientCmd())
	root.AddCommand(sepsisbotCmd())
	root.AddCommand(mlsCmd())
	root.AddCommand(pkiCmd())
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "medicus:", err)
		os.Exit(1)
	}
}
