package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pion/webrtc/v4"
)

// ICEServers turns the homeserver's TURN REST credentials (GET
// /v1/voip/turn: username, password, uris) into the ICE server list of
// PeerConfig. It returns nil if there are no URIs.
func ICEServers(username, password string, uris []string) []webrtc.ICEServer {
	if len(uris) == 0 {
		return nil
	}
	return []webrtc.ICEServer{{
		URLs:           append([]string(nil), uris...),
		Username:       username,
		Credential:     password,
		CredentialType: webrtc.ICECredentialTypePassword,
	}}
}

// MediaFlag turns the command's media flags into PeerConfig.Media: the IVF
// file at path if path is set (checked now, so a bad file fails before any
// call is placed), synthetic media otherwise.
func MediaFlag(path string) (func() (MediaSource, error), error) {
	if path == "" {
		return func() (MediaSource, error) { return Synthetic{}, nil }, nil
	}
	f, err := OpenIVF(path)
	if err != nil {
		return nil, err
	}
	return func() (MediaSource, error) { return f, nil }, nil
}

// WriteUpdate writes one update to w: a JSON object on one line if asJSON,
// a short human-readable line otherwise.
func WriteUpdate(w io.Writer, u Update, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(u)
		if err != nil {
			return fmt.Errorf("encode update: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s call %s %s %s", u.Direction, u.CallID, u.Peer, u.Event)
	switch {
	case u.Event == "connected":
		fmt.Fprintf(&b, " after %.0f ms", u.TimeToConnectMillis)
	case u.Event == "ended":
		fmt.Fprintf(&b, ": %s", u.Reason)
		if u.Remote {
			b.WriteString(" (by the other side)")
		}
	}
	if s := u.Stats; s != nil {
		fmt.Fprintf(&b, " — rtp %d received, %d lost, rtt %.1f ms, %s/%s",
			s.PacketsReceived, s.PacketsLost, s.RTTMillis, s.LocalCandidate, s.RemoteCandidate)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

// Follow writes the updates of call id to w until the call ends, then
// returns its end reason. If ctx is done first (Ctrl-C), it hangs the call
// up with user_hangup and still waits for the "ended" update. Updates of
// other calls are written too; an incoming call that rings meanwhile is not
// answered.
func Follow(ctx context.Context, sb *Switchboard, updates <-chan Update, id string, w io.Writer, asJSON bool) (Reason, error) {
	hungUp := false
	for {
		select {
		case u, ok := <-updates:
			if err := writeNext(w, u, ok, asJSON); err != nil {
				return "", err
			}
			if u.CallID == id && u.Event == StateEnded.String() {
				return u.Reason, nil
			}
		case <-ctx.Done():
			if hungUp {
				continue
			}
			hungUp = true
			if err := sb.Hangup(context.WithoutCancel(ctx), id, ReasonUserHangup); err != nil && !errors.Is(err, ErrWrongState) {
				return "", err
			}
		}
	}
}

// PlaceAndFollow is `medicus client call ROOM USER`: it places the call and
// follows it to its end (see Follow). updates must be the switchboard's
// Config.Updates channel.
func PlaceAndFollow(ctx context.Context, sb *Switchboard, updates <-chan Update, room, user string, w io.Writer, asJSON bool) (Reason, error) {
	c, err := sb.Place(ctx, room, user)
	if err != nil {
		return "", err
	}
	return Follow(ctx, sb, updates, c.ID(), w, asJSON)
}

// AnswerAndFollow is `medicus client answer`: it waits for an incoming call
// (from the given user, or anyone if from is empty), answers it and follows
// it to its end.
func AnswerAndFollow(ctx context.Context, sb *Switchboard, updates <-chan Update, from string, w io.Writer, asJSON bool) (Reason, error) {
	for {
		select {
		case u, ok := <-updates:
			if err := writeNext(w, u, ok, asJSON); err != nil {
				return "", err
			}
			if u.Event != StateRinging.String() || u.Direction != Incoming || (from != "" && u.Peer != from) {
				continue
			}
			if err := sb.Answer(ctx, u.CallID); err != nil {
				return "", err
			}
			return Follow(ctx, sb, updates, u.CallID, w, asJSON)
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// writeNext writes an update received from the switchboard's channel, or
// reports that the channel was closed.
func writeNext(w io.Writer, u Update, ok, asJSON bool) error {
	if !ok {
		return ErrClosed
	}
	return WriteUpdate(w, u, asJSON)
}
