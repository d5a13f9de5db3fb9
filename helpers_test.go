package ddbtrack_test

import (
	"context"
	"log/slog"
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

// shortLease returns d, a lease short enough for a test to watch several
// renewals, or five times d on moto. A renewal must land within the third
// of the lease left when it is sent, and moto, one Python process, can take
// longer than 100 ms to answer on a loaded machine.
func shortLease(d time.Duration) time.Duration {
	if serverKind() == "moto" {
		return 5 * d
	}
	return d
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
