package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// This example runs a job's tasks with a pool of workers until none is
// left. A task that fails is retried; one that fails MaxAttempts times in a
// row is Ignored. Many processes on many machines may run the same pool on
// the same job.
func ExampleTracker_Process() {
	ctx := context.Background()
	tracker, err := ddbtrack.New(localClient(), ddbtrack.Config[Status]{
		Table: exampleTable(), Job: "nightly-import",
		Pending: Queued, Running: Importing, Failed: ImportFailed, Succeeded: Imported, Ignored: Skipped,
		MaxAttempts: 2,
		// Retry a failed file after 10-15 ms, then 20-30 ms: short, for
		// the example; the default waits 30 s, then a minute, and so on.
		RetryDelay: ddbtrack.Exponential(10*time.Millisecond, time.Second),
		// OnEvent sees every step of every attempt: here, the tasks given up.
		OnEvent: func(ctx context.Context, e ddbtrack.Event[Status]) context.Context {
			if e.Kind == ddbtrack.EventIgnored {
				fmt.Printf("gave up on %s after %d attempts: %v\n", e.Task.ID, e.Task.Attempts, e.Err)
			}
			return ctx
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := tracker.CreateTable(ctx); err != nil {
		panic(err)
	}
	var tasks []ddbtrack.NewTask
	for i := range 20 {
		tasks = append(tasks, ddbtrack.NewTask{ID: fmt.Sprintf("file-%04d.csv", i)})
	}
	if _, err := tracker.CreateMany(ctx, tasks); err != nil {
		panic(err)
	}

	res, err := tracker.Process(ctx, func(ctx context.Context, task *ddbtrack.Task[Status]) error {
		// ctx is cancelled if the task's lease is lost; task.Fence can
		// guard writes to other tables against a stale worker.
		if strings.HasSuffix(task.ID, "7.csv") {
			return errors.New("bad header")
		}
		return task.SetOutput(map[string]any{"fence": task.Fence})
	}, ddbtrack.ProcessOptions[Status]{
		Concurrency:  4,
		PollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("attempts %d, succeeded %d, failed %d, ignored %d\n", res.Claimed, res.Succeeded, res.Failed, res.Ignored)
	// Unordered output:
	// gave up on file-0007.csv after 2 attempts: bad header
	// gave up on file-0017.csv after 2 attempts: bad header
	// attempts 22, succeeded 18, failed 2, ignored 2
}
