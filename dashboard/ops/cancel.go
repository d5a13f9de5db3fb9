package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// CancelResult says what [Job.Cancel] did.
type CancelResult[S ddbtrack.Status] struct {
	// Matched counts the tasks the filter selected.
	Matched int `json:"matched"`
	// Cancelled counts the tasks cancelled: stopped at once, or, for a
	// task a worker runs, asked to stop. It is zero in a dry run.
	Cancelled int `json:"cancelled"`
	// Running counts the matched tasks that a worker held under a live
	// lease when they were read. A cancel cannot take such a task from its
	// worker: it stores a request, which the worker sees at its next lease
	// renewal, within a third of the job's lease, and then stops the task
	// and records it as cancelled.
	Running int `json:"running"`
	// Skipped counts the matched tasks that a filter's cancel left, because
	// they finished or were deleted between the read and the write.
	Skipped int `json:"skipped"`
	// Refused lists the named tasks (Filter.IDs) that are not cancelled,
	// each with the reason: not found, finished, or not matching the
	// filter.
	Refused []Refusal `json:"refused"`
	// Tasks holds the named tasks that match, as they were read, for a
	// confirmation to show. It is empty for a cancel by filter.
	Tasks []*ddbtrack.Task[S] `json:"-"`
}

// cancelConcurrency bounds the cancels in flight: each is one or two
// conditional writes.
const cancelConcurrency = 16

// Cancel stops the tasks the filter selects for good, recording reason
// with each, or only counts them when dryRun is set. It takes tasks that
// wait to run (pending, failed, scheduled) and running ones; finished
// tasks are refused, as the library refuses them. A cancelled task ends
// Ignored, with CancelledAt and CancelReason set; a running task's worker
// is asked to stop at its next lease renewal (see [ddbtrack.Tracker.Cancel]).
//
// Named tasks (Filter.IDs) are read first, so that each task that is not
// cancelled is named with its reason, such as a task that succeeded. A
// filter without names reads the status index and cancels what it finds,
// 16 tasks at a time; a task that finished in between is skipped. Each
// cancel is one conditional write of the library's, so a task that
// changed is never overwritten with a stale state.
func (j *Job[S]) Cancel(ctx context.Context, f Filter[S], reason string, now time.Time, dryRun bool) (CancelResult[S], error) {
	reason = strings.TrimSpace(reason)
	if reason == "" && !dryRun {
		return CancelResult[S]{}, &ddbtrack.OptionError{Field: "reason", Problem: "is empty",
			Fix: `say why the tasks are cancelled, such as "superseded by a newer import": it is stored with each task`}
	}
	cancellable := j.st.Cancellable()
	if len(f.Statuses) == 0 && !f.Stuck {
		f.Statuses = cancellable
		if f.Scheduled {
			f.Statuses = nil // The waiting statuses, which Filter.statuses chooses.
		}
	}
	for _, c := range f.statuses(j.st) {
		if !slices.Contains(cancellable, c) {
			return CancelResult[S]{}, &ddbtrack.OptionError{Field: "statuses", Problem: fmt.Sprintf("include %s, whose tasks have finished", j.st.Name(c)),
				Fix: "cancel takes tasks that wait to run or run: " + Filter[S]{Statuses: cancellable}.Describe(j.st)}
		}
	}
	if len(f.IDs) > 0 {
		return j.cancelNamed(ctx, f, reason, now, dryRun)
	}
	var (
		res   CancelResult[S]
		batch []*ddbtrack.Task[S]
	)
	flush := func() error {
		if dryRun || len(batch) == 0 {
			batch = batch[:0]
			return nil
		}
		errs, err := j.cancelTasks(ctx, batch, reason)
		for _, e := range errs {
			if e == nil {
				res.Cancelled++
			} else {
				res.Skipped++
			}
		}
		batch = batch[:0]
		return err
	}
	for t, err := range j.All(ctx, f, now, oldestFirst) {
		if err != nil {
			return res, err
		}
		res.Matched++
		if held(t, now) {
			res.Running++
		}
		if batch = append(batch, t); len(batch) == idBatch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	return res, flush()
}

// cancelNamed cancels the named tasks that the filter selects, and names
// the others with the reason.
func (j *Job[S]) cancelNamed(ctx context.Context, f Filter[S], reason string, now time.Time, dryRun bool) (CancelResult[S], error) {
	var res CancelResult[S]
	ids := slices.Compact(slices.Sorted(slices.Values(f.IDs)))
	found, errs := j.getAll(ctx, ids)
	statuses := f.statuses(j.st)
	for i, t := range found {
		switch err := errs[i]; {
		case err != nil && (IsNotFound(err) || errors.Is(err, ddbtrack.ErrInvalidOption)):
			res.Refused = append(res.Refused, refusal(ids[i], err))
			continue
		case err != nil:
			return res, err
		}
		switch {
		case t.Status == j.st.Of(Ignored) && !t.CancelledAt.IsZero():
			res.Refused = append(res.Refused, refusal(t.ID, fmt.Errorf("task %q was %w at %s (%s): nothing changed",
				t.ID, ErrAlreadyCancelled, FormatTime(t.CancelledAt), Visible(t.CancelReason, false))))
		case t.Status == j.st.Of(Succeeded) || t.Status == j.st.Of(Ignored):
			res.Refused = append(res.Refused, refusal(t.ID, j.finished("cancel", t)))
		case !slices.Contains(statuses, t.Status):
			want := Filter[S]{Statuses: statuses, Stuck: f.Stuck}.Describe(j.st)
			res.Refused = append(res.Refused, refusal(t.ID, &StatusError{Op: "cancel", TaskID: t.ID, Status: j.st.Name(t.Status), Want: want, Err: ErrNotCancellable}))
		case !f.matches(j.st, t, now):
			res.Refused = append(res.Refused, refusal(t.ID, fmt.Errorf("task %q does not match the filter (%s)", t.ID, f.Describe(j.st))))
		default:
			res.Tasks = append(res.Tasks, t)
			if held(t, now) {
				res.Running++
			}
		}
	}
	res.Matched = len(res.Tasks)
	if dryRun {
		return res, nil
	}
	cerrs, err := j.cancelTasks(ctx, res.Tasks, reason)
	for i, e := range cerrs {
		if e == nil {
			res.Cancelled++
		} else {
			res.Refused = append(res.Refused, refusal(res.Tasks[i].ID, e))
		}
	}
	return res, err
}

// getAll reads the tasks with the given IDs, 16 at a time, and returns
// each with its error.
func (j *Job[S]) getAll(ctx context.Context, ids []string) ([]*ddbtrack.Task[S], []error) {
	found := make([]*ddbtrack.Task[S], len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, idConcurrency)
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			found[i], errs[i] = j.tr.Get(ctx, id)
		})
	}
	wg.Wait()
	return found, errs
}

// cancelTasks cancels tasks already read, 16 at a time. It returns each
// task's refusal, nil for those cancelled, and the first error that is not
// a refusal, such as DynamoDB's.
func (j *Job[S]) cancelTasks(ctx context.Context, tasks []*ddbtrack.Task[S], reason string) ([]error, error) {
	refused := make([]error, len(tasks))
	var (
		wg    sync.WaitGroup
		first atomic.Pointer[error]
	)
	sem := make(chan struct{}, cancelConcurrency)
	for i, t := range tasks {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			err := j.tr.Cancel(ctx, t.ID, reason)
			var te *ddbtrack.TaskError
			switch {
			case err == nil:
			case errors.As(err, &te):
				refused[i] = err
			default:
				refused[i] = err
				first.CompareAndSwap(nil, &err)
			}
		})
	}
	wg.Wait()
	if p := first.Load(); p != nil {
		return refused, *p
	}
	return refused, nil
}

// held reports whether a worker held the task under a live lease at now.
func held[S ddbtrack.Status](t *ddbtrack.Task[S], now time.Time) bool {
	return t.LeaseOwner != "" && now.Before(t.LeaseExpiresAt)
}

// finished describes a finished task that an operation refuses, in the
// library's own error type, as the library's refusal of it reads.
func (j *Job[S]) finished(op string, t *ddbtrack.Task[S]) error {
	sentinel := ddbtrack.ErrTaskIgnored
	if t.Status == j.st.Of(Succeeded) {
		sentinel = ddbtrack.ErrTaskSucceeded
	}
	return &ddbtrack.TaskError{
		Op: op, Job: t.Job, TaskID: t.ID, Err: sentinel,
		Status: int(t.Status), StatusName: t.StatusName, Attempts: t.Attempts,
	}
}

// ErrAlreadyCancelled means a named task was cancelled before.
var ErrAlreadyCancelled = errors.New("cancelled already")

// ErrNotCancellable means a named task is not in a status the cancel was
// told to take.
var ErrNotCancellable = errors.New("not in a status that the cancel takes")
