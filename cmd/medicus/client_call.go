package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/api"
	"github.com/medicus-health/medicus/client/call"
	"github.com/medicus-health/medicus/proto"
)

// callSocket is the control socket of a running call in a profile, through
// which `medicus client hangup` reaches it.
func callSocket(profile string) string { return filepath.Join(profile, "call.sock") }

// callFlags are the options of call and answer.
type callFlags struct {
	media     string
	synthetic bool
	relayOnly bool
}

func (cf *callFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&cf.media, "media", "", "send this IVF (VP8) video file instead of synthetic video")
	cmd.Flags().BoolVar(&cf.synthetic, "synthetic", false, "send synthetic video and audio (the default without --media)")
	cmd.Flags().BoolVar(&cf.relayOnly, "relay-only", false, "send media only through the homeserver's TURN relay (hides this device's addresses)")
}

// runCall opens the session, starts a switchboard whose signalling travels
// as MLS-encrypted device messages, follows the session to deliver the
// other side's events, and runs fn (placing or answering) to the call's end.
func runCall(ctx context.Context, f *clientFlags, cf *callFlags, fn func(ctx context.Context, sb *call.Switchboard, ups <-chan call.Update) (call.Reason, error)) error {
	if cf.media != "" && cf.synthetic {
		return errors.New("give --media or --synthetic, not both")
	}
	s, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	media, err := call.MediaFlag(cf.media)
	if err != nil {
		return err
	}
	peer := call.PeerConfig{Media: media, RelayOnly: cf.relayOnly}
	tr, err := s.API().TURNServer(ctx)
	switch {
	case err == nil:
		peer.ICEServers = call.ICEServers(tr.Username, tr.Password, tr.URIs)
	case api.IsCode(err, proto.ErrNotFound) && !cf.relayOnly:
		// The homeserver runs no TURN relay: direct connections only.
	default:
		return fmt.Errorf("TURN credentials: %w", err)
	}
	ups := make(chan call.Update, 64)
	sb, err := call.New(call.Config{UserID: s.UserID(), DeviceID: s.DeviceID(), Signaller: call.SessionSignaller{Session: s}, Peer: peer, Updates: ups})
	if err != nil {
		return err
	}
	defer sb.Close()
	ctl, err := call.ListenControl(callSocket(f.profile))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go ctl.Serve(ctx, sb)
	go s.Follow(ctx, func(msgs []client.Message) {
		for _, m := range msgs {
			if m.Ephemeral && m.Type == client.TypeContent {
				sb.DeliverContent(ctx, m.Room, m.Sender, m.SenderDevice, m.Time, m.Content)
			}
		}
	})
	reason, err := fn(ctx, sb, ups)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	switch reason {
	case "", call.ReasonUserHangup:
		return nil
	}
	return fmt.Errorf("call ended: %s", reason)
}

func clientCallCmd(f *clientFlags) *cobra.Command {
	cf := &callFlags{}
	cmd := &cobra.Command{
		Use: "call ROOM USER", Short: "Call a member of a room (WebRTC; signalling end-to-end encrypted in the room's MLS group)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCall(cmd.Context(), f, cf, func(ctx context.Context, sb *call.Switchboard, ups <-chan call.Update) (call.Reason, error) {
				return call.PlaceAndFollow(ctx, sb, ups, args[0], args[1], cmd.OutOrStdout(), f.json)
			})
		},
	}
	cf.register(cmd)
	return cmd
}

func clientAnswerCmd(f *clientFlags) *cobra.Command {
	cf := &callFlags{}
	var from string
	cmd := &cobra.Command{
		Use: "answer [--from USER]", Short: "Wait for an incoming call and answer it", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCall(cmd.Context(), f, cf, func(ctx context.Context, sb *call.Switchboard, ups <-chan call.Update) (call.Reason, error) {
				return call.AnswerAndFollow(ctx, sb, ups, from, cmd.OutOrStdout(), f.json)
			})
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "answer only calls from this user")
	cf.register(cmd)
	return cmd
}

func clientHangupCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use: "hangup [CALL_ID]", Short: "End the call running in this profile (`call` or `answer` in another terminal)", Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.profile == "" {
				return errors.New("--profile is required")
			}
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			ended, err := call.RequestHangup(cmd.Context(), callSocket(f.profile), id)
			if err != nil {
				return err
			}
			out := output{cmd.OutOrStdout(), f.json}
			return out.emit(map[string]any{"hung_up": ended}, fmt.Sprintf("hung up %v", ended))
		},
	}
}
