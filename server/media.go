package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

// mediaStore keeps blobs as files named by the SHA-256 of their content,
// fanned out into subdirectories by the first two hex digits.
type mediaStore struct {
	dir string
	tmp string
}

func newMediaStore(dir string) (*mediaStore, error) {
	m := &mediaStore{dir: dir, tmp: filepath.Join(dir, "tmp")}
	if err := ensureDir(m.tmp); err != nil {
		return nil, fmt.Errorf("media store: %w", err)
	}
	return m, nil
}

func (m *mediaStore) path(sha string) string { return filepath.Join(m.dir, sha[:2], sha) }

// adopt moves a complete, hash-checked file into the store at its address.
func (m *mediaStore) adopt(path, sha string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("sync fetched media: %w", err)
	}
	if err := ensureDir(filepath.Dir(m.path(sha))); err != nil {
		return err
	}
	return os.Rename(path, m.path(sha))
}

// put streams r to a temporary file while hashing it, fsyncs it, and renames
// it to its content address. It never holds the blob in memory.
func (m *mediaStore) put(r io.Reader) (sha string, size int64, err error) {
	f, err := os.CreateTemp(m.tmp, "upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("create upload file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return "", 0, err
	}
	if err = f.Sync(); err != nil {
		return "", 0, fmt.Errorf("sync upload: %w", err)
	}
	if err = f.Close(); err != nil {
		return "", 0, fmt.Errorf("close upload: %w", err)
	}
	sha = hex.EncodeToString(h.Sum(nil))
	if err = ensureDir(filepath.Dir(m.path(sha))); err != nil {
		return "", 0, err
	}
	if err = os.Rename(f.Name(), m.path(sha)); err != nil {
		return "", 0, fmt.Errorf("store upload: %w", err)
	}
	return sha, size, nil
}

func (s *Server) handleUploadMedia(w http.ResponseWriter, r *http.Request, c caller) {
	roomID := r.URL.Query().Get("room")
	if !roomIDRE.MatchString(roomID) {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "query parameter room must name a room"))
		return
	}
	m, err := s.store.Member(r.Context(), roomID, c.User.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && m.Membership != proto.MembershipJoin) {
		s.fail(w, r, errorf(http.StatusForbidden, proto.ErrForbidden, "not a joined member of the room"))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.ContentLength > s.cfg.MaxMediaBytes {
		s.fail(w, r, errorf(http.StatusRequestEntityTooLarge, proto.ErrTooLarge, "media exceeds %d bytes", s.cfg.MaxMediaBytes))
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxMediaBytes)
	sha, size, err := s.media.put(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.store.AddMedia(r.Context(), store.Media{SHA256: sha, Size: size, RoomID: roomID, Uploader: c.User.ID, Time: time.Now()}); err != nil {
		s.fail(w, r, err)
		return
	}
	s.audit(r.Context(), store.AuditEntry{Actor: c.User.ID, DeviceID: c.Device.DeviceID, Action: "media_upload", Target: roomID + " " + sha, Address: clientAddress(r)})
	writeJSON(w, http.StatusOK, proto.MediaResponse{MediaID: sha, Size: size})
}

func (s *Server) handleDownloadMedia(w http.ResponseWriter, r *http.Request, c caller) {
	sha := r.PathValue("id")
	if !mediaIDRE.MatchString(sha) {
		s.fail(w, r, errorf(http.StatusBadRequest, proto.ErrInvalidParam, "media id must be 64 lower-case hex digits"))
		return
	}
	// Non-members get the same answer as for absent media, so they cannot
	// probe which blobs exist.
	md, err := s.store.MediaForMember(r.Context(), sha, c.User.ID)
	if origin := r.URL.Query().Get("server"); errors.Is(err, store.ErrNotFound) && origin != "" && origin != s.cfg.ServerName {
		// A blob posted on another server: fetch it over federation for a
		// member of the room it was posted in, then serve it from here.
		if md, err = s.fetchForMember(r, c, sha, origin); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, r, errorf(http.StatusNotFound, proto.ErrNotFound, "no such media, or not a member of a room it was posted in"))
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f, err := os.Open(s.media.path(sha))
	if err != nil {
		s.fail(w, r, fmt.Errorf("open media %s: %w", sha, err))
		return
	}
	defer f.Close()
	s.audit(r.Context(), store.AuditEntry{Actor: c.User.ID, DeviceID: c.Device.DeviceID, Action: "media_download", Target: md.RoomID + " " + sha, Address: clientAddress(r)})
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+sha+`"`)
	w.Header().Set("Cache-Control", "private, no-store")
	http.ServeContent(&rangeErrorWriter{ResponseWriter: w}, r, "", md.Time, f)
}

// rangeErrorWriter turns the plain-text 416 answer of http.ServeContent to
// an unsatisfiable Range header (RFC 9110 §15.5.17) into a coded JSON error.
type rangeErrorWriter struct {
	http.ResponseWriter
	failed bool
}

func (w *rangeErrorWriter) WriteHeader(status int) {
	if status != http.StatusRequestedRangeNotSatisfiable {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.failed = true
	h := w.Header()
	h.Del("Content-Length")
	h.Del("Content-Type")
	writeError(w.ResponseWriter, status, proto.ErrInvalidParam, "range not satisfiable")
}

func (w *rangeErrorWriter) Write(b []byte) (int, error) {
	if w.failed {
		return len(b), nil // the plain-text body is replaced by the JSON error
	}
	return w.ResponseWriter.Write(b)
}

// fetchForMember copies a blob from origin, where it was posted in the room
// named by the request, once the caller is a joined member of that room.
func (s *Server) fetchForMember(r *http.Request, c caller, sha, origin string) (store.Media, error) {
	roomID := r.URL.Query().Get("room")
	if s.fed == nil || !s.fed.trust.Allowed(origin) || !roomIDRE.MatchString(roomID) {
		return store.Media{}, errorf(http.StatusNotFound, proto.ErrNotFound, "no such media, or not a member of a room it was posted in")
	}
	m, err := s.store.Member(r.Context(), roomID, c.User.ID)
	if err != nil || m.Membership != proto.MembershipJoin {
		return store.Media{}, errorf(http.StatusNotFound, proto.ErrNotFound, "no such media, or not a member of a room it was posted in")
	}
	if err := s.fetchRemoteMedia(r.Context(), origin, sha, roomID); err != nil {
		return store.Media{}, err
	}
	return s.store.MediaForMember(r.Context(), sha, c.User.ID)
}
