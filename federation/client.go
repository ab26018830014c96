package federation

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/medicus-health/medicus/proto"
)

// ErrUnknownPeer means no address is configured for a peer.
var ErrUnknownPeer = errors.New("federation: no address for peer")

// RemoteError is an error answer of a peer, with its stable code.
type RemoteError struct {
	Peer    string
	Status  int
	Code    string
	Message string
	// CurrentEpoch is set with proto.ErrStaleEpoch.
	CurrentEpoch *uint64
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("%s answered %s (HTTP %d): %s", e.Peer, e.Code, e.Status, e.Message)
}

// Client calls peers over mutually authenticated TLS.
type Client struct {
	trust *Trust
	cert  tls.Certificate

	mu      sync.Mutex
	addrs   map[string]string
	clients map[string]*http.Client
	gen     uint64 // the Trust generation the clients were made under
}

// NewClient returns a client presenting cert, reaching each peer at the
// address in addrs (peer name → host:port).
func NewClient(trust *Trust, cert tls.Certificate, addrs map[string]string) *Client {
	a := map[string]string{}
	for k, v := range addrs {
		a[k] = v
	}
	return &Client{trust: trust, cert: cert, addrs: a, clients: map[string]*http.Client{}}
}

func (c *Client) httpClient(peer string) (*http.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.trust.Generation(); g != c.gen {
		// The allow-list or CRL changed: connections made before were
		// checked under the old state; make new ones, checked anew.
		for _, hc := range c.clients {
			hc.CloseIdleConnections()
		}
		clear(c.clients)
		c.gen = g
	}
	addr, ok := c.addrs[peer]
	if !ok {
		return nil, fmt.Errorf("%w %s", ErrUnknownPeer, peer)
	}
	if !c.trust.Allowed(peer) {
		return nil, fmt.Errorf("%w: %s", ErrNotAllowed, peer)
	}
	if hc, ok := c.clients[peer]; ok {
		return hc, nil
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		// Whatever host the URL names, connect to the configured address;
		// the TLS ServerName stays the peer's name.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     c.trust.ClientTLS(c.cert, peer),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second,
		// A peer answers; it does not send us elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c.clients[peer] = hc
	return hc, nil
}

// Do sends a JSON request to peer and decodes the JSON answer into out
// (nil to discard). An error answer is a *RemoteError.
func (c *Client) Do(ctx context.Context, peer, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := c.Open(ctx, peer, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s: %w", peer, err)
	}
	return nil
}

// Open sends a request to peer and returns the answer for streaming; error
// answers become a *RemoteError. The caller closes the body.
func (c *Client) Open(ctx context.Context, peer, method, path string, body io.Reader) (*http.Response, error) {
	hc, err := c.httpClient(peer)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, "https://"+peer+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("federation request to %s: %w", peer, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e proto.Error
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			return nil, &RemoteError{Peer: peer, Status: resp.StatusCode, Code: "HTTP_" + strconv.Itoa(resp.StatusCode), Message: string(data)}
		}
		return nil, &RemoteError{Peer: peer, Status: resp.StatusCode, Code: e.Code, Message: e.Message, CurrentEpoch: e.CurrentEpoch}
	}
	return resp, nil
}

// CloseIdle closes idle connections to every peer.
func (c *Client) CloseIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, hc := range c.clients {
		hc.CloseIdleConnections()
	}
}
