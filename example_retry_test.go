package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// This example absorbs a flapping dependency with retry delays. The
// dependency fails its first two calls; each failure makes the task wait
// before its next attempt, twice as long each time, so the retries are
// spread out instead of spending every attempt within milliseconds while
// the dependency is down. The default, Exponential(30*time.Second,
// time.Hour), spreads them over minutes; this one over milliseconds, to
// keep the example short.
func ExampleExponential() {
	ctx := context.Background()
	const base = 40 * time.Millisecond
	tracker, err := ddbtrack.New(localClient(), ddbtrack.Config[Status]{
		Table: exampleTable(), Job: "nightly-import",
		Pending: Queued, Running: Importing, Failed: ImportFailed, Succeeded: Imported, Ignored: Skipped,
		RetryDelay: ddbtrack.Exponential(base, time.Second),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := tracker.CreateTable(ctx); err != nil {
		panic(err)
	}
	if err := tracker.Create(ctx, ddbtrack.NewTask{ID: "file-0003.csv"}); err != nil {
		panic(err)
	}

	var (
		mu       sync.Mutex
		attempts []time.Time
	)
	_, err = tracker.Process(ctx, func(ctx context.Context, task *ddbtrack.Task[Status]) error {
		mu.Lock()
		attempts = append(attempts, time.Now())
		n := len(attempts)
		mu.Unlock()
		if n <= 2 {
			fmt.Printf("attempt %d: dependency down\n", task.Attempts)
			return errors.New("S3 GetObject: 503 Slow Down")
		}
		fmt.Printf("attempt %d: imported\n", task.Attempts)
		return nil
	}, ddbtrack.ProcessOptions[Status]{PollInterval: 10 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	fmt.Println("waited at least 40ms, then 80ms:",
		attempts[1].Sub(attempts[0]) >= base, attempts[2].Sub(attempts[1]) >= 2*base)
	// Output:
	// attempt 1: dependency down
	// attempt 2: dependency down
	// attempt 3: imported
	// waited at least 40ms, then 80ms: true true
}
