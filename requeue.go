package ddbtrack

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack/internal/ddbexpr"
)

// RequeueOptions selects the tasks that [Tracker.Requeue] moves back to
// Pending.
type RequeueOptions[S Status] struct {
	// Statuses lists the statuses to take tasks from. It may not contain
	// Pending, where the tasks go. It may contain Running: then only tasks
	// whose lease has expired are moved, the ones a dead worker left.
	// Defaults to Failed and Ignored.
	Statuses []S

	// Since and Until bound the tasks' last update time, as in
	// QueryOptions: Since inclusive, Until exclusive. Until defaults to the
	// moment Requeue starts, so that a task that fails again while Requeue
	// runs is not moved a second time by the same run. Since defaults to
	// unbounded.
	Since, Until time.Time

	// Filter keeps only the tasks that match it, as in QueryOptions, e.g.
	// expression.Name("last_error").Contains("timeout"). Defaults to none.
	Filter expression.ConditionBuilder

	// DryRun counts the tasks that match without moving any. Defaults to
	// false.
	DryRun bool

	// Progress, if set, is called with the totals so far after each batch
	// of up to 100 tasks, on the goroutine that called Requeue, so that a
	// command-line tool can show progress. Defaults to none.
	Progress func(RequeueResult)
}

// RequeueResult says what [Tracker.Requeue] did.
type RequeueResult struct {
	// Matched counts the tasks the query found.
	Matched int `json:"matched"`
	// Moved counts the tasks moved to Pending. It is zero in a dry run.
	Moved int `json:"moved"`
	// Skipped counts the matched tasks left as they were because they
	// changed between the read and the write: a worker claimed them, or
	// they were reset, requeued or deleted meanwhile.
	Skipped int `json:"skipped"`
}

// requeueBatch is how many tasks Requeue and DeleteByStatus read before
// writing them, up to 16 writes at once.
const requeueBatch = DefaultPageSize

// Requeue moves the tasks that match opts back to Pending with their
// attempt count at zero and no lease, so that workers run them again.
// Their error history, data and last output are kept; last_error is
// cleared, as Reset does.
//
// Tasks are found through the status index, never by a scan, and each is
// moved by one conditional write that succeeds only if the task still has
// the status, update time and fencing token it was read with and no worker
// holds an unexpired lease on it. A task that changed in between, for
// example because a worker claimed it, is counted as Skipped and left to
// whoever changed it. Requeue is therefore safe to run while workers run,
// and safe to run again after an interruption: the tasks it already moved
// are Pending and no longer match.
//
// On error, the result counts what was done before it.
func (t *Tracker[S]) Requeue(ctx context.Context, opts RequeueOptions[S]) (RequeueResult, error) {
	statuses := opts.Statuses
	if len(statuses) == 0 {
		statuses = []S{t.cfg.Failed, t.cfg.Ignored}
	}
	if slices.Contains(statuses, t.cfg.Pending) {
		return RequeueResult{}, queryError("RequeueOptions.Statuses", fmt.Sprintf("contains Pending (%s), where Requeue moves tasks to", t.cfg.Pending),
			"leave it out; use Tracker.Reset to restart the attempt count of one pending task")
	}
	start := t.cfg.Now()
	until := opts.Until
	if until.IsZero() {
		until = time.UnixMilli(start.UnixMilli() + 1)
	}
	parts, err := t.partitions(statuses, start)
	if err != nil {
		return RequeueResult{}, err
	}
	p, err := t.newPlan(QueryOptions[S]{Since: opts.Since, Until: until, Filter: opts.Filter}, parts, "RequeueOptions")
	if err != nil {
		return RequeueResult{}, err
	}

	var res RequeueResult
	err = t.inBatches(ctx, p, func(ctx context.Context, batch []*Task[S]) error {
		res.Matched += len(batch)
		var moved, skipped atomic.Int64
		var err error
		if !opts.DryRun {
			err = fanOut(ctx, len(batch), func(ctx context.Context, i int) error {
				ok, err := t.requeueOne(ctx, batch[i])
				switch {
				case err != nil:
				case ok:
					moved.Add(1)
				default:
					skipped.Add(1)
				}
				return err
			})
		}
		res.Moved += int(moved.Load())
		res.Skipped += int(skipped.Load())
		if opts.Progress != nil {
			opts.Progress(res)
		}
		return err
	})
	t.log.Info("tasks requeued", "matched", res.Matched, "moved", res.Moved, "skipped", res.Skipped, "dry_run", opts.DryRun, "error", err)
	return res, err
}

// inBatches runs the plan and hands its tasks to fn in batches.
func (t *Tracker[S]) inBatches(ctx context.Context, p *plan[S], fn func(context.Context, []*Task[S]) error) error {
	batch := make([]*Task[S], 0, requeueBatch)
	for task, err := range p.seq(ctx, nil) {
		if err != nil {
			return err
		}
		batch = append(batch, task)
		if len(batch) == requeueBatch {
			if err := fn(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		return fn(ctx, batch)
	}
	return nil
}

// requeueOne moves one task to Pending if it is still as it was read. It
// reports whether it moved the task.
func (t *Tracker[S]) requeueOne(ctx context.Context, task *Task[S]) (bool, error) {
	now := t.cfg.Now()
	var e ddbexpr.Expr
	t.setStatusExpr(&e, task.ID, t.cfg.Pending, now).
		Set("attempts", numAV(0)).
		Remove("lease_owner", "lease_token", "lease_expires_at", "last_error").
		// The fence guards against a claim and its outcome that both fell
		// within the millisecond of the read, which the update time alone
		// would miss; the lease check, against moving a task from under a
		// worker even when it is asked for by status.
		Where("#status = :was_status AND #updated_at = :was_updated AND #fence = :was_fence AND NOT (#lease_expires_at > :now)").
		Value("was_status", numAV(int64(task.Status))).
		Value("was_updated", numAV(task.UpdatedAt.UnixMilli())).
		Value("was_fence", numAV(task.Fence))
	_, err := t.update(ctx, task.ID, &e, types.ReturnValueNone)
	item, refused, rerr := t.refused(ctx, task.ID, err)
	switch {
	case rerr != nil:
		return false, rerr
	case refused:
		// The move may have been applied, its response lost, and the
		// SDK's retry refused by the move itself: the task is then Pending
		// at this write's time, with the fence it was read with.
		landed := item != nil && S(num(item, "status")) == t.cfg.Pending &&
			num(item, "fence") == task.Fence && num(item, "updated_at") == now.UnixMilli()
		return landed, nil
	case err != nil:
		return false, t.writeError("requeue", task.ID, err)
	}
	return true, nil
}

// LockedTasksError reports tasks that a bulk operation left in place
// because workers held them under unexpired leases. It matches
// ErrTaskLocked with errors.Is.
type LockedTasksError struct {
	// Op is the operation, such as "delete by status".
	Op string
	// Job is the tracker's job.
	Job string
	// Count is the number of tasks left in place.
	Count int
}

func (e *LockedTasksError) Error() string {
	return fmt.Sprintf("%v: %s left %d tasks of job %q in place because workers hold them under unexpired leases; run it again once their work is done or their leases have expired",
		ErrTaskLocked, e.Op, e.Count, e.Job)
}

// Unwrap returns ErrTaskLocked.
func (e *LockedTasksError) Unwrap() error { return ErrTaskLocked }

// DeleteByStatus deletes every task in the given statuses and returns how
// many it deleted. It finds them through the status index, never by a
// scan, and deletes each with one conditional write that succeeds only if
// the task is still in the status it was read in and no worker holds an
// unexpired lease on it.
//
// Tasks that a worker holds are left in place and counted: if there are
// any, the error is a [*LockedTasksError] matching ErrTaskLocked, next to
// the number deleted. Tasks whose status changed meanwhile are left in
// place without an error, since they no longer match. Deleting a status's
// tasks costs a read of each (through the index) and a write of each.
func (t *Tracker[S]) DeleteByStatus(ctx context.Context, statuses ...S) (int, error) {
	if len(statuses) == 0 {
		return 0, fmt.Errorf("%w: DeleteByStatus was given no status: pass the statuses to delete, such as Config.Succeeded (%s)", ErrInvalidQuery, t.cfg.Succeeded)
	}
	parts, err := t.partitions(statuses, time.Time{})
	if err != nil {
		return 0, err
	}
	p, err := t.newPlan(QueryOptions[S]{}, parts, "QueryOptions")
	if err != nil {
		return 0, err
	}
	var deleted, locked atomic.Int64
	err = t.inBatches(ctx, p, func(ctx context.Context, batch []*Task[S]) error {
		return fanOut(ctx, len(batch), func(ctx context.Context, i int) error {
			gone, held, err := t.deleteIfIdle(ctx, batch[i])
			if gone {
				deleted.Add(1)
			}
			if held {
				locked.Add(1)
			}
			return err
		})
	})
	t.log.Info("tasks deleted by status", "statuses", fmt.Sprint(statuses), "deleted", deleted.Load(), "locked", locked.Load(), "error", err)
	if err == nil && locked.Load() > 0 {
		err = &LockedTasksError{Op: "delete by status", Job: t.cfg.Job, Count: int(locked.Load())}
	}
	return int(deleted.Load()), err
}

// deleteIfIdle deletes a task if it is still in the status it was read in
// and no worker holds it. It reports whether the task is gone, and whether
// it was left in place because a worker holds it.
func (t *Tracker[S]) deleteIfIdle(ctx context.Context, task *Task[S]) (gone, held bool, err error) {
	now := t.cfg.Now()
	var e ddbexpr.Expr
	e.Where("#status = :status AND NOT (#lease_expires_at > :now)").
		Value("status", numAV(int64(task.Status))).
		Value("now", numAV(now.UnixMilli()))
	b, err := e.Build()
	if err != nil {
		return false, false, err
	}
	_, err = t.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                           aws.String(t.cfg.Table),
		Key:                                 t.key(task.ID),
		ConditionExpression:                 b.Condition,
		ExpressionAttributeNames:            b.Names,
		ExpressionAttributeValues:           b.Values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	item, refused, rerr := t.refused(ctx, task.ID, err)
	switch {
	case rerr != nil:
		return false, false, rerr
	case refused:
		if item == nil {
			// Deleted already: by this delete, whose response was lost and
			// whose retry was refused, or by someone else. Either way the
			// caller asked for it to be gone, and it is.
			return true, false, nil
		}
		return false, millis(item, "lease_expires_at").After(now), nil
	case err != nil:
		return false, false, t.writeError("delete", task.ID, err)
	}
	return true, false, nil
}
