package ddbtracktest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// Status is the job's own enum of statuses.
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

// importFile is the worker function under test: it imports one file, named
// by the task's ID, and records how many rows it read.
func importFile(_ context.Context, task *ddbtrack.Task[Status]) error {
	if strings.HasPrefix(task.ID, "broken") {
		return errors.New("bad header in line 1")
	}
	var in struct{ Rows int }
	if err := task.UnmarshalData(&in); err != nil {
		return err
	}
	return task.SetOutput(map[string]any{"imported": in.Rows})
}

// This example is a test of a worker function: New gives it a tracker on a
// fresh table, Drain runs every task, and RequireTask checks how each ended.
func Example() {
	t := newExampleT() // In a test, the test's own *testing.T.
	defer t.finish()

	tr := ddbtracktest.New(t, ddbtrack.Config[Status]{
		Job:     "nightly-import",
		Pending: Queued, Running: Importing, Failed: ImportFailed, Succeeded: Imported, Ignored: Skipped,
	})
	for id, rows := range map[string]int{"a.csv": 120, "b.csv": 7, "broken.csv": 0} {
		if err := tr.Create(t.Context(), ddbtrack.NewTask{ID: id, Data: map[string]any{"rows": rows}}); err != nil {
			t.Fatal(err)
		}
	}

	res := ddbtracktest.Drain(t, tr, importFile)
	fmt.Printf("claimed %d times: %d succeeded, %d failed and were retried, %d ignored\n",
		res.Claimed, res.Succeeded, res.Failed, res.Ignored)

	ddbtracktest.RequireTask(t, tr, "a.csv", ddbtracktest.Want[Status]{Status: Imported, Output: map[string]any{"imported": 120}})
	ddbtracktest.RequireTask(t, tr, "b.csv", ddbtracktest.Want[Status]{Status: Imported, Output: map[string]any{"imported": 7}})
	task := ddbtracktest.RequireTask(t, tr, "broken.csv", ddbtracktest.Want[Status]{Status: Skipped, Attempts: 3, LastError: "bad header"})
	fmt.Println(task.ID, "is", task.Status, "after", task.Attempts, "attempts:", task.LastError)
	// Output:
	// claimed 5 times: 2 succeeded, 2 failed and were retried, 1 ignored
	// broken.csv is skipped after 3 attempts: bad header in line 1
}

// This example moves a Clock to test what depends on time without waiting
// for it: here, how long a task waited, and when its record expires.
func ExampleClock() {
	t := newExampleT() // In a test, the test's own *testing.T.
	defer t.finish()

	var clock ddbtracktest.Clock
	tr := ddbtracktest.New(t, ddbtrack.Config[Status]{
		Job:     "nightly-import",
		Pending: Queued, Running: Importing, Failed: ImportFailed, Succeeded: Imported, Ignored: Skipped,
		Retention: 7 * 24 * time.Hour,
		Now:       clock.Now,
	})
	if err := tr.Create(t.Context(), ddbtrack.NewTask{ID: "a.csv", Data: map[string]any{"rows": 3}}); err != nil {
		t.Fatal(err)
	}

	clock.Advance(90 * time.Minute) // The task waits in the queue.
	ddbtracktest.Drain(t, tr, importFile)

	task := ddbtracktest.RequireTask(t, tr, "a.csv", ddbtracktest.Want[Status]{Status: Imported})
	fmt.Println("created:  ", task.CreatedAt.UTC())
	fmt.Println("waited:   ", task.SucceededAt.Sub(task.CreatedAt))
	fmt.Println("expires:  ", task.ExpiresAt.UTC())
	// Output:
	// created:   2026-01-01 12:00:00 +0000 UTC
	// waited:    1h30m0s
	// expires:   2026-01-08 13:30:00 +0000 UTC
}

// exampleT stands in for the *testing.T a test passes to the kit, since
// Example functions get none. It panics on a failure, which fails the
// example with the message, and runs the cleanups, such as deleting the
// table, in finish. The embedded testing.TB is nil: should the kit call a
// method not defined here, the examples panic at once rather than drift.
type exampleT struct {
	testing.TB
	ctx      context.Context
	cancel   context.CancelFunc
	cleanups []func()
}

func newExampleT() *exampleT {
	ctx, cancel := context.WithCancel(context.Background())
	return &exampleT{ctx: ctx, cancel: cancel}
}

func (t *exampleT) finish() {
	t.cancel()
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func (t *exampleT) Helper()                           {}
func (t *exampleT) Name() string                      { return "Example" }
func (t *exampleT) Context() context.Context          { return t.ctx }
func (t *exampleT) Cleanup(f func())                  { t.cleanups = append(t.cleanups, f) }
func (t *exampleT) Output() io.Writer                 { return io.Discard }
func (t *exampleT) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (t *exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) Errorf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
