package ddbtrack

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Task is one task's record, as read from DynamoDB or as seen by the
// function that [Tracker.Start] runs.
type Task[S Status] struct {
	// Job and ID name the task; together they are its key.
	Job string
	ID  string
	// Status is the task's status. Status.String() is its name, which is
	// also stored beside the number so that the record reads well in the
	// DynamoDB console.
	Status S
	// StatusName is the name stored with the status, which is what
	// Status.String() returned for the tracker that wrote it. Tools that
	// do not know a job's enum, such as the ddbtrack command, show it.
	StatusName string
	// Attempts counts consecutive attempts that did not succeed. A claim
	// counts the attempt it starts, so inside Start's function Attempts is
	// the number of the current attempt (1 for the first). A success resets
	// it to zero, and so do Reset and Requeue.
	Attempts int
	// Fence is the fencing token: it grows by one with every claim. A
	// function can guard its own writes with [Task.FenceCondition], so that
	// a worker whose lease was lost cannot overwrite a newer worker's work.
	Fence int64
	// DueAt orders the task within its status, and the status index sorts
	// on it. For a task waiting to run it is the earliest time it may start:
	// its creation, the time it was scheduled for, or the end of its retry
	// backoff or snooze. For a Running task it is when the claim's lease
	// ran out (renewals extend LeaseExpiresAt, not DueAt). For a finished
	// task it is when it finished, which is when a pipeline's next step may
	// start it.
	DueAt time.Time
	// CreatedAt, UpdatedAt, StartedAt and SucceededAt are stored as epoch
	// milliseconds. UpdatedAt is the last status change, StartedAt the last
	// claim and SucceededAt the last success. They are zero when the event
	// has not happened.
	CreatedAt, UpdatedAt, StartedAt, SucceededAt time.Time
	// LeaseOwner and LeaseExpiresAt describe the lease of the worker
	// running the task. Both are empty when no worker holds it; a worker
	// holds it until LeaseExpiresAt.
	LeaseOwner     string
	LeaseExpiresAt time.Time
	// ExpiresAt is when DynamoDB's time to live may delete the task:
	// Config.Retention after it succeeded, in whole seconds. It is zero for
	// a task that is kept.
	ExpiresAt time.Time
	// CancelledAt and CancelReason record a [Tracker.Cancel]: when it was
	// asked for and why. A cancelled task ends Ignored. They are set while
	// a running task's worker has yet to see the request, and cleared by
	// Reset and Requeue.
	CancelledAt  time.Time
	CancelReason string
	// LastError is the message of the latest failure, kept as a top-level
	// string so that query filters such as contains(last_error, "timeout")
	// can reach it. A success clears it.
	LastError string
	// Errors is the history of failures, oldest first, bounded by
	// Config.ErrorHistory.
	Errors []ErrorRecord

	// data and output are the stored attributes; staged is what the
	// running attempt will store, and is nil on a task that was only read.
	data, output types.AttributeValue
	staged       *staged
}

// staged holds what the function of an attempt asks to store with its
// success: data, output, and writes to commit with it.
type staged struct {
	data, output       types.AttributeValue
	dataSet, outputSet bool
	writes             []types.TransactWriteItem
	table              string // the tracker's table, whose task item writes may not touch
	// writesErr is the first limit that AddWrites found broken. The commit
	// fails with it even if the function ignored it.
	writesErr error
}

// ErrorRecord is one failed attempt in a task's error history.
type ErrorRecord struct {
	// Attempt is the number of the attempt that failed, counting from 1.
	Attempt int `json:"attempt"`
	// Fence is the fencing token of the attempt that failed.
	Fence int64 `json:"fence,omitempty"`
	// At is when the failure was recorded.
	At time.Time `json:"at"`
	// Message is the error's text, truncated to 2 KiB.
	Message string `json:"message"`
	// Stack is the goroutine stack for a panic, truncated to 8 KiB, and
	// empty for an ordinary error.
	Stack string `json:"stack,omitempty"`
}

// UnmarshalData decodes the task's data into v, which must be a pointer, as
// [attributevalue.Unmarshal] does. It leaves v untouched when the task has
// no data.
func (t *Task[S]) UnmarshalData(v any) error {
	return unmarshalAttr("data", t.data, v)
}

// UnmarshalOutput decodes the output of the task's last success into v.
func (t *Task[S]) UnmarshalOutput(v any) error {
	return unmarshalAttr("output", t.output, v)
}

// errNotRunning is returned by the methods that stage changes when they are
// called on a task that was read rather than claimed.
var errNotRunning = errors.New("ddbtrack: only the task that Start or Process passes to its function can stage data, output or writes; " +
	"use Tracker.Create or Tracker.Reset to change a stored task")

// SetData replaces the task's data. The new data is stored only if the
// attempt succeeds; a failed attempt leaves the stored data as it was, so
// the next attempt starts from the same input.
//
// SetData marshals v at once with [attributevalue.Marshal], so a value that
// cannot be stored is reported here, while the function can still react.
// It works only inside the function that Start runs.
func (t *Task[S]) SetData(v any) error {
	if t.staged == nil {
		return errNotRunning
	}
	return stage("data", v, &t.staged.data, &t.staged.dataSet)
}

// SetOutput sets the output stored with the task's success. A success
// without SetOutput removes the output of any earlier success. It works
// only inside the function that Start runs.
func (t *Task[S]) SetOutput(v any) error {
	if t.staged == nil {
		return errNotRunning
	}
	return stage("output", v, &t.staged.output, &t.staged.outputSet)
}

// stage marshals v into *av for the attempt's success, and marks it set.
func stage(what string, v any, av *types.AttributeValue, set *bool) error {
	m, err := marshalAttr(what, v)
	if err != nil {
		return err
	}
	*av, *set = m, true
	return nil
}

// FenceCondition returns the condition that guards a write of the task's
// function to an item of its own, outside ddbtrack's table: the item's
// attribute attr must be missing or hold a fence no newer than this
// attempt's. Set attr to [Task].Fence in the same write. A worker whose
// lease was lost, and whose task a newer worker has taken over, then finds
// its late writes refused instead of overwriting the newer worker's:
//
//	update := expression.Set(expression.Name("balance"), expression.Value(b)).
//		Set(expression.Name("fence"), expression.Value(task.Fence))
//	expr, err := expression.NewBuilder().
//		WithUpdate(update).WithCondition(task.FenceCondition("fence")).Build()
//
// Writes that must commit together with the task's success are better
// added with [Task.AddWrites], which makes them atomic with it.
func (t *Task[S]) FenceCondition(attr string) expression.ConditionBuilder {
	return expression.Or(
		expression.AttributeNotExists(expression.Name(attr)),
		expression.Name(attr).LessThanEqual(expression.Value(t.Fence)),
	)
}

func unmarshalAttr(what string, av types.AttributeValue, v any) error {
	if av == nil {
		return nil
	}
	if err := attributevalue.Unmarshal(av, v); err != nil {
		return fmt.Errorf("ddbtrack: cannot decode task %s into %T: %w", what, v, err)
	}
	return nil
}

// MarshalJSON writes the task as a readable record: status with its name,
// times in RFC 3339, data and output as plain JSON.
func (t *Task[S]) MarshalJSON() ([]byte, error) {
	type record struct {
		Job            string        `json:"job"`
		ID             string        `json:"id"`
		Status         int           `json:"status"`
		StatusName     string        `json:"status_name"`
		Attempts       int           `json:"attempts"`
		Fence          int64         `json:"fence"`
		DueAt          *time.Time    `json:"due_at,omitempty"`
		Data           any           `json:"data,omitempty"`
		Output         any           `json:"output,omitempty"`
		LastError      string        `json:"last_error,omitempty"`
		Errors         []ErrorRecord `json:"errors,omitempty"`
		CreatedAt      *time.Time    `json:"created_at,omitempty"`
		UpdatedAt      *time.Time    `json:"updated_at,omitempty"`
		StartedAt      *time.Time    `json:"started_at,omitempty"`
		SucceededAt    *time.Time    `json:"succeeded_at,omitempty"`
		LeaseOwner     string        `json:"lease_owner,omitempty"`
		LeaseExpiresAt *time.Time    `json:"lease_expires_at,omitempty"`
		ExpiresAt      *time.Time    `json:"expires_at,omitempty"`
		CancelledAt    *time.Time    `json:"cancelled_at,omitempty"`
		CancelReason   string        `json:"cancel_reason,omitempty"`
	}
	return json.Marshal(record{
		Job: t.Job, ID: t.ID, Status: int(t.Status), StatusName: statusName[S](int(t.Status)),
		Attempts: t.Attempts, Fence: t.Fence, DueAt: timePtr(t.DueAt),
		Data: plain(t.data), Output: plain(t.output),
		LastError: t.LastError, Errors: t.Errors,
		CreatedAt: timePtr(t.CreatedAt), UpdatedAt: timePtr(t.UpdatedAt),
		StartedAt: timePtr(t.StartedAt), SucceededAt: timePtr(t.SucceededAt),
		LeaseOwner: t.LeaseOwner, LeaseExpiresAt: timePtr(t.LeaseExpiresAt),
		ExpiresAt: timePtr(t.ExpiresAt), CancelledAt: timePtr(t.CancelledAt), CancelReason: t.CancelReason,
	})
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// plain converts an attribute value to a value encoding/json writes
// naturally. Numbers stay json.Number so that large integers keep every
// digit, which a float64 would not.
func plain(av types.AttributeValue) any {
	switch v := av.(type) {
	case nil:
		return nil
	case *types.AttributeValueMemberS:
		return v.Value
	case *types.AttributeValueMemberN:
		return json.Number(v.Value)
	case *types.AttributeValueMemberBOOL:
		return v.Value
	case *types.AttributeValueMemberNULL:
		return nil
	case *types.AttributeValueMemberB:
		return v.Value
	case *types.AttributeValueMemberM:
		m := make(map[string]any, len(v.Value))
		for k, e := range v.Value {
			m[k] = plain(e)
		}
		return m
	case *types.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			l[i] = plain(e)
		}
		return l
	case *types.AttributeValueMemberSS:
		return v.Value
	case *types.AttributeValueMemberNS:
		l := make([]json.Number, len(v.Value))
		for i, n := range v.Value {
			l[i] = json.Number(n)
		}
		return l
	case *types.AttributeValueMemberBS:
		return v.Value
	}
	return fmt.Sprintf("%T", av)
}
