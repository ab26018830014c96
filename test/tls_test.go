package test

import (
	"crypto/tls"
	"errors"
)

func tlsConfig(hs *homeserver) *tls.Config { return &tls.Config{RootCAs: hs.roots} }

func errorsAs(err error, target any) bool { return errors.As(err, target) }
