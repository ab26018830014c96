package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/password"
	"github.com/medicus-health/medicus/server/store"
	"github.com/medicus-health/medicus/server/store/sqlite"
)

// Admin performs operator tasks directly on a homeserver's database. It may
// run while the server runs: SQLite in WAL mode lets both write in turn.
type Admin struct {
	cfg   Config
	store store.Store
}

// ErrUserExists is returned by AddUser for a taken user id.
var ErrUserExists = errors.New("user already exists")

// ErrNoSuchUser is returned for an unknown user.
var ErrNoSuchUser = errors.New("no such user")

// OpenAdmin opens the database named by cfg, creating and migrating it if
// needed.
func OpenAdmin(cfg Config) (*Admin, error) {
	if !ValidServerName(cfg.ServerName) {
		return nil, fmt.Errorf("server_name %q is not a lower-case DNS name", cfg.ServerName)
	}
	db, err := sqlite.Open(cfg.DatabaseFile, sqlite.Options{})
	if err != nil {
		return nil, err
	}
	return &Admin{cfg: cfg, store: db}, nil
}

// Close closes the database.
func (a *Admin) Close() error { return a.store.Close() }

func (a *Admin) userID(user string) (string, error) {
	local, server, err := ParseUserID(user, a.cfg.ServerName)
	if err != nil {
		return "", err
	}
	if server != a.cfg.ServerName {
		return "", fmt.Errorf("user %s belongs to %s, not to this server %s", user, server, a.cfg.ServerName)
	}
	return "@" + local + ":" + server, nil
}

// AddUser creates an account with the given role and password. user is a
// local part or a full @user:server id of this server.
func (a *Admin) AddUser(ctx context.Context, user, role, pw string) (string, error) {
	id, err := a.userID(user)
	if err != nil {
		return "", err
	}
	if !proto.ValidRole(role) {
		return "", fmt.Errorf("role %q is not one of doctor, nurse, patient, bot, admin", role)
	}
	if len(pw) < 10 {
		return "", errors.New("password must have at least 10 characters")
	}
	hash, err := password.Hash(pw, password.Default)
	if err != nil {
		return "", err
	}
	err = a.store.CreateUser(ctx, store.User{ID: id, Role: role, PasswordHash: hash, CreatedAt: time.Now()})
	if errors.Is(err, store.ErrExists) {
		return "", fmt.Errorf("add %s: %w", id, ErrUserExists)
	}
	if err != nil {
		return "", err
	}
	a.audit(ctx, "admin_user_add", id+" "+role)
	return id, nil
}

// ListUsers lists all accounts.
func (a *Admin) ListUsers(ctx context.Context) ([]proto.UserInfo, error) {
	users, err := a.store.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]proto.UserInfo, 0, len(users))
	for _, u := range users {
		out = append(out, proto.UserInfo{UserID: u.ID, Role: u.Role, Disabled: u.Disabled, CreatedAt: u.CreatedAt})
	}
	return out, nil
}

// DisableUser disables an account and logs out all its devices.
func (a *Admin) DisableUser(ctx context.Context, user string) error {
	id, err := a.userID(user)
	if err != nil {
		return err
	}
	err = a.store.SetUserDisabled(ctx, id, true)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("disable %s: %w", id, ErrNoSuchUser)
	}
	if err != nil {
		return err
	}
	a.audit(ctx, "admin_user_disable", id)
	return nil
}

// AuditLog returns the newest audit entries first.
func (a *Admin) AuditLog(ctx context.Context, limit int) ([]store.AuditEntry, error) {
	return a.store.AuditLog(ctx, limit)
}

func (a *Admin) audit(ctx context.Context, action, target string) {
	// The operator acts on the host, not through an account.
	_ = a.store.Audit(ctx, store.AuditEntry{Time: time.Now(), Actor: "operator", Action: action, Target: target, Address: "local"})
}
