package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// Delete removes a task, whatever its state. A worker still running it
// will find its lease lost when it tries to record its outcome. A missing
// task gives a [*TaskError] matching ErrTaskNotFound; a delete whose answer
// was lost, and whose retry found the task gone, is reported as done.
func (t *Tracker[S]) Delete(ctx context.Context, taskID string) error {
	if err := t.checkID("taskID", taskID); err != nil {
		return err
	}
	if err := t.removing(ctx); err != nil {
		return err
	}
	if _, err := t.send(ctx, t.deleteWrite(taskID)); err != nil {
		return err
	}
	t.log.LogAttrs(ctx, infoLevel, "task deleted", slog.String(logTask, taskID))
	return nil
}

// DeleteByStatus deletes every task in the given statuses and returns how
// many it deleted. It finds them through the status index, never by a
// scan, and deletes each with one conditional write that succeeds only if
// the task is still in the status it was read in and no worker holds an
// unexpired lease on it.
//
// Tasks that a worker holds are left in place and counted: if there are
// any, the error matches ErrTaskLocked and says how many, next to the
// number deleted. Tasks whose status changed meanwhile are left in place
// without an error, since they no longer match. Deleting a status's tasks
// costs a read of each (through the index) and a write of each.
func (t *Tracker[S]) DeleteByStatus(ctx context.Context, statuses ...S) (int, error) {
	if len(statuses) == 0 {
		return 0, optionError("statuses", "is empty", fmt.Sprintf("pass the statuses to delete, such as Config.Succeeded (%s)", t.cfg.Succeeded))
	}
	p, err := t.newPlan(QueryOptions[S]{Statuses: statuses}, "DeleteByStatus", t.cfg.Now())
	if err != nil {
		return 0, err
	}
	var deleted, locked atomic.Int64
	err = p.inBatches(ctx, func(ctx context.Context, batch []*Task[S]) error {
		if err := t.removing(ctx); err != nil {
			return err
		}
		return fanOut(ctx, len(batch), fanOutLimit, func(ctx context.Context, i int) error {
			_, err := t.send(ctx, t.deleteIdleWrite(batch[i], t.cfg.Now()))
			var te *TaskError
			refused := errors.As(err, &te)
			switch {
			case err == nil:
				deleted.Add(1)
			case refused && te.Err == ErrTaskNotFound:
				deleted.Add(1) // Deleted already, as asked, by us or by someone else.
			case refused && te.LeaseOwner != "" && te.LeaseExpiresAt.After(t.cfg.Now()):
				locked.Add(1)
			case !refused:
				return err
			}
			return nil
		})
	})
	if err == nil && deleted.Load() > 0 {
		err = t.removing(ctx)
	}
	t.log.LogAttrs(ctx, infoLevel, "tasks deleted by status", slog.String("statuses", fmt.Sprint(statuses)),
		slog.Int("deleted", int(deleted.Load())), slog.Int("locked", int(locked.Load())), errAttr(err))
	if err == nil && locked.Load() > 0 {
		err = fmt.Errorf("%w: delete by status left %d tasks of job %q in place because workers hold them under unexpired leases; "+
			"run it again once their work is done or their leases have expired", ErrTaskLocked, locked.Load(), t.cfg.Job)
	}
	return int(deleted.Load()), err
}
