package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/ddbtrack/ddbtrack"
)

// exampleImports returns a tracker on a new table where yesterday's run of
// three imports failed, two of them on a timeout.
func exampleImports(ctx context.Context) *ddbtrack.Tracker[Status] {
	tracker, err := ddbtrack.New(localClient(), ddbtrack.Config[Status]{
		Table: exampleTable(), Job: "nightly-import",
		Pending: Queued, Running: Importing, Failed: ImportFailed, Succeeded: Imported, Ignored: Skipped,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := tracker.CreateTable(ctx); err != nil {
		panic(err)
	}
	for _, f := range []struct{ id, err string }{
		{"a.csv", "read tcp 10.0.0.7:443: i/o timeout"},
		{"b.csv", "row 17: bad date"},
		{"c.csv", "S3 GetObject: timeout after 30s"},
	} {
		if err := tracker.Create(ctx, ddbtrack.NewTask{ID: f.id}); err != nil {
			panic(err)
		}
		_ = tracker.Start(ctx, f.id, func(context.Context, *ddbtrack.Task[Status]) error { return errors.New(f.err) })
	}
	return tracker
}

// This example reruns every import that failed in the last day with an
// error that mentions a timeout: Query finds them through the status index,
// the one due for a retry first (retry delays vary at random, so the order
// of two failures a moment apart does too), and Start runs each one again.
func ExampleTracker_Query() {
	ctx := context.Background()
	tracker := exampleImports(ctx)

	timeouts := ddbtrack.QueryOptions[Status]{
		Statuses: []Status{ImportFailed},
		Since:    time.Now().Add(-24 * time.Hour),
		Filter:   expression.Name("last_error").Contains("timeout"),
	}
	for task, err := range tracker.Query(ctx, timeouts) {
		if err != nil {
			panic(err)
		}
		// A failed task waits out its retry delay before workers take it
		// again; Reset makes it due now.
		if err := tracker.Reset(ctx, task.ID); err != nil {
			panic(err)
		}
		err := tracker.Start(ctx, task.ID, func(context.Context, *ddbtrack.Task[Status]) error {
			return nil // Import the file again.
		})
		fmt.Println("reran", task.ID, "after:", task.LastError, "error:", err)
	}

	counts, err := tracker.Count(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(Imported, counts.ByStatus[Imported], ImportFailed, counts.ByStatus[ImportFailed])
	// Unordered output:
	// reran a.csv after: read tcp 10.0.0.7:443: i/o timeout error: <nil>
	// reran c.csv after: S3 GetObject: timeout after 30s error: <nil>
	// imported 2 import-failed 1
}

// This example hands the same tasks back to the workers instead: Requeue
// moves them to Queued with a fresh attempt count, one conditional write
// each, skipping any task a worker has claimed meanwhile. A dry run counts
// first.
func ExampleTracker_Requeue() {
	ctx := context.Background()
	tracker := exampleImports(ctx)

	opts := ddbtrack.RequeueOptions[Status]{
		Statuses: []Status{ImportFailed},
		Since:    time.Now().Add(-24 * time.Hour),
		Filter:   expression.Name("last_error").Contains("timeout"),
		DryRun:   true,
	}
	res, err := tracker.Requeue(ctx, opts)
	if err != nil {
		panic(err)
	}
	fmt.Printf("dry run: %+v\n", res)

	opts.DryRun = false
	res, err = tracker.Requeue(ctx, opts)
	if err != nil {
		panic(err)
	}
	fmt.Printf("requeued: %+v\n", res)

	counts, err := tracker.Count(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println(Queued, counts.ByStatus[Queued], ImportFailed, counts.ByStatus[ImportFailed])
	// Output:
	// dry run: {Matched:2 Moved:0 Skipped:0}
	// requeued: {Matched:2 Moved:2 Skipped:0}
	// queued 2 import-failed 1
}
