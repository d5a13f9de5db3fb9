package ddbtrack

import (
	"log/slog"
	"time"
)

// EventKind says which step of an attempt an [Event] reports.
type EventKind int

const (
	// EventClaimed: a worker claimed the task and is about to run its
	// function.
	EventClaimed EventKind = iota + 1
	// EventSucceeded: the success was recorded.
	EventSucceeded
	// EventFailed: a failure was recorded, and the task will be retried
	// once it is due again.
	EventFailed
	// EventIgnored: a failure was recorded that made the task Ignored,
	// after Config.MaxAttempts in a row.
	EventIgnored
	// EventReleased: the task was put back without counting the attempt,
	// because its function returned ErrRelease or a [Snooze], or was
	// cancelled with StartOptions.ReleaseOnCancel.
	EventReleased
	// EventCancelled: the cancellation asked for with [Tracker.Cancel] was
	// recorded; the task is Ignored.
	EventCancelled
	// EventLeaseLost: the attempt's lease was lost, to another worker or
	// to a reset or delete, so nothing was recorded.
	EventLeaseLost
	// EventRefused: a claim was refused, because the task is locked, not
	// due, finished or missing; Err says which. The function did not run.
	EventRefused
	// EventError: an error from DynamoDB that is no task's outcome: a
	// query or claim of Process that failed and that it backs off from,
	// or an outcome that could not be written within FinishTimeout (Task
	// is then set, and the task stays Running until its lease expires).
	EventError
)

var eventNames = [...]string{"", "claimed", "succeeded", "failed", "ignored", "released", "cancelled", "lease_lost", "refused", "error"}

// String returns the kind's name in snake case, as logs and metrics use it.
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one step of an attempt, reported to [Config].OnEvent.
type Event[S Status] struct {
	Kind EventKind
	// Job is the tracker's job.
	Job string
	// TaskID names the task. It is empty only for an EventError of a
	// query.
	TaskID string
	// Task is the task as the step left it: as claimed for EventClaimed,
	// as recorded for an outcome. It is nil for EventRefused and for an
	// EventError without a claim. Hooks must not modify it.
	Task *Task[S]
	// Err is the function's error for a failure, why the attempt ended
	// otherwise (such as ErrLeaseLost), the refusal for EventRefused, and
	// the error for EventError.
	Err error
	// Waited is how long the task waited to be claimed: from when it was
	// due to the claim.
	Waited time.Duration
	// Ran is how long the function ran. It is zero for EventClaimed.
	Ran time.Duration
}

// The keys of ddbtrack's log records. Every record of a tracker carries
// job; a task's records carry task; an attempt's carry attempt and fence.
const (
	logJob            = "job"              // the job
	logTask           = "task"             // the task ID
	logAttempt        = "attempt"          // the attempt's number within its run of failures, from 1
	logFence          = "fence"            // the attempt's fencing token
	logStatus         = "status"           // the status name the task moved to
	logOp             = "op"               // the write that failed, such as "record success of"
	logOwner          = "owner"            // a lease owner other than this worker
	logLeaseExpiresAt = "lease_expires_at" // a lease's expiry
	logDueAt          = "due_at"           // when a task is due
	logError          = "error"            // an error value
	logReason         = "reason"           // why a task was cancelled
	logTable          = "table"            // the table, for records about the table itself
	logAttribute      = "attribute"        // the time-to-live attribute
	logRetention      = "retention"        // Config.Retention
)

// warnLevel is slog.LevelWarn, named for LogAttrs calls.
const warnLevel = slog.LevelWarn

func errAttr(err error) slog.Attr { return slog.Any(logError, err) }

// debugLevel is slog.LevelDebug, named for LogAttrs calls.
const debugLevel = slog.LevelDebug

// infoLevel is slog.LevelInfo, named for LogAttrs calls.
const infoLevel = slog.LevelInfo
