// Package api is a typed Go client for the medicus homeserver's client API
// (docs/api.md): login and devices, rooms, the room log, the sync
// WebSocket, key packages, direct device messages and media. It moves
// opaque bytes; encryption happens above it, in the client library.
package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/medicus-health/medicus/proto"
)

// Error is an error answer of the server, with its stable code. Check for
// it with errors.As or IsCode.
type Error struct {
	// Status is the HTTP status of the answer.
	Status int
	// Code is the stable machine code (proto.Err...), or "HTTP_<status>"
	// when the answer was not a JSON error, e.g. from a proxy in between.
	Code string
	// Message is the server's human-readable explanation (or the start of a
	// non-JSON answer's body).
	Message string
	// RetryAfterMS, when not zero, is how long the server asks the client to
	// wait before trying again (rate limits).
	RetryAfterMS int64
	// CurrentEpoch is set with proto.ErrStaleEpoch: the room's MLS epoch.
	CurrentEpoch *uint64
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// IsCode reports whether err is a server error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Client talks to one homeserver. Its zero value is not usable; use New.
type Client struct {
	base   *url.URL
	http   *http.Client
	tls    *tls.Config
	token  string
	UserID string
	Device string
}

// New returns a client for the homeserver at baseURL ("https://host:port")
// trusting the CAs in roots (nil: the system roots).
func New(baseURL string, roots *x509.CertPool) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("homeserver URL %q: want https://host:port", baseURL)
	}
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tr := &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true}
	return &Client{base: u, tls: tc, http: &http.Client{Transport: tr, Timeout: 5 * time.Minute}}, nil
}

// SetToken sets the access token of an existing session.
func (c *Client) SetToken(token string) { c.token = token }

// Token returns the access token.
func (c *Client) Token() string { return c.token }

// CloseIdle closes idle connections.
func (c *Client) CloseIdle() { c.http.CloseIdleConnections() }

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	// path arrives escaped (segments went through url.PathEscape).
	u.Path, _ = url.PathUnescape(path)
	u.RawPath = path
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends a request with a JSON (or raw) body and decodes a JSON answer.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	return decodeResponse(resp, out)
}

func decodeResponse(resp *http.Response, out any) error {
	if resp.StatusCode >= 300 {
		var e proto.Error
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(data, &e) != nil || e.Code == "" {
			return &Error{Status: resp.StatusCode, Code: "HTTP_" + strconv.Itoa(resp.StatusCode), Message: string(data)}
		}
		return &Error{Status: resp.StatusCode, Code: e.Code, Message: e.Message, RetryAfterMS: e.RetryAfterMS, CurrentEpoch: e.CurrentEpoch}
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, nil, body, "application/json", out)
}

// Health checks that the server answers.
func (c *Client) Health(ctx context.Context) (proto.HealthResponse, error) {
	var out proto.HealthResponse
	err := c.doJSON(ctx, http.MethodGet, "/v1/health", nil, &out)
	return out, err
}

// Login logs in and keeps the new device's token.
func (c *Client) Login(ctx context.Context, userID, password, deviceName string) (proto.LoginResponse, error) {
	var out proto.LoginResponse
	err := c.doJSON(ctx, http.MethodPost, "/v1/login", proto.LoginRequest{UserID: userID, Password: password, DeviceName: deviceName}, &out)
	if err == nil {
		c.token, c.UserID, c.Device = out.AccessToken, out.UserID, out.DeviceID
	}
	return out, err
}

// Logout ends this device's session.
func (c *Client) Logout(ctx context.Context) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/logout", struct{}{}, nil)
}

// Devices lists the user's devices.
func (c *Client) Devices(ctx context.Context) ([]proto.Device, error) {
	var out proto.DevicesResponse
	err := c.doJSON(ctx, http.MethodGet, "/v1/devices", nil, &out)
	return out.Devices, err
}

// RevokeDevice logs out another of the user's devices.
func (c *Client) RevokeDevice(ctx context.Context, deviceID string) error {
	return c.doJSON(ctx, http.MethodDelete, "/v1/devices/"+url.PathEscape(deviceID), nil, nil)
}

// CreateRoom creates a room with this server as its hub.
func (c *Client) CreateRoom(ctx context.Context, name string) (string, error) {
	var out proto.CreateRoomResponse
	err := c.doJSON(ctx, http.MethodPost, "/v1/rooms", proto.CreateRoomRequest{Name: name}, &out)
	return out.RoomID, err
}

// CreateRoomWith creates a room with the options of req (e.g. a list of
// servers whose users it admits).
func (c *Client) CreateRoomWith(ctx context.Context, req proto.CreateRoomRequest) (string, error) {
	var out proto.CreateRoomResponse
	err := c.doJSON(ctx, http.MethodPost, "/v1/rooms", req, &out)
	return out.RoomID, err
}

// Rooms lists the rooms the user is invited to or joined.
func (c *Client) Rooms(ctx context.Context) ([]proto.Room, error) {
	var out proto.RoomsResponse
	err := c.doJSON(ctx, http.MethodGet, "/v1/rooms", nil, &out)
	return out.Rooms, err
}

func roomPath(room, action string) string { return "/v1/rooms/" + url.PathEscape(room) + "/" + action }

// Invite invites a user to a room.
func (c *Client) Invite(ctx context.Context, room, userID string) error {
	return c.doJSON(ctx, http.MethodPost, roomPath(room, "invite"), proto.UserRequest{UserID: userID}, nil)
}

// Join accepts an invitation.
func (c *Client) Join(ctx context.Context, room string) error {
	return c.doJSON(ctx, http.MethodPost, roomPath(room, "join"), struct{}{}, nil)
}

// Leave leaves a room.
func (c *Client) Leave(ctx context.Context, room string) error {
	return c.doJSON(ctx, http.MethodPost, roomPath(room, "leave"), struct{}{}, nil)
}

// Remove removes a member from a room.
func (c *Client) Remove(ctx context.Context, room, userID string) error {
	return c.doJSON(ctx, http.MethodPost, roomPath(room, "remove"), proto.UserRequest{UserID: userID}, nil)
}

// Send posts an opaque message to a room under a transaction id; repeating
// the transaction id returns the same sequence number.
func (c *Client) Send(ctx context.Context, room, txnID, kind string, body []byte) (proto.SendResponse, error) {
	var out proto.SendResponse
	err := c.doJSON(ctx, http.MethodPut, roomPath(room, "send/"+url.PathEscape(txnID)), proto.SendRequest{Kind: kind, Body: body}, &out)
	return out, err
}

// SendInEpoch posts an MLS message made in epoch to a room. The hub accepts
// one commit per epoch and other messages only in the current epoch: if the
// room has moved on, the error has code proto.ErrStaleEpoch and its
// CurrentEpoch says where the room is.
func (c *Client) SendInEpoch(ctx context.Context, room, txnID, kind string, epoch uint64, body []byte) (proto.SendResponse, error) {
	var out proto.SendResponse
	err := c.doJSON(ctx, http.MethodPut, roomPath(room, "send/"+url.PathEscape(txnID)), proto.SendRequest{Kind: kind, Body: body, Epoch: &epoch}, &out)
	return out, err
}

// PublishGroupInfo gives the room's hub the MLS GroupInfo (with the
// ratchet tree) of a room with a room policy, which the hub then enforces
// on every commit. Only a moderator may, once per room.
func (c *Client) PublishGroupInfo(ctx context.Context, room string, groupInfo []byte) error {
	return c.doJSON(ctx, http.MethodPut, roomPath(room, "mls/group_info"), proto.GroupInfoRequest{GroupInfo: groupInfo}, nil)
}

// History returns up to limit events of a room from sequence number from.
func (c *Client) History(ctx context.Context, room string, from int64, limit int) (proto.HistoryResponse, error) {
	var out proto.HistoryResponse
	q := url.Values{"from": {strconv.FormatInt(from, 10)}, "limit": {strconv.Itoa(limit)}}
	err := c.do(ctx, http.MethodGet, roomPath(room, "messages"), q, nil, "", &out)
	return out, err
}

// UploadKeyPackages stores key packages of the default suite for this
// device.
func (c *Client) UploadKeyPackages(ctx context.Context, pkgs [][]byte, lastResort []byte) (proto.KeyPackageCount, error) {
	return c.UploadKeyPackagesWith(ctx, proto.UploadKeyPackagesRequest{KeyPackages: pkgs, LastResort: lastResort})
}

// UploadKeyPackagesWith stores key packages for this device; req.Suite
// names their cipher suite. It returns the device's count for that suite.
func (c *Client) UploadKeyPackagesWith(ctx context.Context, req proto.UploadKeyPackagesRequest) (proto.KeyPackageCount, error) {
	var out proto.KeyPackageCount
	err := c.doJSON(ctx, http.MethodPost, "/v1/keys/upload", req, &out)
	return out, err
}

// CountKeyPackages reports this device's unclaimed key packages of the
// default suite.
func (c *Client) CountKeyPackages(ctx context.Context) (proto.KeyPackageCount, error) {
	return c.CountSuiteKeyPackages(ctx, 0)
}

// CountSuiteKeyPackages reports this device's unclaimed key packages of a
// cipher suite (0: the default suite).
func (c *Client) CountSuiteKeyPackages(ctx context.Context, suite uint16) (proto.KeyPackageCount, error) {
	var out proto.KeyPackageCount
	var q url.Values
	if suite != 0 {
		q = url.Values{"suite": {strconv.Itoa(int(suite))}}
	}
	err := c.do(ctx, http.MethodGet, "/v1/keys/count", q, nil, "", &out)
	return out, err
}

// ClaimDeviceKeyPackage claims the key package of the default suite of one
// device of a user.
func (c *Client) ClaimDeviceKeyPackage(ctx context.Context, userID, deviceID string) (proto.ClaimKeyPackagesResponse, error) {
	return c.ClaimKeyPackagesWith(ctx, proto.ClaimKeyPackagesRequest{UserID: userID, DeviceID: deviceID})
}

// ClaimKeyPackages claims one key package of the default suite per device
// of a user.
func (c *Client) ClaimKeyPackages(ctx context.Context, userID string) (proto.ClaimKeyPackagesResponse, error) {
	return c.ClaimKeyPackagesWith(ctx, proto.ClaimKeyPackagesRequest{UserID: userID})
}

// ClaimKeyPackagesWith claims key packages as req says: of req.Suite, of
// every device of req.UserID or only req.DeviceID.
func (c *Client) ClaimKeyPackagesWith(ctx context.Context, req proto.ClaimKeyPackagesRequest) (proto.ClaimKeyPackagesResponse, error) {
	var out proto.ClaimKeyPackagesResponse
	err := c.doJSON(ctx, http.MethodPost, "/v1/keys/claim", req, &out)
	return out, err
}

// TURNServer returns short-lived credentials for the homeserver's TURN
// relay (GET /v1/voip/turn).
func (c *Client) TURNServer(ctx context.Context) (proto.TURNServerResponse, error) {
	var out proto.TURNServerResponse
	err := c.doJSON(ctx, http.MethodGet, "/v1/voip/turn", nil, &out)
	return out, err
}

// SendToDevice queues direct messages for devices.
func (c *Client) SendToDevice(ctx context.Context, txnID string, msgs []proto.OutgoingDeviceMessage) error {
	return c.doJSON(ctx, http.MethodPut, "/v1/send_to_device/"+url.PathEscape(txnID), proto.SendToDeviceRequest{Messages: msgs}, nil)
}

// AckDeviceMessages deletes this device's messages up to an id.
func (c *Client) AckDeviceMessages(ctx context.Context, upTo int64) error {
	return c.doJSON(ctx, http.MethodPost, "/v1/device_messages/ack", proto.AckRequest{UpTo: upTo}, nil)
}

// UploadMedia streams a blob posted in room; size is its length (or -1).
func (c *Client) UploadMedia(ctx context.Context, room string, r io.Reader, size int64) (proto.MediaResponse, error) {
	var out proto.MediaResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/v1/media", url.Values{"room": {room}}), r)
	if err != nil {
		return out, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return out, fmt.Errorf("upload media: %w", err)
	}
	defer resp.Body.Close()
	err = decodeResponse(resp, &out)
	return out, err
}

// ErrRangeIgnored is returned when a range of a blob was asked for but the
// server answered with something other than exactly that range (HTTP 206
// with a matching Content-Range); the caller would otherwise take the wrong
// bytes for the range.
var ErrRangeIgnored = errors.New("server did not answer the requested byte range")

// OpenMedia starts downloading a blob, or the range [from, to] (inclusive)
// of it when to ≥ from ≥ 0, and returns its body as a stream, so that large
// blobs need not be held in memory. The caller must close it. A server error
// is an *Error; a range answered with anything but that range is
// ErrRangeIgnored.
func (c *Client) OpenMedia(ctx context.Context, mediaID string, from, to int64) (io.ReadCloser, error) {
	return c.OpenMediaFrom(ctx, mediaID, "", "", from, to)
}

// OpenMediaFrom is OpenMedia for a blob that was posted in room on the
// homeserver origin: if origin is another server, this homeserver fetches
// it from there over federation for a member of room.
func (c *Client) OpenMediaFrom(ctx context.Context, mediaID, room, origin string, from, to int64) (io.ReadCloser, error) {
	var q url.Values
	if origin != "" {
		q = url.Values{"room": {room}, "server": {origin}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v1/media/"+url.PathEscape(mediaID), q), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	ranged := from >= 0 && to >= from
	if ranged {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download media %s: %w", mediaID, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, decodeResponse(resp, nil)
	}
	if ranged {
		// RFC 9110 §14.4: Content-Range is "bytes first-last/complete-length".
		want := fmt.Sprintf("bytes %d-%d/", from, to)
		if cr := resp.Header.Get("Content-Range"); resp.StatusCode != http.StatusPartialContent || len(cr) < len(want) || cr[:len(want)] != want {
			resp.Body.Close()
			return nil, fmt.Errorf("download media %s bytes %d-%d: HTTP %d, Content-Range %q: %w", mediaID, from, to, resp.StatusCode, cr, ErrRangeIgnored)
		}
	}
	return resp.Body, nil
}

// DownloadMedia returns a blob's bytes, or the range [from, to] (inclusive)
// when to ≥ from ≥ 0; it is OpenMedia read to the end.
func (c *Client) DownloadMedia(ctx context.Context, mediaID string, from, to int64) ([]byte, error) {
	body, err := c.OpenMedia(ctx, mediaID, from, to)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("download media %s: %w", mediaID, err)
	}
	return b, nil
}

// maxRetainedFrameBuffer is the largest frame buffer a Sync keeps for reuse.
const maxRetainedFrameBuffer = 1 << 20

// Sync is an open sync WebSocket. Its methods that read (Next, NextRaw)
// must be called from one goroutine at a time.
type Sync struct {
	conn syncConn
	buf  bytes.Buffer // the last frame read; reused so that reading does not allocate per frame
	// binary is set when the server agreed to binary event frames.
	binary bool
}

// SyncOptions configure a sync connection opened with SyncWith.
type SyncOptions struct {
	// Binary asks the server for binary event frames
	// (proto.SyncSubprotocolBinary): about a quarter fewer bytes than JSON
	// with base64 bodies, and cheaper to decode. Next decodes either form,
	// so its callers see no difference; NextRaw then returns events frames
	// in binary form, which proto.DecodeEventsFrame decodes. A server that
	// does not offer binary frames sends JSON, which Binary reports.
	Binary bool
}

// Sync opens the sync WebSocket, resuming after stream position since.
// Its frames are JSON; see SyncWith for binary event frames.
func (c *Client) Sync(ctx context.Context, since int64) (*Sync, error) {
	return c.SyncWith(ctx, since, SyncOptions{})
}

// SyncWith opens the sync WebSocket with options, resuming after stream
// position since.
func (c *Client) SyncWith(ctx context.Context, since int64, opts SyncOptions) (*Sync, error) {
	u := *c.base
	u.Scheme = map[string]string{"https": "wss", "http": "ws"}[u.Scheme]
	u.Path = "/v1/sync"
	u.RawQuery = url.Values{"since": {strconv.FormatInt(since, 10)}}.Encode()
	var protocols []string
	if opts.Binary {
		protocols = []string{proto.SyncSubprotocolBinary}
	}
	conn, protocol, err := c.dialSync(ctx, u.String(), protocols)
	if err != nil {
		return nil, err
	}
	return &Sync{conn: conn, binary: protocol == proto.SyncSubprotocolBinary}, nil
}

// Binary reports whether the server sends binary event frames on this
// connection.
func (s *Sync) Binary() bool { return s.binary }

// Next reads the next frame. A server close arrives as a
// *websocket.CloseError.
func (s *Sync) Next() (proto.SyncFrame, error) {
	var f proto.SyncFrame
	data, err := s.NextRaw()
	if err != nil {
		return f, err
	}
	if s.binary && len(data) > 0 && data[0] == proto.FrameTypeEvents {
		// The events keep their bodies beyond the buffer's reuse: copy the
		// frame once and let the bodies alias the copy.
		f.Type = proto.FrameEvents
		if f.Events, err = proto.DecodeEventsFrame(bytes.Clone(data), nil); err != nil {
			return proto.SyncFrame{}, fmt.Errorf("decode sync frame: %w", err)
		}
		return f, nil
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("decode sync frame: %w", err)
	}
	return f, nil
}

// NextRaw reads the next frame without decoding it, for consumers that
// need only a few fields of a high-volume stream. On a binary connection
// (SyncOptions.Binary), events frames are binary (the first byte is
// proto.FrameTypeEvents; decode them with proto.DecodeEventsFrame) and other
// frames JSON (the first byte is '{'). The returned slice is valid only
// until the next call of Next or NextRaw: the buffer is reused, so that a
// process holding many sync connections does not allocate and collect a new
// buffer for every frame.
func (s *Sync) NextRaw() ([]byte, error) {
	if s.buf.Cap() > maxRetainedFrameBuffer {
		s.buf = bytes.Buffer{} // do not keep one rare large frame's memory for the life of the connection
	}
	s.buf.Reset()
	if err := s.conn.readMessage(&s.buf); err != nil {
		return nil, err
	}
	return s.buf.Bytes(), nil
}

// SetReadDeadline bounds the wait in Next.
func (s *Sync) SetReadDeadline(t time.Time) error { return s.conn.setReadDeadline(t) }

// Ack acknowledges device messages up to an id over the WebSocket.
func (s *Sync) Ack(upTo int64) error {
	return s.conn.writeJSON(proto.SyncFrame{Type: proto.FrameAck, Ack: &proto.AckRequest{UpTo: upTo}})
}

// Close closes the connection.
func (s *Sync) Close() error {
	return s.conn.close()
}
