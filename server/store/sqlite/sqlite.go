// Package sqlite implements store.Store on an SQLite file (modernc.org/sqlite,
// pure Go) in WAL mode with synchronous=FULL, so that a write that returned
// is on disk.
//
// All writes go through one writer goroutine that drains a bounded queue and
// runs many queued operations in one transaction (group commit): each
// operation runs inside its own savepoint, so one failing operation does not
// affect the others, and a burst of concurrent senders costs one fsync, not
// one each. Reads use a separate pool of read-only connections.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/medicus-health/medicus/proto"
	"github.com/medicus-health/medicus/server/store"
)

// maxBatch bounds how many queued operations share one transaction.
const maxBatch = 512

// DB is an SQLite-backed store.Store.
type DB struct {
	write *sql.DB
	read  *sql.DB
	log   *slog.Logger

	// onCommit receives, after each commit, the events that transaction
	// appended, in stream order. committing collects them; only the
	// writer goroutine touches it.
	onCommit   func([]proto.Event)
	committing []proto.Event

	serverName string
	onFederate func([]string)
	federating map[string]bool // destinations queued in the current batch; writer only

	// stmts caches prepared statements of the write path; only the writer
	// goroutine uses it. Parsing SQL was a tenth of the server's CPU time.
	stmts map[string]*sql.Stmt

	batches, ops, busy atomic.Int64

	queue    chan *writeOp
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

type writeOp struct {
	ctx  context.Context
	fn   func(tx *sql.Tx) error
	errc chan error
}

var _ store.Store = (*DB)(nil)

// Options configure Open.
type Options struct {
	Logger *slog.Logger
	// OnCommit, if set, is called by the writer after every commit with the
	// room events that commit appended, in stream order, before any caller
	// of the writes is answered. It must not block for long: it runs on the
	// write path. The server feeds live sync from it.
	OnCommit func([]proto.Event)
	// ServerName is this homeserver's name: rooms it is the hub of fan out
	// their events to the other servers with members (federation).
	ServerName string
	// OnFederate, if set, is called after a commit that queued federation
	// items, with their destinations.
	OnFederate func(destinations []string)
}

// Open opens (creating if needed) the database file at path, runs pending
// migrations and starts the writer.
func Open(path string, opts Options) (*DB, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	w, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := migrate(w); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrate database %s: %w", path, err)
	}
	rq := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "query_only(1)"} {
		rq.Add("_pragma", p)
	}
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	db := &DB{
		write:      w,
		read:       r,
		log:        logger,
		onCommit:   opts.OnCommit,
		serverName: opts.ServerName,
		onFederate: opts.OnFederate,
		federating: map[string]bool{},
		stmts:      make(map[string]*sql.Stmt),
		queue:      make(chan *writeOp, maxBatch*2),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	for _, q := range hotStatements {
		st, err := w.Prepare(q)
		if err != nil {
			for _, st := range db.stmts {
				st.Close()
			}
			r.Close()
			w.Close()
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		db.stmts[q] = st
	}
	go db.writer()
	return db, nil
}

// Close stops the writer after the queued writes and closes the database,
// checkpointing the WAL.
func (db *DB) Close() error {
	db.stopOnce.Do(func() { close(db.stop) })
	<-db.done
	// How well writes were batched (group commit) tells an operator
	// whether the disk's sync time limits throughput.
	ws := db.WriteStats()
	db.log.Info("store writer stopped", "commits", ws.Batches, "operations", ws.Ops, "busy", ws.Busy)
	for _, st := range db.stmts {
		st.Close()
	}
	_, cpErr := db.write.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
	rerr := db.read.Close()
	werr := db.write.Close()
	return errors.Join(cpErr, rerr, werr)
}

// tx queues fn to run in the writer's next transaction and waits until that
// transaction is committed (or fn fails).
func (db *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	op := &writeOp{ctx: ctx, fn: fn, errc: make(chan error, 1)}
	select {
	case db.queue <- op:
	case <-db.stop:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the op will run or fail; wait for it even if ctx ends,
	// so that a caller never reports failure for a write that committed.
	return <-op.errc
}

func (db *DB) writer() {
	defer close(db.done)
	batch := make([]*writeOp, 0, maxBatch)
	for {
		select {
		case op := <-db.queue:
			batch = append(batch[:0], op)
		case <-db.stop:
			// Drain what was queued before the stop.
			for {
				select {
				case op := <-db.queue:
					db.runBatch([]*writeOp{op})
				default:
					return
				}
			}
		}
		// Let runnable senders enqueue before committing, so that under
		// load one fsync covers more of them.
		runtime.Gosched()
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-db.queue:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		db.runBatch(batch)
	}
}

// WriteStats counts the writer's work since Open.
type WriteStats struct {
	Batches int64         // transactions committed or attempted
	Ops     int64         // operations run in them
	Busy    time.Duration // time spent running batches, fsync included
}

// WriteStats reports how well writes are batched: Ops/Batches is the mean
// group-commit size.
func (db *DB) WriteStats() WriteStats {
	return WriteStats{Batches: db.batches.Load(), Ops: db.ops.Load(), Busy: time.Duration(db.busy.Load())}
}

func (db *DB) runBatch(batch []*writeOp) {
	db.batches.Add(1)
	db.ops.Add(int64(len(batch)))
	start := time.Now()
	defer func() { db.busy.Add(int64(time.Since(start))) }()
	errs := make([]error, len(batch))
	db.committing = db.committing[:0]
	tx, err := db.write.Begin()
	if err != nil {
		for _, op := range batch {
			op.errc <- fmt.Errorf("begin transaction: %w", err)
		}
		return
	}
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if _, err := db.exec(tx, qSavepoint); err != nil {
			errs[i] = err
			continue
		}
		mark := len(db.committing)
		if err := op.fn(tx); err != nil {
			errs[i] = err
			db.committing = db.committing[:mark]
			if _, rerr := db.exec(tx, qRollbackTo); rerr != nil {
				db.log.Error("rollback to savepoint", "err", rerr)
			}
		}
		if _, err := db.exec(tx, qRelease); err != nil && errs[i] == nil {
			errs[i] = err
		}
	}
	if err := tx.Commit(); err != nil {
		for _, op := range batch {
			op.errc <- fmt.Errorf("commit: %w", err)
		}
		return
	}
	if db.onCommit != nil && len(db.committing) > 0 {
		db.onCommit(db.committing)
	}
	if len(db.federating) > 0 {
		if db.onFederate != nil {
			dests := make([]string, 0, len(db.federating))
			for d := range db.federating {
				dests = append(dests, d)
			}
			db.onFederate(dests)
		}
		clear(db.federating)
	}
	for i, op := range batch {
		op.errc <- errs[i]
	}
}

// hotStatements are prepared once at Open, on the single write connection,
// because parsing SQL was a tenth of the server's CPU time under load.
var hotStatements = []string{qNextSeq, qInsertEvent, qCheckAppend, qSavepoint, qRollbackTo, qRelease}

// Every queued operation runs inside its own savepoint (see runBatch).
const (
	qSavepoint  = "SAVEPOINT op"
	qRollbackTo = "ROLLBACK TO op"
	qRelease    = "RELEASE op"
)

// exec runs a statement without results in tx.
func (db *DB) exec(tx *sql.Tx, query string) (sql.Result, error) {
	st, err := db.stmt(tx, query)
	if err != nil {
		return nil, err
	}
	return st.Exec()
}

// stmt returns query bound to tx: the statement prepared at Open if it is a
// hot one, otherwise one prepared for this transaction only.
func (db *DB) stmt(tx *sql.Tx, query string) (*sql.Stmt, error) {
	if st, ok := db.stmts[query]; ok {
		return tx.Stmt(st), nil
	}
	return tx.Prepare(query)
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}
