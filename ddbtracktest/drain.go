package ddbtracktest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// Drain runs fn on the job's tasks until none is left to run, and returns
// what it did: the way to test a worker function end to end. It is
// [ddbtrack.Tracker.Process] in Batch mode, so fn runs as in production:
// several tasks at once (fn must be safe for concurrent use, as it must be
// anyway), a failed task is retried until it succeeds or MaxAttempts makes
// it Ignored, and a panic in fn is recorded on its task and then raised
// again in the test.
//
// Drain polls faster than Process's defaults and gives up on an unreachable
// server after seconds rather than minutes, both because the server is
// local. An error that ends Process fails the test.
//
// A Batch run ends only when no task is left Running, so a task held by a
// worker that never records its outcome keeps Drain waiting until its
// lease expires, which under a stopped [Clock] is never. Rather than let
// the go command kill the test binary at its -timeout without a word about
// why, Drain fails the test shortly before the test's deadline, listing
// the tasks it was waiting for.
func Drain[S ddbtrack.Status](tb testing.TB, tr *ddbtrack.Tracker[S], fn func(ctx context.Context, task *ddbtrack.Task[S]) error) ddbtrack.ProcessResult {
	tb.Helper()
	ctx := tb.Context()
	if d, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			// Leave time to list the tasks and to report the failure.
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline.Add(-max(time.Until(deadline)/20, 5*time.Second)))
			defer cancel()
		}
	}
	res, err := tr.Process(ctx, fn, ddbtrack.ProcessOptions[S]{
		Mode: ddbtrack.Batch,
		// A local server answers in milliseconds; the default second
		// between looks would make every Drain last seconds.
		PollInterval: 20 * time.Millisecond,
		MaxOutage:    30 * time.Second,
	})
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		tb.Fatalf("ddbtracktest: drain job %q: not drained before the test's deadline (so far %+v); by the tracker's clock, at %s, it was waiting for:\n%s",
			tr.Config().Job, res, tr.Config().Now().UTC().Format(time.RFC3339Nano), waitingFor(tr))
	case err != nil:
		tb.Fatalf("ddbtracktest: drain job %q: %v (before the error: %+v)", tr.Config().Job, err, res)
	}
	return res
}

// waitingFor describes the tasks a Batch run waits for, a line each: those
// waiting to start, and every Running one, whose lease has expired or not.
func waitingFor[S ddbtrack.Status](tr *ddbtrack.Tracker[S]) string {
	cfg := tr.Config()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var b strings.Builder
	for task, err := range tr.Query(ctx, ddbtrack.QueryOptions[S]{Statuses: append([]S{cfg.Pending, cfg.Failed, cfg.Running}, cfg.Startable...)}) {
		if err != nil {
			fmt.Fprintf(&b, "  (could not list them: %v)\n", err)
			break
		}
		fmt.Fprintf(&b, "  %s: %s, due %s, attempt %d", task.ID, task.StatusName, task.DueAt.UTC().Format(time.RFC3339Nano), task.Attempts)
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
