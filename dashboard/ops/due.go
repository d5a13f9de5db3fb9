package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// This file tells an operator when a task runs next, and makes a task
// that waits for a time due now.

// Span says how long d is, rounded up to the second, in its two largest
// units: "45s", "3m 20s", "2d 3h". It rounds up so that a wait that has
// not ended never reads "0s".
func Span(d time.Duration) string {
	secs := int64((d.Abs() + time.Second - 1) / time.Second)
	units := []struct {
		n    int64
		name string
	}{{secs / 86400, "d"}, {secs / 3600 % 24, "h"}, {secs / 60 % 60, "m"}, {secs % 60, "s"}}
	for i, u := range units {
		if u.n == 0 && i < len(units)-1 {
			continue
		}
		s := fmt.Sprintf("%d%s", u.n, u.name)
		if i+1 < len(units) && units[i+1].n > 0 {
			s += fmt.Sprintf(" %d%s", units[i+1].n, units[i+1].name)
		}
		return s
	}
	return "0s" // Not reached: the seconds are always shown.
}

// Waiting reports whether tasks in status c wait for a worker to start
// them: Pending, Failed, and the statuses outside the roles, from which
// the tracker starts a pipeline's next step. Their DueAt is when they may
// start; for the others it is when they finished or were claimed.
func (s *Statuses[S]) Waiting(c S) bool {
	if r, ok := s.roles[c]; ok {
		return r == Pending || r == Failed
	}
	_, known := s.names[c]
	return known
}

// WaitingStatuses returns the statuses whose tasks wait for a worker, by
// value.
func (s *Statuses[S]) WaitingStatuses() []S {
	var out []S
	for _, c := range s.All() {
		if s.Waiting(c) {
			out = append(out, c)
		}
	}
	return out
}

// NotDue reports whether a task waits for a time: it is in a waiting
// status and may not start before a time after now. Times are compared in
// whole milliseconds, as a claim compares them.
func (s *Statuses[S]) NotDue(t *ddbtrack.Task[S], now time.Time) bool {
	return s.Waiting(t.Status) && t.DueAt.UnixMilli() > now.UnixMilli()
}

// Due says when a waiting task may start: "retry in 3m 20s" for a failed
// task backing off, "scheduled for 2025-01-04 06:35:00Z (in 2d 3h)" for
// one scheduled or snoozed until later, and "due now" for one a worker may
// start at once. It is "" for a task that is not waiting, such as a
// running or finished one.
func (s *Statuses[S]) Due(t *ddbtrack.Task[S], now time.Time) string {
	switch {
	case !s.Waiting(t.Status):
		return ""
	case !s.NotDue(t, now):
		return "due now"
	case t.Status == s.Of(Failed):
		return "retry in " + Span(t.DueAt.Sub(now))
	}
	return fmt.Sprintf("scheduled for %s (in %s)", FormatTime(t.DueAt), Span(t.DueAt.Sub(now)))
}

// Cancel says what a cancel did to a task, with its time and reason, or
// "" for a task never cancelled: "cancelled at T: reason" once it is
// stopped, and "cancel requested at T (5m ago): reason" while the worker
// that runs it has yet to see the request. The reason is made safe to
// show with Visible.
func (s *Statuses[S]) Cancel(t *ddbtrack.Task[S], now time.Time) string {
	if t.CancelledAt.IsZero() {
		return ""
	}
	reason := Visible(t.CancelReason, false)
	if t.Status == s.Of(Running) {
		return fmt.Sprintf("cancel requested at %s (%s ago): %s", FormatTime(t.CancelledAt), Span(now.Sub(t.CancelledAt)), reason)
	}
	return fmt.Sprintf("cancelled at %s: %s", FormatTime(t.CancelledAt), reason)
}

// When is a list's short word on when a task runs next: [Statuses.Due]
// for a waiting task, "cancel requested 5m ago" for a running one whose
// worker has yet to stop, "cancelled at T" for a cancelled one (its reason
// is its last error), and "" otherwise.
func (s *Statuses[S]) When(t *ddbtrack.Task[S], now time.Time) string {
	switch {
	case s.Waiting(t.Status):
		return s.Due(t, now)
	case t.CancelledAt.IsZero():
		return ""
	case t.Status == s.Of(Running):
		return "cancel requested " + Span(now.Sub(t.CancelledAt)) + " ago"
	}
	return "cancelled at " + FormatTime(t.CancelledAt)
}

// ErrNotWaiting means a task named to be made due now is not waiting for
// a time: it runs, has finished, or is in a status outside Pending and
// Failed.
var ErrNotWaiting = errors.New("not scheduled or backing off")

// ErrAlreadyDue means a task named to be made due now is due already, so
// nothing was changed: a worker may start it as it is.
var ErrAlreadyDue = errors.New("due already")

// DueNow makes a task that waits for a time due now, so that the next
// worker that looks for work starts it: a pending task scheduled or
// snoozed until later, or a failed task waiting out its retry delay. It
// returns the task as it was before.
//
// The library has two ways to make a task due now, and both restart its
// attempt count, so DueNow does too: a failed task gets Config.MaxAttempts
// attempts again, as after a requeue, and its error history is kept.
//   - A failed task is moved with Requeue, bounded to the task's own due
//     time and ID, so that it moves only if it is still as it was read:
//     a task that a worker claimed or that changed meanwhile is left to
//     whoever changed it, with ErrChanged.
//   - A pending task is moved with Reset, which keeps it Pending and
//     only sets its due time to now (its attempt count is already zero).
//     Requeue takes no Pending tasks, and Reset's write is not
//     conditional on the task's status, so a scheduled task that someone
//     cancels in the moment between the read and the write is made due
//     again; a running one is refused, as Reset refuses it.
//
// A task that is not pending or failed is refused with a [*StatusError]
// matching ErrNotWaiting, and one that is due already with ErrAlreadyDue.
func (j *Job[S]) DueNow(ctx context.Context, id string, now time.Time) (*ddbtrack.Task[S], error) {
	t, err := j.tr.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	pending, failed := j.st.Of(Pending), j.st.Of(Failed)
	switch {
	case t.Status != pending && t.Status != failed:
		return t, &StatusError{Op: "due-now", TaskID: id, Status: j.st.Name(t.Status), Want: "scheduled or backing off (" + j.st.Name(pending) + " or " + j.st.Name(failed) + ")", Err: ErrNotWaiting}
	case !j.st.NotDue(t, now):
		return t, fmt.Errorf("task %q is %w (since %s): nothing changed", id, ErrAlreadyDue, FormatTime(t.DueAt))
	case t.Status == pending:
		return t, j.tr.Reset(ctx, id)
	}
	moved, _, err := j.requeueTasks(ctx, []*ddbtrack.Task[S]{t}, nil)
	if err != nil {
		return t, err
	}
	if !moved[id] {
		return t, fmt.Errorf("task %q %w", id, ErrChanged)
	}
	return t, nil
}

// Cancellable returns the statuses a cancel takes: the waiting ones and
// Running. Succeeded and Ignored tasks have finished, and the library
// refuses to cancel them.
func (s *Statuses[S]) Cancellable() []S {
	return slices.Sorted(slices.Values(append(s.WaitingStatuses(), s.Of(Running))))
}
