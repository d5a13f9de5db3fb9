package ddbtrack

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
)

// Reset makes a task Pending and due now, with its attempt count at zero,
// so that it runs again; its history, data and last output are kept, and a
// cancel is forgotten. It refuses a task that a worker holds under an
// unexpired lease, with a [*TaskError] matching ErrTaskLocked, and a missing
// task with one matching ErrTaskNotFound. It is a Requeue of one task.
func (t *Tracker[S]) Reset(ctx context.Context, taskID string) error {
	if err := t.checkID("taskID", taskID); err != nil {
		return err
	}
	if err := t.removing(ctx); err != nil {
		return err
	}
	if _, err := t.send(ctx, t.resetWrite(taskID, t.cfg.Now())); err != nil {
		return err
	}
	t.log.LogAttrs(ctx, infoLevel, "task reset", slog.String(logTask, taskID), slog.String(logStatus, statusName[S](int(t.cfg.Pending))))
	return nil
}

// RequeueOptions selects the tasks that [Tracker.Requeue] moves back to
// Pending.
type RequeueOptions[S Status] struct {
	// Statuses lists the statuses to take tasks from. It may not contain
	// Pending, where the tasks go. It may contain Running: then only tasks
	// whose lease has expired are moved, the ones a dead worker left.
	// Defaults to Failed and Ignored.
	Statuses []S

	// Since and Until bound the tasks' DueAt, as in QueryOptions: Since
	// inclusive, Until exclusive. Defaults to unbounded at either end.
	// Whatever the bounds, a task whose status changed after the
	// millisecond Requeue started in is left alone, so that a task that
	// fails again while Requeue runs is not moved a second time by the
	// same run; one that changes between its read and its move is left
	// alone too, by the write's condition.
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

// bulkBatch is how many tasks Requeue and DeleteByStatus read before
// writing them, up to 16 writes at once.
const bulkBatch = 100

// Requeue moves the tasks that match opts back to Pending, due now, with
// their attempt count at zero, no lease and no cancel, so that workers run
// them again. Their error history, data and last output are kept;
// last_error is cleared, as Reset does.
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
		return RequeueResult{}, optionError("RequeueOptions.Statuses", fmt.Sprintf("contains Pending (%s), where Requeue moves tasks to", t.cfg.Pending),
			"leave it out; use Tracker.Reset to restart the attempt count of one pending task")
	}
	start := t.cfg.Now()
	// A task that changed after Requeue started (one it moved, claimed and
	// failed again) is not moved twice by the same run. The millisecond it
	// started in counts as before it: stored times are milliseconds.
	filter := expression.Name(attrUpdatedAt).LessThanEqual(expression.Value(start.UnixMilli()))
	if opts.Filter.IsSet() {
		filter = opts.Filter.And(filter)
	}
	p, err := t.newPlanOf(QueryOptions[S]{Statuses: statuses, Since: opts.Since, Until: opts.Until, Filter: filter}, "RequeueOptions", start, true)
	if err != nil {
		return RequeueResult{}, err
	}
	var res RequeueResult
	err = p.inBatches(ctx, func(ctx context.Context, batch []*Task[S]) error {
		res.Matched += len(batch)
		var moved, skipped atomic.Int64
		var err error
		if !opts.DryRun {
			if err := t.removing(ctx); err != nil {
				return err
			}
			err = fanOut(ctx, len(batch), fanOutLimit, func(ctx context.Context, i int) error {
				_, err := t.send(ctx, t.requeueTaskWrite(batch[i], t.cfg.Now()))
				switch {
				case err == nil:
					moved.Add(1)
				case isRefusal(err):
					skipped.Add(1)
				default:
					return err
				}
				return nil
			})
		}
		res.Moved += int(moved.Load())
		res.Skipped += int(skipped.Load())
		if opts.Progress != nil {
			opts.Progress(res)
		}
		return err
	})
	if err == nil && res.Moved > 0 {
		err = t.removing(ctx)
	}
	t.log.LogAttrs(ctx, infoLevel, "tasks requeued", slog.Int("matched", res.Matched), slog.Int("moved", res.Moved),
		slog.Int("skipped", res.Skipped), slog.Bool("dry_run", opts.DryRun), errAttr(err))
	return res, err
}
