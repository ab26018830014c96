package demo

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/medicus-health/medicus/crypto/pki"
	"github.com/medicus-health/medicus/server"
	"github.com/medicus-health/medicus/server/homedir"
)

// HospitalSpec describes a demo hospital: its homeserver name and users.
type HospitalSpec struct {
	Name  string
	Users []UserSpec
}

// UserSpec is a user to create, by local part and role.
type UserSpec struct{ Local, Role string }

// User is a created user with its generated password.
type User struct {
	ID, Role, Password string
}

// Hospital is a running demo homeserver.
type Hospital struct {
	Name   string
	URL    string
	Dir    string
	CAFile string
	CA     []byte
	Users  []User
	served chan error
}

// Account returns the login of a user of the hospital by local part.
func (h *Hospital) Account(local string) Account {
	for _, u := range h.Users {
		if u.ID == "@"+local+":"+h.Name {
			return Account{UserID: u.ID, Password: u.Password, ServerURL: h.URL, CA: h.CA}
		}
	}
	panic("demo: no user " + local + " at " + h.Name)
}

// Wait returns when the hospital's homeserver has stopped.
func (h *Hospital) Wait() error { return <-h.served }

// freeLoopback returns a loopback address whose port was free just now.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// StartHospitals creates a federation CA under dir, a homeserver per spec
// with a certificate from that CA and every other hospital as a peer, the
// users with random passwords, and runs them until ctx ends.
func StartHospitals(ctx context.Context, dir string, specs []HospitalSpec, logger *slog.Logger) ([]*Hospital, error) {
	caDir := filepath.Join(dir, "federation-ca")
	ca, err := pki.InitFederationCA(caDir, "Demo Region Health Federation CA")
	if err != nil {
		return nil, err
	}
	fedAddr := map[string]string{}
	for _, s := range specs {
		if fedAddr[s.Name], err = freeLoopback(); err != nil {
			return nil, err
		}
	}
	var out []*Hospital
	for _, s := range specs {
		certDir := filepath.Join(dir, "certs", s.Name)
		if _, err := ca.IssueFederation(s.Name, certDir, pki.LeafValidity); err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		opts := homedir.InitOptions{FederationListen: fedAddr[s.Name], FederationCertDir: certDir,
			FederationCA: filepath.Join(caDir, pki.CACertFile), FederationCRL: filepath.Join(caDir, pki.CRLFile)}
		for _, p := range specs {
			if p.Name != s.Name {
				opts.FederationPeers = append(opts.FederationPeers, p.Name+"="+fedAddr[p.Name])
			}
		}
		hsDir := filepath.Join(dir, s.Name)
		cfg, err := homedir.Init(hsDir, s.Name, ln.Addr().String(), opts)
		if err != nil {
			ln.Close()
			return nil, err
		}
		h := &Hospital{Name: s.Name, URL: "https://" + ln.Addr().String(), Dir: hsDir, CAFile: filepath.Join(hsDir, homedir.CAFile), served: make(chan error, 1)}
		if h.CA, err = os.ReadFile(h.CAFile); err != nil {
			ln.Close()
			return nil, err
		}
		admin, err := server.OpenAdmin(cfg)
		if err != nil {
			ln.Close()
			return nil, err
		}
		for _, u := range s.Users {
			pw := password()
			id, err := admin.AddUser(ctx, u.Local, u.Role, pw)
			if err != nil {
				admin.Close()
				ln.Close()
				return nil, err
			}
			h.Users = append(h.Users, User{ID: id, Role: u.Role, Password: pw})
		}
		if err := admin.Close(); err != nil {
			ln.Close()
			return nil, err
		}
		srv, err := server.New(cfg, logger.With("hospital", s.Name))
		if err != nil {
			ln.Close()
			return nil, err
		}
		go func() { h.served <- srv.Serve(ctx, ln) }()
		out = append(out, h)
	}
	return out, nil
}

// password returns 20 random characters without look-alikes.
func password() string {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	for i := range b {
		var one [1]byte
		for {
			rand.Read(one[:])
			if int(one[0]) < 256-256%len(alphabet) {
				break
			}
		}
		b[i] = alphabet[int(one[0])%len(alphabet)]
	}
	return string(b)
}

// Describe a hospital for the demo's output.
func (h *Hospital) String() string {
	return fmt.Sprintf("%s at %s", h.Name, h.URL)
}
