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
	// ErrTaskSucceeded means the task already succeeded, so it is not run again.
	ErrTaskSucceeded = errors.New("ddbtrack: task already succeeded")
	// ErrTaskIgnored means the task failed Config.MaxAttempts times in a row
	// and will not start until it is requeued or reset.
	ErrTaskIgnored = errors.New("ddbtrack: task is ignored after too many failed attempts")
	// ErrTaskNotReady means the task is in a status from which this tracker
	// may not start it, such as a status owned by another step of a pipeline.
	ErrTaskNotReady = errors.New("ddbtrack: task is not in a startable status")
	// ErrLeaseLost means the worker's lease ended before its result was
	// written: it expired and another worker claimed the task, or the task
	// was reset or deleted. The result was not written, so the stale worker
	// never overwrites the new owner's record.
	ErrLeaseLost = errors.New("ddbtrack: lease lost; result not recorded")
	// ErrItemTooLarge means a write would push the task's item over
	// DynamoDB's 400 KB limit.
	ErrItemTooLarge = errors.New("ddbtrack: task record would exceed DynamoDB's 400 KB item limit")
	// ErrInvalidTaskID means a task ID cannot be stored as a DynamoDB key.
	ErrInvalidTaskID = errors.New("ddbtrack: invalid task ID")
	// ErrInvalidConfig means New was given a Config it cannot work with,
	// or StartWith or Process options they cannot work with.
	ErrInvalidConfig = errors.New("ddbtrack: invalid config")
	// ErrRelease is for the function that Start runs: returning an error
	// that matches it puts the task back in the status it was claimed from
	// without counting the attempt, for a task that cannot run yet, such as
	// one waiting on a dependency. It is never recorded as a failure.
	ErrRelease = errors.New("ddbtrack: release the task without counting the attempt")
	// ErrUnavailable means Process gave up after DynamoDB requests kept
	// failing for ProcessOptions.MaxOutage. The error wraps the last one.
	ErrUnavailable = errors.New("ddbtrack: DynamoDB unavailable")
	// ErrTableSchema means CreateTable found an existing table whose keys or
	// status index differ from the ones ddbtrack needs.
	ErrTableSchema = errors.New("ddbtrack: existing table has a different schema")
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
	// Attempts is the task's count of consecutive failed attempts.
	Attempts int
	// LeaseOwner and LeaseExpiresAt describe the lease that holds the task,
	// when Err is ErrTaskLocked.
	LeaseOwner     string
	LeaseExpiresAt time.Time
	// Cause is the error DynamoDB returned, if any.
	Cause error
}

func (e *TaskError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s task %q of job %q", e.Err, e.Op, e.TaskID, e.Job)
	if e.StatusName != "" {
		fmt.Fprintf(&b, " (status %s, %d failed attempts", e.StatusName, e.Attempts)
		if e.LeaseOwner != "" {
			fmt.Fprintf(&b, ", leased by %s until %s", e.LeaseOwner, e.LeaseExpiresAt.UTC().Format(time.RFC3339Nano))
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
	case ErrTaskIgnored:
		return "fix the cause, then Tracker.Reset it to run it again"
	case ErrTaskSucceeded:
		return "Tracker.Reset it to run it again"
	case ErrTaskNotReady:
		return "add its status to Config.Startable if this tracker should start it"
	}
	return ""
}

// ConfigError reports a Config field that New cannot accept, and how to fix
// it. It matches ErrInvalidConfig with errors.Is.
type ConfigError struct {
	Field   string
	Problem string
	Fix     string
}

func configError(field, problem, fix string) *ConfigError {
	return &ConfigError{Field: field, Problem: problem, Fix: fix}
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%v: Config.%s %s: %s", ErrInvalidConfig, e.Field, e.Problem, e.Fix)
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }
