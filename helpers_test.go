package ddbtrack_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/ddbtest"
)

func TestMain(m *testing.M) { ddbtest.Main(m) }

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

// clock is a settable clock for Config.Now, so lease expiry is tested
// without sleeping. It starts at a fixed, realistic time.
type clock struct{ ms atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ms.Store(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).UnixMilli())
	return c
}

func (c *clock) Now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *clock) Advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// config returns the seed's configuration for a fresh table of this test.
func config(t testing.TB) ddbtrack.Config[Step] {
	return ddbtrack.Config[Step]{
		Table:     ddbtest.Table(t),
		Job:       "test-job",
		Pending:   Todo,
		Running:   InProgress,
		Failed:    Failed,
		Succeeded: Success,
		Ignored:   Ignore,
		Logger:    quietLogger(),
	}
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
	tr, err := ddbtrack.New(ddbtest.Client(t), cfg)
	require.NoError(t, err)
	require.NoError(t, tr.CreateTable(context.Background()))
	return tr
}

// worker returns another tracker on the same table and job, as a second
// process would have, with its own owner name.
func worker(t testing.TB, cfg ddbtrack.Config[Step], owner string) *ddbtrack.Tracker[Step] {
	t.Helper()
	cfg.Owner = owner
	tr, err := ddbtrack.New(ddbtest.Client(t), cfg)
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
