package federation

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medicus-health/medicus/proto"
)

// clientFixture is Heidelberg calling Freiburg, a test peer served with
// Freiburg's federation TLS configuration.
type clientFixture struct {
	ca       *testCA
	client   *Client
	trust    *Trust // Heidelberg's
	requests atomic.Int64
	addr     string
}

func newClientFixture(t *testing.T, h http.HandlerFunc) *clientFixture {
	t.Helper()
	f := &clientFixture{ca: newTestCA(t)}
	frCert, _ := f.ca.issue(t, freiburg)
	hdCert, _ := f.ca.issue(t, heidelberg)
	frTrust := f.ca.trust(t, []string{heidelberg}, nil)
	ts := peerServer(t, frTrust, frCert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if name, ok := frTrust.PeerName(r); !ok || name != heidelberg {
			http.Error(w, "no peer name", http.StatusUnauthorized)
			return
		}
		h(w, r)
	}))
	f.addr = ts.Listener.Addr().String()
	f.trust = f.ca.trust(t, []string{freiburg, stuttgart}, nil)
	f.client = NewClient(f.trust, hdCert, map[string]string{freiburg: f.addr, stuttgart: f.addr, "unlisted.test": f.addr})
	t.Cleanup(f.client.CloseIdle)
	return f
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClientDoSendsJSONAndDecodesAnswer(t *testing.T) {
	type ping struct {
		Text string `json:"text"`
		N    int    `json:"n"`
	}
	f := newClientFixture(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "PUT" || r.URL.Path != "/fed/v1/echo" || r.Header.Get("Content-Type") != "application/json" || r.Host != freiburg {
			http.Error(w, "unexpected request "+r.Method+" "+r.Host+r.URL.Path, http.StatusBadRequest)
			return
		}
		var in ping
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		in.N++
		in.Text = strings.ToUpper(in.Text)
		json.NewEncoder(w).Encode(in)
	})
	var out ping
	if err := f.client.Do(ctxT(t), freiburg, "PUT", "/fed/v1/echo", ping{Text: "second opinion", N: 41}, &out); err != nil {
		t.Fatal(err)
	}
	if out != (ping{Text: "SECOND OPINION", N: 42}) {
		t.Errorf("answer %+v", out)
	}
	// nil out discards the answer.
	if err := f.client.Do(ctxT(t), freiburg, "PUT", "/fed/v1/echo", ping{}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestClientMapsErrorAnswersToRemoteError(t *testing.T) {
	epoch := uint64(7)
	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   RemoteError
	}{
		{"forbidden", 403, `{"code":"M_FORBIDDEN","message":"not a member"}`,
			RemoteError{Peer: freiburg, Status: 403, Code: proto.ErrForbidden, Message: "not a member"}},
		{"stale epoch carries the current epoch", 409, `{"code":"M_STALE_EPOCH","message":"epoch 5 is over","current_epoch":7}`,
			RemoteError{Peer: freiburg, Status: 409, Code: proto.ErrStaleEpoch, Message: "epoch 5 is over", CurrentEpoch: &epoch}},
		{"plain-text answer", 502, "bad gateway",
			RemoteError{Peer: freiburg, Status: 502, Code: "HTTP_502", Message: "bad gateway"}},
		{"JSON without a code", 500, `{"message":"boom"}`,
			RemoteError{Peer: freiburg, Status: 500, Code: "HTTP_500", Message: `{"message":"boom"}`}},
		{"empty body", 404, "",
			RemoteError{Peer: freiburg, Status: 404, Code: "HTTP_404"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newClientFixture(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			var out map[string]any
			err := f.client.Do(ctxT(t), freiburg, "GET", "/fed/v1/anything", nil, &out)
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("error %v (%T) is not a *RemoteError", err, err)
			}
			if re.Peer != tc.want.Peer || re.Status != tc.want.Status || re.Code != tc.want.Code || re.Message != tc.want.Message {
				t.Errorf("got %+v, want %+v", *re, tc.want)
			}
			if (re.CurrentEpoch == nil) != (tc.want.CurrentEpoch == nil) || (re.CurrentEpoch != nil && *re.CurrentEpoch != *tc.want.CurrentEpoch) {
				t.Errorf("CurrentEpoch %v, want %v", re.CurrentEpoch, tc.want.CurrentEpoch)
			}
			if !strings.Contains(err.Error(), tc.want.Code) || !strings.Contains(err.Error(), freiburg) {
				t.Errorf("message %q names neither the code nor the peer", err)
			}
		})
	}
}

func TestClientOpenStreamsAnswer(t *testing.T) {
	blob := strings.Repeat("encrypted image bytes ", 50_000) // about 1 MB
	f := newClientFixture(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/fed/v1/media/abc" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, blob)
	})
	resp, err := f.client.Open(ctxT(t), freiburg, "GET", "/fed/v1/media/abc", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != blob {
		t.Errorf("read %d bytes, want %d", len(got), len(blob))
	}
	_, err = f.client.Open(ctxT(t), freiburg, "GET", "/fed/v1/media/missing", nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Status != 404 {
		t.Errorf("missing media: %v, want a RemoteError with status 404", err)
	}
}

func TestClientRefusesUnknownAndDisallowedPeers(t *testing.T) {
	f := newClientFixture(t, func(w http.ResponseWriter, r *http.Request) {})
	if err := f.client.Do(ctxT(t), "nowhere.test", "GET", "/fed/v1/version", nil, nil); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("peer without address: %v, want ErrUnknownPeer", err)
	}
	if err := f.client.Do(ctxT(t), "unlisted.test", "GET", "/fed/v1/version", nil, nil); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("peer not on the allow-list: %v, want ErrNotAllowed", err)
	}
	if n := f.requests.Load(); n != 0 {
		t.Errorf("the peer's server got %d requests", n)
	}
}

func TestClientRefusesPeerPresentingAnotherServersCertificate(t *testing.T) {
	// The address configured for Stuttgart answers with Freiburg's
	// certificate: the request must not be sent.
	f := newClientFixture(t, func(w http.ResponseWriter, r *http.Request) {})
	err := f.client.Do(ctxT(t), stuttgart, "PUT", "/fed/v1/transactions/1-1", proto.FedTransaction{}, nil)
	var he x509.HostnameError
	if !errors.As(err, &he) && !errors.Is(err, ErrNotAllowed) {
		t.Errorf("error %v, want a host name mismatch", err)
	}
	if n := f.requests.Load(); n != 0 {
		t.Errorf("the impostor got %d requests", n)
	}
}

func TestClientStopsCallingPeerBlockedAfterConnecting(t *testing.T) {
	f := newClientFixture(t, func(w http.ResponseWriter, r *http.Request) {})
	if err := f.client.Do(ctxT(t), freiburg, "GET", "/fed/v1/version", nil, nil); err != nil {
		t.Fatal(err)
	}
	f.trust.SetPeers([]string{freiburg, stuttgart}, []string{freiburg})
	if err := f.client.Do(ctxT(t), freiburg, "GET", "/fed/v1/version", nil, nil); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("request to a blocked peer: %v, want ErrNotAllowed", err)
	}
	if n := f.requests.Load(); n != 1 {
		t.Errorf("the blocked peer got %d requests, want 1 (before the block)", n)
	}
}
