package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
)

// Step is the seed notebook's status enum.
type Step int

const (
	Todo       Step = 0
	InProgress Step = 3
	Failed     Step = 6
	Success    Step = 9
	Ignore     Step = 10
)

func (s Step) String() string {
	switch s {
	case Todo:
		return "s00_todo"
	case InProgress:
		return "s03_in_progress"
	case Failed:
		return "s06_failed"
	case Success:
		return "s09_success"
	case Ignore:
		return "s10_ignore"
	}
	return ""
}

// clock is the test kit's settable clock for Config.Now, so that leases
// and retry delays are tested without sleeping.
type clock = ddbtracktest.Clock

func newClock() *clock { return &ddbtracktest.Clock{} }

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// serverKind reports which server the tests use: "dynalite", "moto" or
// "external".
func serverKind() string {
	if conn, err := ddblocal.Shared(); err == nil {
		return string(conn.Kind)
	}
	kind, _ := ddblocal.KindFromEnv()
	return string(kind)
}

// serverEndpoint returns the shared server's endpoint.
func serverEndpoint(t testing.TB) string {
	t.Helper()
	ddbtracktest.Client(t) // Fails the test, with the fix, if there is no server.
	conn, _ := ddblocal.Shared()
	return conn.Endpoint
}

// sharedClient returns the shared server's client, for code that has no
// testing.TB, such as Example functions.
func sharedClient() (*dynamodb.Client, error) {
	conn, err := ddblocal.Shared()
	if err != nil {
		return nil, err
	}
	return conn.Client, nil
}

// config returns the seed's configuration for a fresh table of this test.
func config(t testing.TB) ddbtrack.Config[Step] {
	return ddbtrack.Config[Step]{
		Table:     ddbtracktest.Table(t),
		Job:       "test-job",
		Pending:   Todo,
		Running:   InProgress,
		Failed:    Failed,
		Succeeded: Success,
		Ignored:   Ignore,
		Logger:    quietLogger(),
		// Most tests retry a failed task at once; the tests of retry
		// delays set their own.
		RetryDelay: noDelay,
	}
}

func noDelay(int) time.Duration { return 0 }

// count returns the number of tasks in status s.
func count(t testing.TB, tr *ddbtrack.Tracker[Step], s Step) int64 {
	t.Helper()
	c, err := tr.Count(context.Background(), s)
	require.NoError(t, err)
	return c.ByStatus[s]
}

// stats returns the number of tasks in every status of the job.
func stats(t testing.TB, tr *ddbtrack.Tracker[Step]) map[Step]int64 {
	t.Helper()
	c, err := tr.Count(context.Background())
	require.NoError(t, err)
	return c.ByStatus
}

// events records the events a tracker reports, for Config.OnEvent.
type events struct {
	mu   sync.Mutex
	list []ddbtrack.Event[Step]
}

func (e *events) hook(ctx context.Context, ev ddbtrack.Event[Step]) context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
	return ctx
}

// of returns the events of kind k.
func (e *events) of(k ddbtrack.EventKind) []ddbtrack.Event[Step] {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ddbtrack.Event[Step]
	for _, ev := range e.list {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// clockedConfig is config with a settable clock, for tests that expire
// leases or check stored times.
func clockedConfig(t testing.TB) (ddbtrack.Config[Step], *clock) {
	clk := newClock()
	cfg := config(t)
	cfg.Now = clk.Now
	return cfg, clk
}

// newTracker creates the table for cfg and returns a tracker on it.
func newTracker(t testing.TB, cfg ddbtrack.Config[Step]) *ddbtrack.Tracker[Step] {
	t.Helper()
	return ddbtracktest.New(t, cfg)
}

// worker returns another tracker on the same table and job, as a second
// process would have, with its own owner name.
func worker(t testing.TB, cfg ddbtrack.Config[Step], owner string) *ddbtrack.Tracker[Step] {
	t.Helper()
	cfg.Owner = owner
	tr, err := ddbtrack.New(ddbtracktest.Client(t), cfg)
	require.NoError(t, err)
	return tr
}

func get(t testing.TB, tr *ddbtrack.Tracker[Step], id string) *ddbtrack.Task[Step] {
	t.Helper()
	task, err := tr.Get(context.Background(), id)
	require.NoError(t, err)
	return task
}

func ok(context.Context, *ddbtrack.Task[Step]) error { return nil }

// defaultShards is Config.Shards's default, which tests that write items
// by hand must use too.
const defaultShards = 2

// warnCounter is a slog handler that counts warnings and errors while on.
type warnCounter struct {
	on atomic.Bool
	n  atomic.Int32
}

func (w *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn && w.on.Load() {
		w.n.Add(1)
	}
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }

// locked reports whether a worker holds an unexpired lease on the task at
// now.
func locked(task *ddbtrack.Task[Step], now time.Time) bool {
	return task.LeaseOwner != "" && now.Before(task.LeaseExpiresAt)
}

// batchWait bounds processBatch. A Batch pool ends only when no task is
// left Running, and under a stopped clock (clockedConfig) a lease that
// nobody records an outcome under never expires, so a regression that
// leaves one would otherwise hang until the package's timeout.
const batchWait = time.Minute

// processBatch runs Process in Batch mode for at most batchWait and
// returns what it returned. If it has not ended by then, the test fails
// with the tasks that kept it waiting.
func processBatch(t testing.TB, tr *ddbtrack.Tracker[Step], fn func(context.Context, *ddbtrack.Task[Step]) error, opts ddbtrack.ProcessOptions[Step]) (ddbtrack.ProcessResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), batchWait)
	defer cancel()
	opts.Mode = ddbtrack.Batch
	res, err := tr.Process(ctx, fn, opts)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		t.Fatalf("Process in Batch mode did not end within %v (result so far %+v); by the tracker's clock, at %s, these tasks kept it waiting:\n%s",
			batchWait, res, tr.Config().Now().UTC().Format(time.RFC3339Nano), unfinished(t, tr))
	}
	return res, err
}

// unfinished describes the tasks a Batch pool waits for, a line each:
// those waiting to start, and every Running one, whose lease has expired
// or not (QueryOptions.Unfinished lists only the expired ones).
func unfinished(t testing.TB, tr *ddbtrack.Tracker[Step]) string {
	t.Helper()
	cfg := tr.Config()
	statuses := append([]Step{cfg.Pending, cfg.Failed, cfg.Running}, cfg.Startable...)
	var b strings.Builder
	for task, err := range tr.Query(context.Background(), ddbtrack.QueryOptions[Step]{Statuses: statuses}) {
		require.NoError(t, err)
		fmt.Fprintf(&b, "  %s: %s, due %s, attempt %d, fence %d", task.ID, task.StatusName,
			task.DueAt.UTC().Format(time.RFC3339Nano), task.Attempts, task.Fence)
		if task.LeaseOwner != "" {
			fmt.Fprintf(&b, ", leased by %s until %s", task.LeaseOwner, task.LeaseExpiresAt.UTC().Format(time.RFC3339Nano))
		}
		if !task.CancelledAt.IsZero() {
			fmt.Fprintf(&b, ", cancelled (%s)", task.CancelReason)
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return "  none: the job finished meanwhile\n"
	}
	return b.String()
}
