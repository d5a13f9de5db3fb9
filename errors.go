package ddbtrack

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Errors returned by a [Tracker] match them with
// [errors.Is]; most come wrapped in a [*TaskError] that says which task was
// refused and in what state it was found.
var (
	// ErrTaskNotFound means the task does not exist in the job.
	ErrTaskNotFound = errors.New("ddbtrack: task not found")
	// ErrTaskExists means Create found a task with the same ID; the stored
	// task was left as it was.
	ErrTaskExists = errors.New("ddbtrack: task already exists")
	// ErrTaskLocked means another worker holds an unexpired lease on the task.
	ErrTaskLocked = errors.New("ddbtrack: task is locked by another worker")
	// ErrTaskNotDue means the task may not start yet: it was scheduled for
	// later, or is waiting out its retry backoff or a snooze. The
	// [*TaskError] carries the time it is due.
	ErrTaskNotDue = errors.New("ddbtrack: task is not due yet")
	// ErrTaskSucceeded means the task already succeeded, so it is not run again.
	ErrTaskSucceeded = errors.New("ddbtrack: task already succeeded")
	// ErrTaskIgnored means the task failed Config.MaxAttempts times in a row,
	// or was cancelled, and will not start until it is requeued or reset.
	ErrTaskIgnored = errors.New("ddbtrack: task is ignored")
	// ErrTaskNotReady means the task is in a status from which this tracker
	// may not start it, such as a status owned by another step of a pipeline.
	ErrTaskNotReady = errors.New("ddbtrack: task is not in a startable status")
	// ErrLeaseLost means the worker's lease ended before its outcome was
	// written: it expired and another worker claimed the task, or the task
	// was reset or deleted. Nothing was written, so a stale worker never
	// overwrites the new owner's record.
	ErrLeaseLost = errors.New("ddbtrack: lease lost; outcome not recorded")
	// ErrCancelled means the task was cancelled with [Tracker.Cancel]. It is
	// the cause of the function's context when its worker sees the request,
	// and what Start returns when it recorded the cancellation.
	ErrCancelled = errors.New("ddbtrack: task cancelled")
	// ErrItemTooLarge means a write would push the task's item over
	// DynamoDB's 400 KB limit.
	ErrItemTooLarge = errors.New("ddbtrack: task record would exceed DynamoDB's 400 KB item limit")
	// ErrInvalidOption means a Config, options struct or argument, such as
	// a task ID that cannot be a DynamoDB key, cannot be used as given. It comes as an [*OptionError] that names the field, the
	// problem and the fix.
	ErrInvalidOption = errors.New("ddbtrack: invalid option")
	// ErrRelease is for the function that Start runs: returning an error
	// that matches it puts the task back in the status it was claimed from
	// without counting the attempt, for a task that cannot run yet, such as
	// one waiting on a dependency. It is never recorded as a failure. See
	// also [Snooze], which releases until a later time.
	ErrRelease = errors.New("ddbtrack: release the task without counting the attempt")
	// ErrUnavailable means DynamoDB requests kept failing for longer than
	// ddbtrack waits: Process gave up after ProcessOptions.MaxOutage, or a
	// write whose result was unknown could not be settled within
	// Config.FinishTimeout. The error wraps the last one. A claim or an
	// outcome that may have landed unseen leaves the task Running under
	// this worker's lease, and another worker takes it over when the lease
	// expires. A Process worker goes on settling such a claim or outcome
	// within the lease, and records it, or releases the task if its claim
	// landed, once DynamoDB answers again.
	ErrUnavailable = errors.New("ddbtrack: DynamoDB unavailable")
	// ErrTableSchema means CreateTable found an existing table whose keys or
	// status index differ from the ones ddbtrack needs.
	ErrTableSchema = errors.New("ddbtrack: existing table has a different schema")
	// ErrTransaction means the writes added with [Task.AddWrites] could not
	// be committed with the task's success: they break a limit of
	// DynamoDB's transactions, a condition of theirs failed, or the server
	// has no transactions. The task is recorded as failed with the reason.
	ErrTransaction = errors.New("ddbtrack: transaction not committed")
)

// TaskError reports an operation refused because of the state of one task.
// It carries the state the task was found in, read from the item that
// refused the write (DynamoDB returns it with the refusal where the server
// supports that) or from one consistent read.
//
// errors.Is matches both the sentinel in Err and, when the refusal came from
// DynamoDB, the SDK's *types.ConditionalCheckFailedException.
type TaskError struct {
	// Op is the operation that was refused: "start", "create", "reset".
	Op string
	// Job and TaskID name the task.
	Job, TaskID string
	// Err is the sentinel that says why, such as ErrTaskLocked.
	Err error
	// Status and StatusName are the task's status when it refused the
	// operation. They are zero and empty when the task does not exist.
	Status     int
	StatusName string
	// Attempts is the task's count of consecutive attempts that did not
	// succeed; for a Running task it includes the one in progress.
	Attempts int
	// LeaseOwner and LeaseExpiresAt describe the lease that holds the task,
	// when Err is ErrTaskLocked.
	LeaseOwner     string
	LeaseExpiresAt time.Time
	// DueAt is when the task may start, when Err is ErrTaskNotDue.
	DueAt time.Time
	// Cause is the error DynamoDB returned, if any.
	Cause error
}

func (e *TaskError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s task %q of job %q", e.Err, e.Op, e.TaskID, e.Job)
	if e.StatusName != "" {
		fmt.Fprintf(&b, " (status %s", e.StatusName)
		switch {
		case e.LeaseOwner != "":
			fmt.Fprintf(&b, ", attempt %d, leased by %s until %s", e.Attempts, e.LeaseOwner, e.LeaseExpiresAt.UTC().Format(time.RFC3339Nano))
		case e.Attempts == 1:
			b.WriteString(", 1 failed attempt")
		case e.Attempts > 1:
			fmt.Fprintf(&b, ", %d failed attempts in a row", e.Attempts)
		}
		if e.Err == ErrTaskNotDue {
			fmt.Fprintf(&b, ", due at %s", e.DueAt.UTC().Format(time.RFC3339Nano))
		}
		b.WriteString(")")
	}
	if hint := hintFor(e.Err); hint != "" {
		b.WriteString(": ")
		b.WriteString(hint)
	}
	return b.String()
}

// Unwrap returns the sentinel and the DynamoDB cause, so that errors.Is and
// errors.As reach both.
func (e *TaskError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// hintFor says what a caller can do about a refusal.
func hintFor(err error) string {
	switch err {
	case ErrTaskNotFound:
		return "create it first with Tracker.Create"
	case ErrTaskExists:
		return "use another ID, or Tracker.Reset to run the existing task again"
	case ErrTaskLocked:
		return "another worker is running it; retry after the lease expires"
	case ErrTaskNotDue:
		return "start it once it is due, or Tracker.Reset it to make it due now"
	case ErrTaskIgnored:
		return "fix the cause, then Tracker.Reset it to run it again"
	case ErrTaskSucceeded:
		return "Tracker.Reset it to run it again"
	case ErrTaskNotReady:
		return "add its status to Config.Startable if this tracker should start it"
	}
	return ""
}

// OptionError reports a field of a Config or of an options struct, or an
// argument, that cannot be used as given, and how to fix it. It matches
// ErrInvalidOption with errors.Is.
type OptionError struct {
	// Field names what was wrong, qualified by its struct, such as
	// "Config.Job" or "QueryOptions.Limit".
	Field string
	// Problem says what is wrong with it, and Fix what to do instead.
	Problem string
	Fix     string
}

func optionError(field, problem, fix string) *OptionError {
	return &OptionError{Field: field, Problem: problem, Fix: fix}
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("%v: %s %s: %s", ErrInvalidOption, e.Field, e.Problem, e.Fix)
}

// Unwrap returns ErrInvalidOption.
func (e *OptionError) Unwrap() error { return ErrInvalidOption }
