package main

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/server"
	"github.com/medicus-health/medicus/server/homedir"
)

func adminCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Administer a homeserver (works while it runs)"}
	user := &cobra.Command{Use: "user", Short: "Manage user accounts"}
	user.AddCommand(userAddCmd(), userListCmd(), userDisableCmd())
	cmd.AddCommand(user)
	return cmd
}

func openAdmin(dir string) (*server.Admin, error) {
	cfg, err := homedir.Load(dir)
	if err != nil {
		return nil, err
	}
	return server.OpenAdmin(cfg)
}

// generatePassword returns a random password of 20 characters from an
// alphabet without look-alike characters (about 115 bits).
func generatePassword() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	return randomFrom(alphabet, 20)
}

func randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		// 256 % 57 bias is negligible for a password of this length, but
		// reject-sample anyway to keep the entropy estimate honest.
		for int(b[i]) >= 256-256%len(alphabet) {
			var one [1]byte
			rand.Read(one[:])
			b[i] = one[0]
		}
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func userAddCmd() *cobra.Command {
	var dir, role string
	var generate bool
	cmd := &cobra.Command{
		Use:   "add --dir DIR USER --role doctor|nurse|patient|bot|admin",
		Short: "Add a user; the password is read from stdin, or generated with --generate-password",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var pw string
			if generate {
				pw = generatePassword()
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("read password from stdin: no input (or use --generate-password)")
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			admin, err := openAdmin(dir)
			if err != nil {
				return err
			}
			defer admin.Close()
			id, err := admin.AddUser(cmd.Context(), args[0], role, pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s (%s)\n", id, role)
			if generate {
				fmt.Fprintf(cmd.OutOrStdout(), "password: %s\n(shown once; it is stored only as an argon2id hash)\n", pw)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "homeserver directory (required)")
	cmd.Flags().StringVar(&role, "role", "", "doctor, nurse, patient, bot or admin (required)")
	cmd.Flags().BoolVar(&generate, "generate-password", false, "generate a password and print it once")
	cmd.MarkFlagRequired("dir")
	cmd.MarkFlagRequired("role")
	return cmd
}

func userListCmd() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list --dir DIR",
		Short: "List user accounts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			admin, err := openAdmin(dir)
			if err != nil {
				return err
			}
			defer admin.Close()
			users, err := admin.ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(users)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "USER\tROLE\tSTATUS\tCREATED")
			for _, u := range users {
				status := "active"
				if u.Disabled {
					status = "disabled"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.UserID, u.Role, status, u.CreatedAt.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "homeserver directory (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "machine-readable output")
	cmd.MarkFlagRequired("dir")
	return cmd
}

func userDisableCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "disable --dir DIR USER",
		Short: "Disable a user and log out all of its devices",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			admin, err := openAdmin(dir)
			if err != nil {
				return err
			}
			defer admin.Close()
			if err := admin.DisableUser(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "disabled %s\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "homeserver directory (required)")
	cmd.MarkFlagRequired("dir")
	return cmd
}
