package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbtrack/ddbtrack"
)

// Status is a job's own enum of statuses.
type Status int

const (
	Queued Status = iota
	Importing
	ImportFailed
	Imported
	Skipped
)

func (s Status) String() string {
	return [...]string{"queued", "importing", "import-failed", "imported", "skipped"}[s]
}

// localClient stands in for dynamodb.NewFromConfig(awsCfg) in the examples:
// it is a client for the local server the tests run against.
func localClient() *dynamodb.Client {
	client, err := sharedClient()
	if err != nil {
		panic(err)
	}
	return client
}

func exampleTable() string { return fmt.Sprintf("example-%08x", rand.Uint32()) }

// This example tracks one task from creation to success: claim, run, record.
func Example() {
	ctx := context.Background()
	client := localClient() // dynamodb.NewFromConfig(awsCfg) in a real service

	tracker, err := ddbtrack.New(client, ddbtrack.Config[Status]{
		Table:     exampleTable(),
		Job:       "nightly-import",
		Pending:   Queued,
		Running:   Importing,
		Failed:    ImportFailed,
		Succeeded: Imported,
		Ignored:   Skipped,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := tracker.CreateTable(ctx); err != nil {
		panic(err)
	}
	if err := tracker.Create(ctx, ddbtrack.NewTask{ID: "file-0001.csv", Data: map[string]any{"rows": 120}}); err != nil {
		panic(err)
	}

	// Start claims the task with one conditional write, runs the function,
	// and records the outcome with another.
	err = tracker.Start(ctx, "file-0001.csv", func(ctx context.Context, task *ddbtrack.Task[Status]) error {
		fmt.Println("running:", task.ID, "attempt", task.Attempts, "status", task.Status)
		return task.SetOutput(map[string]any{"imported": 120})
	})
	if err != nil {
		panic(err)
	}

	task, err := tracker.Get(ctx, "file-0001.csv")
	if err != nil {
		panic(err)
	}
	var out struct{ Imported int }
	if err := task.UnmarshalOutput(&out); err != nil {
		panic(err)
	}
	fmt.Println("after:", task.Status, "imported", out.Imported, "leased", task.LeaseOwner != "")
	// Output:
	// running: file-0001.csv attempt 1 status importing
	// after: imported imported 120 leased false
}

// This example shows what a failing task leaves behind: it waits out its
// retry delay before it may run again, and a task that fails MaxAttempts
// times in a row is ignored until it is reset.
func ExampleTracker_Start_failures() {
	ctx := context.Background()
	tracker, err := ddbtrack.New(localClient(), ddbtrack.Config[Status]{
		Table: exampleTable(), Job: "nightly-import",
		Pending: Queued, Running: Importing, Failed: ImportFailed, Succeeded: Imported, Ignored: Skipped,
		MaxAttempts: 2,
		// A second between attempts, for the example; the default starts
		// at 30 seconds and doubles.
		RetryDelay: func(n int) time.Duration { return time.Second },
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := tracker.CreateTable(ctx); err != nil {
		panic(err)
	}
	if err := tracker.Create(ctx, ddbtrack.NewTask{ID: "file-0002.csv"}); err != nil {
		panic(err)
	}

	errBadRow := errors.New("row 17: bad date")
	for range 4 {
		err := tracker.Start(ctx, "file-0002.csv", func(context.Context, *ddbtrack.Task[Status]) error {
			return errBadRow
		})
		var refused *ddbtrack.TaskError
		switch {
		case errors.Is(err, errBadRow):
			task, _ := tracker.Get(ctx, "file-0002.csv")
			fmt.Printf("failed: now %s after %d attempts: %s\n", task.Status, task.Attempts, task.LastError)
		case errors.As(err, &refused) && errors.Is(err, ddbtrack.ErrTaskNotDue):
			fmt.Println("refused: not due until its retry delay has passed")
			time.Sleep(time.Until(refused.DueAt))
		case errors.As(err, &refused) && errors.Is(err, ddbtrack.ErrTaskIgnored):
			fmt.Println("refused: task is", refused.StatusName)
		}
	}

	// Once the cause is fixed, Reset makes the task run again.
	if err := tracker.Reset(ctx, "file-0002.csv"); err != nil {
		panic(err)
	}
	err = tracker.Start(ctx, "file-0002.csv", func(context.Context, *ddbtrack.Task[Status]) error { return nil })
	task, _ := tracker.Get(ctx, "file-0002.csv")
	fmt.Println("after reset:", task.Status, err)
	// Output:
	// failed: now import-failed after 1 attempts: row 17: bad date
	// refused: not due until its retry delay has passed
	// failed: now skipped after 2 attempts: row 17: bad date
	// refused: task is skipped
	// after reset: imported <nil>
}
