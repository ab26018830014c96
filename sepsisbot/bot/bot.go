package bot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/client/state"
	"github.com/medicus-health/medicus/sepsisbot/alerting"
	"github.com/medicus-health/medicus/sepsisbot/fhirapi"
	"github.com/medicus-health/medicus/sepsisbot/hl7"
	"github.com/medicus-health/medicus/sepsisbot/ingest"
	"github.com/medicus-health/medicus/sepsisbot/model"
)

// Options are the parts of a Bot that are not configuration: tests and the
// demo use them.
type Options struct {
	// Logger receives the bot's logs (never values or tokens);
	// slog.Default() if nil.
	Logger *slog.Logger
	// Clock is the alert engine's clock; the system clock if nil.
	Clock alerting.Clock
	// TickInterval is how often escalations and summaries are checked;
	// 15 seconds if zero.
	TickInterval time.Duration
}

// Bot is a running sepsis bot.
type Bot struct {
	cfg     Config
	opts    Options
	log     *slog.Logger
	session *client.Session
	store   *ingest.Store
	audit   *alerting.AuditLog
	engine  *alerting.Engine
	model   *model.Model

	fhirLn, mllpLn net.Listener
	tlsConfig      *tls.Config
	fhirHandler    http.Handler
	poller         *fhirapi.Poller
	location       *time.Location
}

// New opens the bot's session (logging in on first use), its patient state
// and audit log, and binds its listeners, so that FHIRAddr and MLLPAddr are
// known before Run.
func New(ctx context.Context, cfg Config, opts Options) (b *Bot, err error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.TickInterval == 0 {
		opts.TickInterval = 15 * time.Second
	}
	b = &Bot{cfg: cfg, opts: opts, log: opts.Logger}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	if b.location, err = cfg.location(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("bot: data dir: %w", err)
	}
	if b.model, err = loadModel(cfg); err != nil {
		return nil, err
	}
	if b.session, err = openSession(ctx, cfg, b.log); err != nil {
		return nil, err
	}
	if b.store, err = ingest.OpenStore(ctx, filepath.Join(cfg.DataDir, "patients.db"), ingest.StoreConfig{Logger: b.log}); err != nil {
		return nil, err
	}
	if b.audit, err = alerting.OpenAuditLog(filepath.Join(cfg.DataDir, "audit.db")); err != nil {
		return nil, err
	}
	summary, _ := cfg.summaryOffset()
	threshold := b.model.Threshold
	if cfg.Threshold > 0 {
		threshold = cfg.Threshold
	}
	policy := alerting.Config{
		Threshold: threshold, DefaultRoom: cfg.ICURoom, EscalateAfter: cfg.EscalateAfter, EscalationRoom: cfg.EscalationRoom,
		SummaryTime: summary, SummaryLocation: b.location, Clock: opts.Clock, Logger: b.log,
	}
	if b.engine, err = alerting.NewEngine(ctx, policy, roomSink{b.session}, b.audit); err != nil {
		return nil, err
	}
	if err := b.listen(cfg); err != nil {
		return nil, err
	}
	if cfg.PollBase != "" {
		if err := b.newPoller(cfg); err != nil {
			return nil, err
		}
	}
	b.log.Info("sepsis bot ready", "user", b.session.UserID(), "threshold", threshold, "fhir", b.FHIRAddr(), "mllp", b.MLLPAddr())
	return b, nil
}

func loadModel(cfg Config) (*model.Model, error) {
	if cfg.ModelFile == "" {
		return model.Default()
	}
	return model.LoadFile(cfg.ModelFile)
}

// openSession reopens the bot's profile, or logs in with the password file
// when the profile is new.
func openSession(ctx context.Context, cfg Config, log *slog.Logger) (*client.Session, error) {
	if _, err := os.Stat(cfg.StateKeyFile); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(cfg.StateKeyFile), 0o700); err != nil {
			return nil, fmt.Errorf("bot: %w", err)
		}
		if err := state.GenerateKeyFile(cfg.StateKeyFile); err != nil {
			return nil, fmt.Errorf("bot: create state key: %w", err)
		}
	}
	ccfg := client.Config{ProfileDir: cfg.ProfileDir, Lock: state.Lock{KeyFile: cfg.StateKeyFile}, Logger: log}
	s, err := client.Open(ctx, ccfg)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, client.ErrNoProfile) {
		return nil, fmt.Errorf("bot: open profile: %w", err)
	}
	if cfg.PasswordFile == "" {
		return nil, errors.New("bot: the profile has no session; password_file is needed for the first login")
	}
	password, err := readSecret(cfg.PasswordFile, "password")
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("bot: read ca_file: %w", err)
	}
	s, err = client.Login(ctx, ccfg, cfg.Homeserver, ca, cfg.User, password, &client.LoginOptions{DeviceName: "sepsis bot"})
	if err != nil {
		return nil, fmt.Errorf("bot: login %s: %w", cfg.User, err)
	}
	return s, nil
}

// listen binds the FHIR and MLLP listeners.
func (b *Bot) listen(cfg Config) error {
	if cfg.FHIRCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.FHIRCertFile, cfg.FHIRKeyFile)
		if err != nil {
			return fmt.Errorf("bot: FHIR certificate: %w", err)
		}
		b.tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.FHIRListen != "" {
		token, err := readSecret(cfg.FHIRTokenFile, "FHIR token")
		if err != nil {
			return err
		}
		h, err := fhirapi.NewHandler(fhirapi.HandlerConfig{Token: token, Sink: b.store, Logger: b.log})
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/fhir/", http.StripPrefix("/fhir", h))
		b.fhirHandler = mux
		ln, err := net.Listen("tcp", cfg.FHIRListen)
		if err != nil {
			return fmt.Errorf("bot: FHIR listener: %w", err)
		}
		b.fhirLn = tls.NewListener(ln, b.tlsConfig)
	}
	if cfg.MLLPListen != "" {
		ln, err := net.Listen("tcp", cfg.MLLPListen)
		if err != nil {
			return fmt.Errorf("bot: MLLP listener: %w", err)
		}
		if cfg.MLLPTLS {
			ln = tls.NewListener(ln, b.tlsConfig)
		}
		b.mllpLn = ln
	}
	return nil
}

func (b *Bot) newPoller(cfg Config) error {
	token, err := readSecret(cfg.PollTokenFile, "poll token")
	if err != nil {
		return err
	}
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.PollCAFile != "" {
		pem, err := os.ReadFile(cfg.PollCAFile)
		if err != nil {
			return fmt.Errorf("bot: poll_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("bot: poll_ca_file %s holds no certificate", cfg.PollCAFile)
		}
		tcfg.RootCAs = pool
	}
	b.poller, err = fhirapi.NewPoller(fhirapi.PollerConfig{
		Base: cfg.PollBase, Token: token, CursorFile: filepath.Join(cfg.DataDir, "fhir-poll-cursor.json"), Sink: b.store, Logger: b.log,
		Client: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tcfg}},
	})
	return err
}

// FHIRAddr returns the FHIR listener's address, or "" if it is disabled.
func (b *Bot) FHIRAddr() string {
	if b.fhirLn == nil {
		return ""
	}
	return b.fhirLn.Addr().String()
}

// MLLPAddr returns the MLLP listener's address, or "" if it is disabled.
func (b *Bot) MLLPAddr() string {
	if b.mllpLn == nil {
		return ""
	}
	return b.mllpLn.Addr().String()
}

// Session returns the bot's messenger session.
func (b *Bot) Session() *client.Session { return b.session }

// Engine returns the bot's alert engine.
func (b *Bot) Engine() *alerting.Engine { return b.engine }

// Store returns the bot's patient state.
func (b *Bot) Store() *ingest.Store { return b.store }

// Run serves until ctx is cancelled: the FHIR endpoint, the MLLP listener,
// the poller, the assessment of changed patients, the alert engine's
// timers, and the room sync that brings invitations and acknowledgements.
// It returns nil after a clean shutdown or the first fatal error.
func (b *Bot) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("bot: %s: %w", name, err)
				cancel()
			}
		}()
	}
	if b.fhirLn != nil {
		srv := &http.Server{Handler: b.fhirHandler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
			ErrorLog: slog.NewLogLogger(b.log.Handler(), slog.LevelWarn)}
		run("FHIR endpoint", func(ctx context.Context) error {
			go func() {
				<-ctx.Done()
				sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer scancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(b.fhirLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if b.mllpLn != nil {
		rc := &hl7.Receiver{Sink: b.store, Location: b.location, Logger: b.log}
		srv := &hl7.Server{Handler: rc.HandleMessage, Logger: b.log}
		run("MLLP listener", func(ctx context.Context) error { return srv.Serve(ctx, b.mllpLn) })
	}
	if b.poller != nil {
		interval := b.cfg.PollInterval
		if interval == 0 {
			interval = time.Minute
		}
		run("FHIR poller", func(ctx context.Context) error { return ignoreCancel(b.poller.Run(ctx, interval)) })
	}
	mon := &ingest.Monitor{Store: b.store, Scorer: ingest.ModelScorer{Model: b.model}, Alerts: b.engine, Logger: b.log}
	run("monitor", func(ctx context.Context) error { return ignoreCancel(mon.Run(ctx)) })
	run("alert timers", func(ctx context.Context) error { return ignoreCancel(b.engine.Run(ctx, b.opts.TickInterval)) })
	run("room sync", func(ctx context.Context) error {
		return ignoreCancel(b.session.Follow(ctx, func(msgs []client.Message) { b.handleMessages(ctx, msgs) }))
	})
	<-ctx.Done()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func ignoreCancel(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// handleMessages applies acknowledgements from the rooms.
func (b *Bot) handleMessages(ctx context.Context, msgs []client.Message) {
	for _, m := range msgs {
		if m.Type != client.TypeContent || m.Own {
			continue
		}
		cm, err := m.Decode()
		if err != nil {
			continue
		}
		ack, ok := cm.Body.(*content.AlertAck)
		if !ok {
			continue
		}
		a, err := b.engine.HandleAck(ctx, m.Room, m.Sender, ack)
		switch {
		case errors.Is(err, alerting.ErrAlreadyAcknowledged), errors.Is(err, alerting.ErrUnknownAlert):
			b.log.Info("sepsis bot: acknowledgement not applied", "room", m.Room, "err", err)
		case err != nil:
			b.log.Error("sepsis bot: acknowledgement", "err", err)
		default:
			b.log.Info("sepsis bot: alert acknowledged", "room", m.Room, "alert", a.ID)
		}
	}
}

// Close releases the bot's files and session. Call it after Run returned.
func (b *Bot) Close() error {
	var errs []error
	for _, ln := range []net.Listener{b.fhirLn, b.mllpLn} {
		if ln != nil {
			ln.Close()
		}
	}
	if b.audit != nil {
		errs = append(errs, b.audit.Close())
	}
	if b.store != nil {
		errs = append(errs, b.store.Close())
	}
	if b.session != nil {
		errs = append(errs, b.session.Close())
	}
	return errors.Join(errs...)
}

// roomSink posts alerts and summaries as encrypted room messages.
type roomSink struct{ s *client.Session }

// PostAlert sends the alert as a content.Alert and returns its message id,
// which acknowledgements name.
func (r roomSink) PostAlert(ctx context.Context, room string, a alerting.Alert) (string, error) {
	sent, err := r.s.SendContent(ctx, room, a.Content(), "")
	if err != nil {
		return "", err
	}
	return sent.ID, nil
}

// PostSummary sends the summary as a text message.
func (r roomSink) PostSummary(ctx context.Context, room string, s alerting.Summary) (string, error) {
	sent, err := r.s.SendContent(ctx, room, &content.Text{Markdown: s.Markdown()}, "")
	if err != nil {
		return "", err
	}
	return sent.ID, nil
}
