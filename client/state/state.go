// Package state is the client's local store: MLS group states, keys, sync
// cursors and the decrypted message cache, encrypted at rest.
//
// A random 256-bit state key encrypts every value (XChaCha20-Poly1305, with
// the row's name as associated data) and keys every row name (HMAC-SHA-256),
// so the stored bytes show neither content nor room or user names. The state
// key is stored beside them wrapped with filippo.io/age, to a passphrase
// (scrypt) or to an X25519 identity kept in a separate key file: stolen state
// reveals nothing without one of them.
//
// The sealing is done once, in Store; a Backend only keeps the sealed bytes.
// Open keeps them in a SQLite file (not on GOOS=js, where Open uses the
// browser's IndexedDB), and NewMemory keeps them in memory.
package state

import (
	"errors"
	"fmt"
	"io"
	"os"

	"filippo.io/age"
)

// Errors callers distinguish with errors.Is.
var (
	// ErrNotFound means no value is stored under the name.
	ErrNotFound = errors.New("state: not found")
	// ErrLocked means the passphrase or key file does not unlock the state.
	ErrLocked = errors.New("state: wrong passphrase or key file")
	// ErrCorrupt means a stored value failed authentication.
	ErrCorrupt = errors.New("state: stored value is corrupt or was tampered with")
)

// Lock names how the state key is wrapped: exactly one of Passphrase and
// KeyFile is set. KeyFile is an age X25519 identity file (as made by
// age-keygen or GenerateKeyFile).
type Lock struct {
	Passphrase string
	KeyFile    string
}

func (l Lock) recipient() (age.Recipient, error) {
	switch {
	case l.Passphrase != "" && l.KeyFile == "":
		r, err := age.NewScryptRecipient(l.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("passphrase: %w", err)
		}
		return r, nil
	case l.KeyFile != "" && l.Passphrase == "":
		id, err := readKeyFile(l.KeyFile)
		if err != nil {
			return nil, err
		}
		return id.Recipient(), nil
	}
	return nil, errors.New("state: give either a passphrase or a key file")
}

func (l Lock) identity() (age.Identity, error) {
	if l.KeyFile != "" {
		return readKeyFile(l.KeyFile)
	}
	id, err := age.NewScryptIdentity(l.Passphrase)
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	return id, nil
}

func readKeyFile(path string) (*age.X25519Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("parse key file %s: %w", path, err)
	}
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			return x, nil
		}
	}
	return nil, fmt.Errorf("key file %s holds no X25519 identity", path)
}

// GenerateKeyFile writes a new age X25519 identity to path (mode 0600).
func GenerateKeyFile(path string) error {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := fmt.Fprintf(f, "# medicus client state key\n# public key: %s\n%s\n", id.Recipient(), id); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SealFile writes data to path (mode 0600, failing if it exists), encrypted
// with age to lock: for secrets that leave the state file, such as an
// exported identity key.
func SealFile(path string, data []byte, lock Lock) error {
	r, err := lock.recipient()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w, err := age.Encrypt(f, r)
	if err == nil {
		_, err = w.Write(data)
	}
	if err == nil {
		err = w.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// maxSealedFile bounds what OpenSealedFile reads.
const maxSealedFile = 1 << 20

// OpenSealedFile decrypts a file written by SealFile; it fails with
// ErrLocked if lock does not open it.
func OpenSealedFile(path string, lock Lock) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	id, err := lock.identity()
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(io.LimitReader(f, maxSealedFile), id)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLocked, err)
	}
	return io.ReadAll(io.LimitReader(r, maxSealedFile))
}
