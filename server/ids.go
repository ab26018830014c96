package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

var localpartRE = regexp.MustCompile(`^[a-z0-9._=-]{1,64}$`)

// ParseUserID accepts "@local:server" or a bare local part (completed with
// defaultServer) and returns the local part and server name.
func ParseUserID(id, defaultServer string) (local, server string, err error) {
	if !strings.HasPrefix(id, "@") {
		if !localpartRE.MatchString(id) {
			return "", "", fmt.Errorf("user %q: local part must be 1-64 of a-z 0-9 . _ = -", id)
		}
		return id, defaultServer, nil
	}
	local, server, ok := strings.Cut(id[1:], ":")
	if !ok || !localpartRE.MatchString(local) || !ValidServerName(server) {
		return "", "", fmt.Errorf("user id %q is not of the form @local:server", id)
	}
	return local, server, nil
}

// validRoomID reports whether id is "!<16+ url-safe chars>:<server>".
var roomIDRE = regexp.MustCompile(`^![A-Za-z0-9_-]{16,64}:[a-z0-9.-]{1,253}$`)

var txnIDRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,128}$`)

var mediaIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

var kindRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,63}$`)

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func newRoomID(server string) string { return "!" + randomString(16) + ":" + server }

func newDeviceID() string {
	const letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	b := make([]byte, 10)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// newAccessToken returns a token and the hash under which it is stored.
func newAccessToken() (token string, hash []byte) {
	token = "mdc_" + randomString(32)
	return token, hashToken(token)
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// deviceIDRE matches device ids as newDeviceID makes them, and then some.
var deviceIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
