package ddbtracktest

import (
	"context"
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
func Drain[S ddbtrack.Status](tb testing.TB, tr *ddbtrack.Tracker[S], fn func(ctx context.Context, task *ddbtrack.Task[S]) error) ddbtrack.ProcessResult {
	tb.Helper()
	res, err := tr.Process(tb.Context(), fn, ddbtrack.ProcessOptions[S]{
		Mode: ddbtrack.Batch,
		// A local server answers in milliseconds; the default second
		// between looks would make every Drain last seconds.
		PollInterval: 20 * time.Millisecond,
		MaxOutage:    30 * time.Second,
	})
	if err != nil {
		tb.Fatalf("ddbtracktest: drain job %q: %v (before the error: %+v)", tr.Config().Job, err, res)
	}
	return res
}
