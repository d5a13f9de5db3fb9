package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Cancel stops a task for good, recording reason. A task that no worker
// holds becomes Ignored at once, with CancelledAt and CancelReason set and
// last_error "cancelled: " + reason. A running task gets a cancel request:
// its worker sees it at its next lease renewal, within Lease/3 while the
// worker is alive, cancels the function's context with a cause matching
// ErrCancelled, and records the task as cancelled, Ignored, when the
// function returns; Cancel returns once the request is stored. If the
// worker died, the worker that takes the task over records the
// cancellation without running it.
//
// A cancel that reaches DynamoDB before a running attempt's outcome wins:
// the attempt's success or failure is refused and the cancellation is
// recorded instead, and its writes added with [Task.AddWrites] are not
// applied. An outcome that reaches DynamoDB first wins, and Cancel then
// refuses the finished task. Cancelling a task that succeeded, or that is
// already Ignored, is refused with a [*TaskError] matching
// ErrTaskSucceeded or ErrTaskIgnored; a missing one with ErrTaskNotFound.
//
// Cancelled tasks end Ignored rather than in a status of their own, so
// that every job keeps the five roles it declares: Ignored means "will not
// run again unless someone requeues it", which is what a cancel asks for,
// and CancelledAt tells a cancelled task from one that ran out of
// attempts. Reset and Requeue undo a cancel.
func (t *Tracker[S]) Cancel(ctx context.Context, taskID, reason string) error {
	if err := t.checkID("taskID", taskID); err != nil {
		return err
	}
	if reason == "" {
		return optionError("reason", "is empty", `say why the task is cancelled, for its record, such as "superseded by a newer import"`)
	}
	reason = truncate(reason, maxMessageBytes)
	var err error
	for range maxClaimTries {
		now := t.cfg.Now()
		if _, err = t.send(ctx, t.cancelWrite(taskID, reason, now)); err == nil {
			t.log.LogAttrs(ctx, infoLevel, "task cancelled", slog.String(logTask, taskID), slog.String(logReason, reason))
			return nil
		}
		if !errors.Is(err, ErrTaskLocked) {
			return err
		}
		// A worker holds the task: ask it to stop.
		if _, err = t.send(ctx, t.cancelRequestWrite(taskID, reason, now)); err == nil {
			t.log.LogAttrs(ctx, infoLevel, "task cancel requested", slog.String(logTask, taskID), slog.String(logReason, reason))
			return nil
		}
		if !isRefusal(err) {
			return err
		}
		// The lease expired or the attempt ended in between: look again.
	}
	return fmt.Errorf("ddbtrack: cancel task %q: it kept changing between tries: %w", taskID, err)
}

// isRefusal reports whether err is a task refusing a write.
func isRefusal(err error) bool {
	var te *TaskError
	return errors.As(err, &te)
}
