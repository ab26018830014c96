// Package pionlog routes the logs of the pion WebRTC and TURN libraries to
// log/slog. Pion's info, debug and trace messages become slog debug records;
// its warnings and errors (mostly about misbehaving peers) become warnings.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory returns a pion logger factory writing to l, each logger tagged
// with its pion scope. A nil l discards everything.
func Factory(l *slog.Logger) logging.LoggerFactory {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return factory{l}
}

type factory struct{ l *slog.Logger }

func (f factory) NewLogger(scope string) logging.LeveledLogger {
	return logger{f.l.With("pion", scope)}
}

type logger struct{ l *slog.Logger }

func (g logger) log(level slog.Level, msg string) {
	if g.l.Enabled(context.Background(), level) {
		g.l.Log(context.Background(), level, msg)
	}
}

func (g logger) logf(level slog.Level, format string, args ...any) {
	if g.l.Enabled(context.Background(), level) {
		g.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (g logger) Trace(msg string)                  { g.log(slog.LevelDebug-4, msg) }
func (g logger) Tracef(format string, args ...any) { g.logf(slog.LevelDebug-4, format, args...) }
func (g logger) Debug(msg string)                  { g.log(slog.LevelDebug, msg) }
func (g logger) Debugf(format string, args ...any) { g.logf(slog.LevelDebug, format, args...) }
func (g logger) Info(msg string)                   { g.log(slog.LevelDebug, msg) }
func (g logger) Infof(format string, args ...any)  { g.logf(slog.LevelDebug, format, args...) }
func (g logger) Warn(msg string)                   { g.log(slog.LevelWarn, msg) }
func (g logger) Warnf(format string, args ...any)  { g.logf(slog.LevelWarn, format, args...) }
func (g logger) Error(msg string)                  { g.log(slog.LevelWarn, msg) }
func (g logger) Errorf(format string, args ...any) { g.logf(slog.LevelWarn, format, args...) }
