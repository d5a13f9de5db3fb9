package ddbtrack_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

var (
	dueTasks   = flag.Int("bench.due-tasks", 1_000, "tasks due now in each shape of BenchmarkDueWork")
	laterTasks = flag.Int("bench.later-tasks", 100_000, "tasks scheduled for tomorrow beside the due ones in BenchmarkDueWork")
)

// dueOnly holds the figures per task of the last due-only run in this
// process: the baseline of the other shape's ratios.
var dueOnly struct {
	mu           sync.Mutex
	queries, rru float64
}

// BenchmarkDueWork checks issue 10's point 6: tasks that are not yet due
// cost Process nothing. Two jobs are drained of -bench.due-tasks due tasks:
// shape=due-only holds nothing else, and shape=later+due also holds
// -bench.later-tasks tasks scheduled across tomorrow. One Process of
// default options runs each in Service mode, stopped when the last due task
// has succeeded: a Batch run would wait for tomorrow's tasks.
//
// Reported: queries/task and RRU/task (the read units the server reported
// for the queries) per due task, and for shape=later+due, the same figures
// as ratios to the due-only run of the same process (queries/due-only,
// RRU/due-only; 1 is the goal). Tasks are seeded with BatchWriteItem
// outside the timer; tomorrow's tasks are seeded once per table and stay
// untouched, and each iteration adds its own due tasks.
func BenchmarkDueWork(b *testing.B) {
	for _, shape := range []string{"due-only", "later+due"} {
		b.Run("shape="+shape, func(b *testing.B) {
			cfg := config(b)
			newTracker(b, cfg)
			if shape == "later+due" {
				tomorrow := time.Now().Add(24 * time.Hour).Truncate(24 * time.Hour)
				seedPending(b, cfg, "later-", *laterTasks, tomorrow, 24*time.Hour/time.Duration(max(*laterTasks, 1)))
			}
			var queries, rru float64
			var tasks int
			var took time.Duration
			for i := range b.N {
				b.StopTimer()
				n := *dueTasks
				seedPending(b, cfg, fmt.Sprintf("due-%d-", i), n, time.Now().Add(-time.Minute), time.Millisecond)
				rc := machineClient(b)
				b.StartTimer()
				start := time.Now()
				drainDue(b, rc, cfg, n)
				took += time.Since(start)
				b.StopTimer()
				queries += float64(rc.Counts()[reqcount.Query])
				rru += rc.CapacityUnits()[reqcount.Query]
				tasks += n
			}
			q, r := perTask(queries, tasks), perTask(rru, tasks)
			b.ReportMetric(q, "queries/task")
			b.ReportMetric(r, "RRU/task")
			b.ReportMetric(float64(tasks)/took.Seconds(), "tasks/s")
			dueOnly.mu.Lock()
			defer dueOnly.mu.Unlock()
			if shape == "due-only" {
				dueOnly.queries, dueOnly.rru = q, r
			} else if dueOnly.queries > 0 {
				b.ReportMetric(q/dueOnly.queries, "queries/due-only")
				b.ReportMetric(r/dueOnly.rru, "RRU/due-only")
			}
		})
	}
}

// drainDue runs Process in Service mode until n tasks have succeeded.
func drainDue(b *testing.B, rc *reqcount.Client, cfg ddbtrack.Config[Step], n int) {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var succeeded atomic.Int64
	cfg.OnEvent = func(ctx context.Context, e ddbtrack.Event[Step]) context.Context {
		if e.Kind == ddbtrack.EventSucceeded && succeeded.Add(1) == int64(n) {
			stop()
		}
		return ctx
	}
	tr, err := ddbtrack.New(rc, cfg)
	require.NoError(b, err)
	res, err := tr.Process(ctx, ok, ddbtrack.ProcessOptions[Step]{Mode: ddbtrack.Service})
	require.True(b, errors.Is(err, context.Canceled), "Process returned %v, want context.Canceled", err)
	require.Equal(b, n, res.Succeeded)
}
