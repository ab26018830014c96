package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/client/state"
	"github.com/medicus-health/medicus/crypto/identity"
	"github.com/medicus-health/medicus/crypto/mls"
)

// clientFlags are the flags every client subcommand shares.
type clientFlags struct {
	profile string
	keyFile string
	json    bool
}

// passphraseEnv names the environment variable that holds the passphrase
// of a client profile locked with a passphrase.
const passphraseEnv = "MEDICUS_PASSPHRASE"

func (f *clientFlags) lock(create bool) (state.Lock, error) {
	if f.keyFile != "" {
		if _, err := os.Stat(f.keyFile); errors.Is(err, os.ErrNotExist) && create {
			if err := state.GenerateKeyFile(f.keyFile); err != nil {
				return state.Lock{}, err
			}
		}
		return state.Lock{KeyFile: f.keyFile}, nil
	}
	if p := os.Getenv(passphraseEnv); p != "" {
		return state.Lock{Passphrase: p}, nil
	}
	return state.Lock{}, fmt.Errorf("the profile is locked with a key file (--key-file) or a passphrase (%s); give one", passphraseEnv)
}

func (f *clientFlags) config(create bool) (client.Config, error) {
	if f.profile == "" {
		return client.Config{}, errors.New("--profile is required")
	}
	lock, err := f.lock(create)
	if err != nil {
		return client.Config{}, err
	}
	return client.Config{ProfileDir: f.profile, Lock: lock}, nil
}

func (f *clientFlags) open(ctx context.Context) (*client.Session, error) {
	cfg, err := f.config(false)
	if err != nil {
		return nil, err
	}
	return client.Open(ctx, cfg)
}

// output prints one JSON object per line with --json, text otherwise.
type output struct {
	w    io.Writer
	json bool
}

func (o output) emit(v any, human string) error {
	if o.json {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(o.w, human)
	return err
}

func clientCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := &cobra.Command{Use: "client", Short: "Use medicus as a messenger: end-to-end encrypted rooms from the command line"}
	cmd.PersistentFlags().StringVar(&f.profile, "profile", "", "profile directory holding this device's encrypted state")
	cmd.PersistentFlags().StringVar(&f.keyFile, "key-file", "", "age key file that locks the state (created at login if missing); otherwise the passphrase in $"+passphraseEnv)
	cmd.PersistentFlags().BoolVar(&f.json, "json", false, "print one JSON object per line")
	// withSession runs fn with the opened session.
	withSession := func(fn func(ctx context.Context, s *client.Session, out output, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			s, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			return fn(cmd.Context(), s, output{cmd.OutOrStdout(), f.json}, args)
		}
	}
	room := &cobra.Command{Use: "room", Short: "Create rooms"}
	room.AddCommand(clientRoomCreateCmd(withSession))
	consent := &cobra.Command{Use: "consent", Short: "Ask for, give and export signed FHIR consent"}
	consent.AddCommand(clientConsentRequestCmd(withSession), clientConsentAnswerCmd(withSession), clientConsentExportCmd(withSession))
	identityCmd := &cobra.Command{Use: "identity", Short: "Export the user's identity key for a further device"}
	identityCmd.AddCommand(clientIdentityExportCmd(f))
	cmd.AddCommand(clientLoginCmd(f), clientRoomsCmd(withSession), room, clientInviteCmd(withSession), clientRemoveCmd(withSession),
		clientSendCmd(withSession), clientSendFHIRCmd(withSession), clientSendFileCmd(withSession), clientDownloadCmd(withSession),
		clientSyncCmd(withSession), clientHistoryCmd(withSession), clientVerifyCmd(withSession), clientDevicesCmd(withSession),
		clientAckCmd(withSession), clientUpdateCmd(withSession), consent, identityCmd,
		clientCallCmd(f), clientAnswerCmd(f), clientHangupCmd(f))
	return cmd
}

type sessionRunner func(fn func(ctx context.Context, s *client.Session, out output, args []string) error) func(*cobra.Command, []string) error

func clientLoginCmd(f *clientFlags) *cobra.Command {
	var server, caFile, user, deviceName, identityFile string
	cmd := &cobra.Command{
		Use:   "login --server URL --ca CA_FILE --user @u:server",
		Short: "Log in as a new device (password on stdin) and create the profile",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(true)
			if err != nil {
				return err
			}
			ca, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("read CA file: %w", err)
			}
			password, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("read password from stdin: %w", err)
			}
			password = strings.TrimRight(password, "\r\n")
			if password == "" {
				return errors.New("no password on stdin")
			}
			opts := &client.LoginOptions{DeviceName: deviceName}
			if identityFile != "" {
				if opts.Identity, err = readIdentityFile(identityFile, cfg.Lock); err != nil {
					return err
				}
			}
			s, err := client.Login(cmd.Context(), cfg, server, ca, user, password, opts)
			if err != nil {
				return err
			}
			defer s.Close()
			out := output{cmd.OutOrStdout(), f.json}
			return out.emit(map[string]string{"user_id": s.UserID(), "device_id": s.DeviceID(), "role": s.Role(), "profile": cfg.ProfileDir},
				fmt.Sprintf("logged in as %s, device %s (profile %s)", s.UserID(), s.DeviceID(), cfg.ProfileDir))
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "homeserver URL, https://host:port")
	cmd.Flags().StringVar(&caFile, "ca", "", "CA certificate file to trust for the homeserver")
	cmd.Flags().StringVar(&user, "user", "", "user id, @user:server")
	cmd.Flags().StringVar(&deviceName, "device-name", "medicus client", "name of this device in the user's device list")
	cmd.Flags().StringVar(&identityFile, "identity", "", "identity key file exported from another device of the user")
	for _, n := range []string{"server", "ca", "user"} {
		cmd.MarkFlagRequired(n)
	}
	return cmd
}

func clientRoomsCmd(run sessionRunner) *cobra.Command {
	return &cobra.Command{
		Use: "rooms", Short: "List the rooms of this device", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, s *client.Session, out output, _ []string) error {
			for _, r := range s.Rooms() {
				var members []string
				for u, devs := range r.Members {
					members = append(members, fmt.Sprintf("%s (%d)", u, len(devs)))
				}
				state := fmt.Sprintf("epoch %d", r.Epoch)
				if r.Left {
					state = "left"
				}
				if err := out.emit(r, fmt.Sprintf("%s  %q  %s  members: %s", r.RoomID, r.Name, state, strings.Join(members, ", "))); err != nil {
					return err
				}
			}
			return nil
		}),
	}
}

func clientRoomCreateCmd(run sessionRunner) *cobra.Command {
	var name, suite string
	var opts client.RoomOptions
	cmd := &cobra.Command{
		Use: "create --name NAME", Short: "Create a room (an MLS group with this device in it)", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, s *client.Session, out output, _ []string) error {
			if suite != "" {
				cs, err := mls.ParseCipherSuite(suite)
				if err != nil {
					return fmt.Errorf("--suite: %w", err)
				}
				opts.Suite = cs
			}
			id, err := s.CreateRoomWith(ctx, name, opts)
			if err != nil {
				return err
			}
			return out.emit(map[string]string{"room_id": id, "name": name}, id)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "room name, kept end-to-end encrypted in the clients")
	cmd.Flags().StringSliceVar(&opts.AllowedServers, "servers", nil, "admit only users of these homeservers (comma-separated); default: every federated server")
	cmd.Flags().StringVar(&suite, "suite", "", "MLS cipher suite of the room, by name or number (e.g. 0xf001 for the X-Wing post-quantum hybrid); default 0x0001")
	return cmd
}

func clientInviteCmd(run sessionRunner) *cobra.Command {
	return &cobra.Command{
		Use: "invite ROOM USER", Short: "Add every device of a user to a room", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			if err := s.Invite(ctx, args[0], args[1]); err != nil {
				return err
			}
			return out.emit(map[string]string{"room_id": args[0], "invited": args[1]}, "invited "+args[1])
		}),
	}
}

func clientRemoveCmd(run sessionRunner) *cobra.Command {
	return &cobra.Command{
		Use: "remove ROOM USER", Short: "Remove every device of a user from a room", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			if err := s.Remove(ctx, args[0], args[1]); err != nil {
				return err
			}
			return out.emit(map[string]string{"room_id": args[0], "removed": args[1]}, "removed "+args[1])
		}),
	}
}

func clientUpdateCmd(run sessionRunner) *cobra.Command {
	return &cobra.Command{
		Use: "update ROOM", Short: "Refresh this device's keys in a room (post-compromise security)", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			if err := s.SelfUpdate(ctx, args[0]); err != nil {
				return err
			}
			info, _ := s.Room(args[0])
			return out.emit(map[string]any{"room_id": args[0], "epoch": info.Epoch}, fmt.Sprintf("keys updated; epoch %d", info.Epoch))
		}),
	}
}

func emitSent(out output, room string, sent client.Sent) error {
	return out.emit(map[string]any{"room_id": room, "seq": sent.Seq, "id": sent.ID}, fmt.Sprintf("sent as #%d", sent.Seq))
}

func clientSendCmd(run sessionRunner) *cobra.Command {
	return &cobra.Command{
		Use: "send ROOM TEXT", Short: "Send a markdown text message", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			sent, err := s.SendText(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			return emitSent(out, args[0], sent)
		}),
	}
}

// maxFHIRFile bounds a FHIR resource read from a file.
const maxFHIRFile = 4 << 20

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

func clientSendFHIRCmd(run sessionRunner) *cobra.Command {
	return &cobra.Command{
		Use: "send-fhir ROOM FILE.json", Short: "Send a FHIR R4 resource (Observation, DiagnosticReport, Consent, QuestionnaireResponse)", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			res, err := readBounded(args[1], maxFHIRFile)
			if err != nil {
				return err
			}
			sent, err := s.SendFHIR(ctx, args[0], res)
			if err != nil {
				return err
			}
			return emitSent(out, args[0], sent)
		}),
	}
}

func parseSeq(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "#"), 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("EVENT must be a message number like 12 or #12, not %q", s)
	}
	return n, nil
}

func clientSendFileCmd(run sessionRunner) *cobra.Command {
	var opts client.FileOptions
	cmd := &cobra.Command{
		Use: "send-file ROOM PATH", Short: "Encrypt a file (image, PDF, DICOM...) and send it", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			sent, err := s.SendFile(ctx, args[0], args[1], &opts)
			if err != nil {
				return err
			}
			return emitSent(out, args[0], sent)
		}),
	}
	cmd.Flags().StringVar(&opts.MediaType, "type", "", "media type (detected if not given)")
	cmd.Flags().StringVar(&opts.Name, "name", "", "file name shown to the room (default: the file's own)")
	cmd.Flags().BoolVar(&opts.IncludePatient, "include-patient", false, "include a DICOM file's patient name and id in the preview")
	return cmd
}

func clientDownloadCmd(run sessionRunner) *cobra.Command {
	var outPath string
	var thumbnail bool
	cmd := &cobra.Command{
		Use: "download ROOM EVENT --out PATH", Short: "Download, verify and decrypt an attachment", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			seq, err := parseSeq(args[1])
			if err != nil {
				return err
			}
			if thumbnail {
				b, err := s.DownloadThumbnail(ctx, args[0], seq)
				if err != nil {
					return err
				}
				if err := os.WriteFile(outPath, b, 0o600); err != nil {
					return err
				}
				return out.emit(map[string]any{"file": outPath, "size": len(b)}, fmt.Sprintf("thumbnail written to %s", outPath))
			}
			a, err := s.Download(ctx, args[0], seq, outPath)
			if err != nil {
				return err
			}
			return out.emit(map[string]any{"file": outPath, "size": a.Size, "type": a.MediaType, "name": a.Name},
				fmt.Sprintf("%s (%s, %d bytes) verified and written to %s", a.Name, a.MediaType, a.Size, outPath))
		}),
	}
	cmd.Flags().StringVar(&outPath, "out", "", "where to write the decrypted file")
	cmd.Flags().BoolVar(&thumbnail, "thumbnail", false, "download the image's thumbnail instead")
	cmd.MarkFlagRequired("out")
	return cmd
}

func clientAckCmd(run sessionRunner) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use: "ack ROOM EVENT", Short: "Acknowledge a sepsis alert", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			seq, err := parseSeq(args[1])
			if err != nil {
				return err
			}
			sent, err := s.AckAlert(ctx, args[0], seq, note)
			if err != nil {
				return err
			}
			return emitSent(out, args[0], sent)
		}),
	}
	cmd.Flags().StringVar(&note, "note", "", "optional note, e.g. what was done")
	return cmd
}

// printMessages prints messages as they are shown to a user.
func printMessages(out output, msgs []client.Message) error {
	for _, m := range msgs {
		if err := out.emit(messageJSON(m), describe(m)); err != nil {
			return err
		}
	}
	return nil
}

// messageJSON is a message with its content as a JSON object.
func messageJSON(m client.Message) any {
	type jsonMessage struct {
		client.Message
		Content json.RawMessage `json:"content,omitempty"`
	}
	jm := jsonMessage{Message: m}
	if m.Type == client.TypeContent && json.Valid(m.Content) {
		jm.Content = m.Content
	}
	return jm
}

func describe(m client.Message) string {
	head := fmt.Sprintf("%s #%d %s %s", m.Room, m.Seq, m.Time.Local().Format("2006-01-02 15:04"), m.Sender)
	if m.Ephemeral {
		head = fmt.Sprintf("%s (direct) %s %s", m.Room, m.Time.Local().Format("2006-01-02 15:04"), m.Sender)
	}
	if m.Type != client.TypeContent {
		return fmt.Sprintf("%s [%s] %s", head, m.Type, m.Notice)
	}
	c, err := m.Decode()
	if err != nil {
		return fmt.Sprintf("%s [unreadable content: %v]", head, err)
	}
	return head + ": " + summarize(c)
}

func summarize(c *content.Message) string {
	switch b := c.Body.(type) {
	case *content.Text:
		return b.Markdown
	case *content.Reply:
		return "(reply) " + b.Markdown
	case *content.Reaction:
		return "(reaction) " + b.Key
	case *content.Edit:
		return "(edit) " + b.Markdown
	case *content.Retraction:
		return "(message retracted)"
	case *content.Attachment:
		s := fmt.Sprintf("[file %q, %s, %d bytes]", b.Name, b.MediaType, b.Size)
		if b.DICOM != nil {
			s += fmt.Sprintf(" DICOM %s %s %s", b.DICOM.Modality, b.DICOM.StudyDate, b.DICOM.StudyDescription)
		}
		if b.Thumbnail != nil {
			s += fmt.Sprintf(" (thumbnail %dx%d)", b.Thumbnail.Width, b.Thumbnail.Height)
		}
		return s
	case *content.FHIR:
		return "[FHIR " + describeFHIR(b.Parsed()) + "]"
	case *content.Alert:
		s := fmt.Sprintf("SEPSIS ALERT %s %s: risk %.0f%% (%s)", b.Bed, b.Patient, 100*b.Risk, b.Trend)
		if b.Scores.QSOFA != nil {
			s += fmt.Sprintf(" qSOFA %d", *b.Scores.QSOFA)
		}
		if b.Scores.SIRS != nil {
			s += fmt.Sprintf(" SIRS %d", *b.Scores.SIRS)
		}
		if b.Scores.NEWS2 != nil {
			s += fmt.Sprintf(" NEWS2 %d", *b.Scores.NEWS2)
		}
		var top []string
		for _, t := range b.Top {
			top = append(top, fmt.Sprintf("%s %g %s", t.Variable, t.Value, t.Unit))
		}
		if len(top) > 0 {
			s += "; " + strings.Join(top, ", ")
		}
		return s + fmt.Sprintf("; data of %s, level %d", b.DataTime.Time().Local().Format("15:04"), b.Level)
	case *content.AlertAck:
		return fmt.Sprintf("(alert %s acknowledged by %s) %s", b.AlertID, b.AckedBy, b.Note)
	case *content.ConsentRequest:
		return "[consent request] " + b.Markdown
	case *content.ConsentResponse:
		if b.Given() {
			return "[consent given, signed by " + b.Signer + "]"
		}
		return "[consent refused, signed by " + b.Signer + "]"
	case *content.Call:
		return "[call " + b.Event + "]"
	}
	return "[" + string(c.Body.Type()) + "]"
}

func describeFHIR(r *content.Resource) string {
	if r == nil {
		return "resource"
	}
	if o := r.Observation; o != nil {
		s := "Observation"
		if o.Code.Text != nil {
			s += " " + *o.Code.Text
		} else if len(o.Code.Coding) > 0 && o.Code.Coding[0].Display != nil {
			s += " " + *o.Code.Coding[0].Display
		}
		if q := o.ValueQuantity; q != nil && q.Value != nil {
			s += " = " + q.Value.String()
			if q.Unit != nil {
				s += " " + *q.Unit
			}
		}
		return s
	}
	return r.ResourceType
}

func clientSyncCmd(run sessionRunner) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use: "sync", Short: "Fetch, decrypt and print new messages (--follow to keep going)", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, s *client.Session, out output, _ []string) error {
			if !follow {
				msgs, err := s.Sync(ctx)
				if err != nil {
					return err
				}
				return printMessages(out, msgs)
			}
			var printErr error
			err := s.Follow(ctx, func(msgs []client.Message) {
				if err := printMessages(out, msgs); err != nil && printErr == nil {
					printErr = err
				}
			})
			if errors.Is(err, context.Canceled) {
				err = nil
			}
			return errors.Join(err, printErr)
		}),
	}
	cmd.Flags().BoolVar(&follow, "follow", false, "keep syncing until interrupted")
	return cmd
}

func clientHistoryCmd(run sessionRunner) *cobra.Command {
	var from int64
	var limit int
	cmd := &cobra.Command{
		Use: "history ROOM", Short: "Print the messages of a room this device has seen", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			msgs, err := s.History(ctx, args[0], from, limit)
			if err != nil {
				return err
			}
			return printMessages(out, msgs)
		}),
	}
	cmd.Flags().Int64Var(&from, "from", 1, "first message number")
	cmd.Flags().IntVar(&limit, "limit", 1000, "at most this many messages")
	return cmd
}

func clientVerifyCmd(run sessionRunner) *cobra.Command {
	var mark bool
	cmd := &cobra.Command{
		Use: "verify USER", Short: "Show the safety number to compare with USER out of band", Args: cobra.ExactArgs(1),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			id, err := s.Verify(ctx, args[0], mark)
			if err != nil {
				return err
			}
			human := fmt.Sprintf("safety number with %s:\n  %s\ncompare it with theirs in person or by phone", id.UserID, id.SafetyNumber)
			if !id.Known {
				human = "no identity key known for " + id.UserID + " yet: share a room first"
			} else if id.Verified {
				human += "\n(marked as verified)"
			}
			for _, w := range id.Warnings {
				human += fmt.Sprintf("\nWARNING: at %s %s appeared with another identity key, which was refused", w.Time.Local().Format(time.DateTime), w.UserID)
			}
			return out.emit(id, human)
		}),
	}
	cmd.Flags().BoolVar(&mark, "mark-verified", false, "record that the safety numbers matched")
	return cmd
}

func clientDevicesCmd(run sessionRunner) *cobra.Command {
	return &cobra.Command{
		Use: "devices", Short: "List the user's devices", Args: cobra.NoArgs,
		RunE: run(func(ctx context.Context, s *client.Session, out output, _ []string) error {
			devs, err := s.Devices(ctx)
			if err != nil {
				return err
			}
			for _, d := range devs {
				mark := ""
				if d.DeviceID == s.DeviceID() {
					mark = " (this device)"
				}
				if err := out.emit(d, fmt.Sprintf("%s  %q  last seen %s%s", d.DeviceID, d.Name, d.LastSeenAt.Local().Format(time.DateTime), mark)); err != nil {
					return err
				}
			}
			return nil
		}),
	}
}

func clientConsentRequestCmd(run sessionRunner) *cobra.Command {
	var text string
	cmd := &cobra.Command{
		Use: "request ROOM CONSENT.json", Short: "Ask for consent with a draft FHIR Consent", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			c, err := readBounded(args[1], maxFHIRFile)
			if err != nil {
				return err
			}
			sent, err := s.RequestConsent(ctx, args[0], c, text)
			if err != nil {
				return err
			}
			return emitSent(out, args[0], sent)
		}),
	}
	cmd.Flags().StringVar(&text, "text", "", "explanation for the patient (markdown)")
	return cmd
}

func clientConsentAnswerCmd(run sessionRunner) *cobra.Command {
	var give, refuse bool
	cmd := &cobra.Command{
		Use: "answer ROOM EVENT (--give | --refuse)", Short: "Give or refuse a requested consent, signed with your identity key", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			if give == refuse {
				return errors.New("give exactly one of --give and --refuse")
			}
			seq, err := parseSeq(args[1])
			if err != nil {
				return err
			}
			sent, err := s.AnswerConsent(ctx, args[0], seq, give)
			if err != nil {
				return err
			}
			return emitSent(out, args[0], sent)
		}),
	}
	cmd.Flags().BoolVar(&give, "give", false, "give consent")
	cmd.Flags().BoolVar(&refuse, "refuse", false, "refuse consent")
	return cmd
}

func clientConsentExportCmd(run sessionRunner) *cobra.Command {
	var outFile string
	cmd := &cobra.Command{
		Use: "export ROOM EVENT --out FILE", Short: "Verify a signed consent answer and export the record", Args: cobra.ExactArgs(2),
		RunE: run(func(ctx context.Context, s *client.Session, out output, args []string) error {
			seq, err := parseSeq(args[1])
			if err != nil {
				return err
			}
			rec, err := s.ExportConsent(ctx, args[0], seq)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(rec, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(outFile, append(b, '\n'), 0o600); err != nil {
				return err
			}
			return out.emit(map[string]any{"file": outFile, "given": rec.Given, "signer": rec.Signer, "verified_key": rec.Verified},
				fmt.Sprintf("consent of %s (given: %v), signature verified; written to %s", rec.Signer, rec.Given, outFile))
		}),
	}
	cmd.Flags().StringVar(&outFile, "out", "", "file to write the record to")
	cmd.MarkFlagRequired("out")
	return cmd
}

// readIdentityFile reads an identity key exported by `identity export`,
// which is locked like the profile.
func readIdentityFile(path string, lock state.Lock) (*identity.Key, error) {
	seed, err := state.OpenSealedFile(path, lock)
	if err != nil {
		return nil, fmt.Errorf("read identity file: %w", err)
	}
	return identity.KeyFromSeed(seed)
}

func clientIdentityExportCmd(f *clientFlags) *cobra.Command {
	var outFile string
	cmd := &cobra.Command{
		Use: "export --out FILE", Short: "Write the user's identity key, locked like the profile, for a further device", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(false)
			if err != nil {
				return err
			}
			s, err := client.Open(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := state.SealFile(outFile, s.IdentityKey().Seed(), cfg.Lock); err != nil {
				return err
			}
			out := output{cmd.OutOrStdout(), f.json}
			return out.emit(map[string]string{"file": outFile}, "identity key written to "+outFile+
				"; log in on the new device with --identity "+outFile+" and the same key file or passphrase")
		},
	}
	cmd.Flags().StringVar(&outFile, "out", "", "file to write")
	cmd.MarkFlagRequired("out")
	return cmd
}
