//go:build js && wasm

// Command wasm is the medicus client compiled to WebAssembly for the web
// app: the same MLS and content code as the command-line client, with its
// state sealed in IndexedDB under the user's passphrase. It exposes a small
// promise-based API as the global object medicus (see web/static/app.js).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sync"
	"syscall/js"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/client/state"
)

// profileDir names the IndexedDB database of a browser's profile.
const profileDir = "medicus"

var (
	mu      sync.Mutex
	session *client.Session
)

func main() {
	api := js.Global().Get("Object").New()
	api.Set("login", promised(login))
	api.Set("open", promised(open))
	api.Set("hasProfile", promised(func(context.Context, []js.Value) (any, error) {
		return state.Exists(path.Join(profileDir, client.StateFile)), nil
	}))
	api.Set("rooms", promised(rooms))
	api.Set("createRoom", promised(createRoom))
	api.Set("invite", promised(invite))
	api.Set("sendText", promised(sendText))
	api.Set("sync", promised(syncOnce))
	api.Set("history", promised(history))
	api.Set("logout", promised(logout))
	js.Global().Set("medicus", api)
	js.Global().Call("dispatchEvent", js.Global().Get("Event").New("medicus-ready"))
	select {}
}

// promised wraps fn as a JavaScript function returning a Promise; fn runs
// in its own goroutine, as blocking on the network or IndexedDB from a
// JavaScript callback would deadlock the event loop. Its result crosses as
// JSON.
func promised(fn func(ctx context.Context, args []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(_ js.Value, args []js.Value) any {
		var resolve, reject js.Value
		executor := js.FuncOf(func(_ js.Value, p []js.Value) any {
			resolve, reject = p[0], p[1]
			return nil
		})
		promise := js.Global().Get("Promise").New(executor)
		executor.Release()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			v, err := fn(ctx, args)
			if err != nil {
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			raw, err := json.Marshal(v)
			if err != nil {
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			resolve.Invoke(js.Global().Get("JSON").Call("parse", string(raw)))
		}()
		return promise
	})
}

func arg(args []js.Value, i int) string {
	if i >= len(args) || args[i].Type() != js.TypeString {
		return ""
	}
	return args[i].String()
}

func config(passphrase string) client.Config {
	return client.Config{ProfileDir: profileDir, Lock: state.Lock{Passphrase: passphrase}}
}

var errNoSession = errors.New("not logged in")

func current() (*client.Session, error) {
	mu.Lock()
	defer mu.Unlock()
	if session == nil {
		return nil, errNoSession
	}
	return session, nil
}

// login(server, user, password, passphrase) logs in a new device whose
// state is sealed under passphrase.
func login(ctx context.Context, args []js.Value) (any, error) {
	server, user, password, passphrase := arg(args, 0), arg(args, 1), arg(args, 2), arg(args, 3)
	if passphrase == "" {
		return nil, errors.New("a passphrase is required to protect the keys in this browser")
	}
	return adopt(client.Login(ctx, config(passphrase), server, nil, user, password, &client.LoginOptions{DeviceName: "web"}))
}

// open(passphrase) reopens the session stored in this browser.
func open(ctx context.Context, args []js.Value) (any, error) {
	return adopt(client.Open(ctx, config(arg(args, 0))))
}

// adopt makes s the current session, closing any earlier one, and returns
// who it is.
func adopt(s *client.Session, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	mu.Lock()
	old := session
	session = s
	mu.Unlock()
	if old != nil {
		old.Close()
	}
	return map[string]string{"user": s.UserID(), "device": s.DeviceID()}, nil
}

func rooms(context.Context, []js.Value) (any, error) {
	s, err := current()
	if err != nil {
		return nil, err
	}
	return s.Rooms(), nil
}

func createRoom(ctx context.Context, args []js.Value) (any, error) {
	s, err := current()
	if err != nil {
		return nil, err
	}
	return s.CreateRoom(ctx, arg(args, 0))
}

func invite(ctx context.Context, args []js.Value) (any, error) {
	s, err := current()
	if err != nil {
		return nil, err
	}
	return nil, s.Invite(ctx, arg(args, 0), arg(args, 1))
}

func sendText(ctx context.Context, args []js.Value) (any, error) {
	s, err := current()
	if err != nil {
		return nil, err
	}
	return s.SendText(ctx, arg(args, 0), arg(args, 1))
}

// entry is a timeline entry as the UI shows it.
type entry struct {
	Room   string    `json:"room"`
	Seq    int64     `json:"seq"`
	Sender string    `json:"sender"`
	Time   time.Time `json:"time"`
	Own    bool      `json:"own"`
	// Text is the message's Markdown; Notice describes what is not text.
	Text   string `json:"text,omitempty"`
	Notice string `json:"notice,omitempty"`
}

func entries(msgs []client.Message) []entry {
	out := make([]entry, 0, len(msgs))
	for _, m := range msgs {
		e := entry{Room: m.Room, Seq: m.Seq, Sender: m.Sender, Time: m.Time, Own: m.Own, Notice: m.Notice}
		if m.Type == client.TypeContent {
			if c, err := content.Decode(m.Content); err != nil {
				e.Notice = "undecodable content"
			} else if t, ok := c.Body.(*content.Text); ok {
				e.Text = t.Markdown
			} else {
				e.Notice = fmt.Sprintf("%s message", c.Body.Type())
			}
		}
		out = append(out, e)
	}
	return out
}

// sync() runs one sync round and returns the new timeline entries.
func syncOnce(ctx context.Context, _ []js.Value) (any, error) {
	s, err := current()
	if err != nil {
		return nil, err
	}
	msgs, err := s.Sync(ctx)
	if err != nil {
		return nil, err
	}
	return entries(msgs), nil
}

// history(room) returns the room's cached timeline.
func history(ctx context.Context, args []js.Value) (any, error) {
	s, err := current()
	if err != nil {
		return nil, err
	}
	msgs, err := s.History(ctx, arg(args, 0), 0, 1000)
	if err != nil {
		return nil, err
	}
	return entries(msgs), nil
}

// logout() closes the session and deletes this browser's keys and state.
func logout(ctx context.Context, _ []js.Value) (any, error) {
	mu.Lock()
	s := session
	session = nil
	mu.Unlock()
	if s != nil {
		s.Close()
	}
	return nil, state.Remove(ctx, path.Join(profileDir, client.StateFile))
}
