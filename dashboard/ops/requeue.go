package ops

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/ddbtrack/ddbtrack"
)

// RequeueResult says what [Job.Requeue] did.
type RequeueResult struct {
	ddbtrack.RequeueResult
	// Refused lists the named tasks (Filter.IDs) that were not moved, each
	// with the reason: not found, in another status, held by a worker, or
	// changed between the read and the write.
	Refused []Refusal `json:"refused,omitempty"`
}

// Refusal is a named task that a requeue left where it was.
type Refusal struct {
	ID  string `json:"id"`
	Err error  `json:"-"`
	// Reason is Err in an operator's words, for JSON.
	Reason string `json:"reason"`
}

// ErrNotRequeueable means a named task is not in a status the requeue
// takes, such as a succeeded task (which reset runs again).
var ErrNotRequeueable = errors.New("not in a status that requeue takes")

// ErrChanged means a task changed between the requeue's read and its
// write: a worker claimed it, or it was reset, requeued or deleted.
var ErrChanged = errors.New("changed status or was claimed by a worker while being requeued")

// StatusError says a named task is in a status the operation does not
// take.
type StatusError struct {
	// Op is the operation: "requeue", "cancel" or "due-now".
	Op     string
	TaskID string
	// Status is the task's status name, as configured.
	Status string
	// Want describes the statuses the operation takes.
	Want string
	// Err is the sentinel that says why: ErrNotRequeueable,
	// ErrNotCancellable or ErrNotWaiting.
	Err error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("task %q is %s, not %s", e.TaskID, Visible(e.Status, false), e.Want)
}

// Unwrap returns the sentinel in Err.
func (e *StatusError) Unwrap() error { return e.Err }

// idConcurrency bounds the reads of named tasks in flight.
const idConcurrency = 16

// Requeue moves the tasks the filter selects back to Pending, or only
// counts them when dryRun is set. progress, if set, is called after each
// batch with the totals so far.
//
// A filter of statuses, times and text goes to the library's requeue,
// which reads the status index in batches. Named tasks (Filter.IDs) are
// read first, so that each task that is not moved can be named with its
// reason, and so are the tasks of an error group (Filter.Group), which
// DynamoDB cannot select; the rest are then moved in batches of at most
// 100, each bounded to the time span of its tasks so that it reads no more
// of the index than it must. Each task still moves with the library's one
// conditional write, so a task that changed since it was read is skipped,
// never overwritten.
func (j *Job[S]) Requeue(ctx context.Context, f Filter[S], now time.Time, dryRun bool, progress func(ddbtrack.RequeueResult)) (RequeueResult, error) {
	if len(f.IDs) == 0 && f.Group == "" {
		res, err := j.tr.Requeue(ctx, f.requeue(j.st, now, dryRun, progress))
		return RequeueResult{RequeueResult: res}, err
	}
	var (
		tasks []*ddbtrack.Task[S]
		res   RequeueResult
		err   error
	)
	if len(f.IDs) > 0 {
		tasks, res.Refused, err = j.named(ctx, f, now)
	} else {
		for t, rerr := range j.All(ctx, f, now, oldestFirst) {
			if rerr != nil {
				return res, rerr
			}
			tasks = append(tasks, t)
		}
	}
	if err != nil {
		return res, err
	}
	res.Matched = len(tasks)
	if dryRun {
		if progress != nil {
			progress(res.RequeueResult)
		}
		return res, nil
	}
	moved, done, err := j.requeueTasks(ctx, tasks, func(r ddbtrack.RequeueResult) {
		if progress != nil {
			progress(ddbtrack.RequeueResult{Matched: res.Matched, Moved: r.Moved, Skipped: r.Skipped})
		}
	})
	res.Moved, res.Skipped = done.Moved, done.Skipped
	if len(f.IDs) > 0 && err == nil {
		for _, t := range tasks {
			if !moved[t.ID] {
				res.Refused = append(res.Refused, refusal(t.ID, fmt.Errorf("task %q %w", t.ID, ErrChanged)))
			}
		}
	}
	return res, err
}

func refusal(id string, err error) Refusal {
	return Refusal{ID: id, Err: err, Reason: Explain(err).String()}
}

// named reads the named tasks and sorts them into those the filter
// selects and those it does not, with the reason.
func (j *Job[S]) named(ctx context.Context, f Filter[S], now time.Time) ([]*ddbtrack.Task[S], []Refusal, error) {
	ids := slices.Compact(slices.Sorted(slices.Values(f.IDs)))
	found, errs := j.getAll(ctx, ids)
	statuses := f.statuses(j.st)
	want := Filter[S]{Statuses: statuses, Stuck: f.Stuck}.Describe(j.st)
	var (
		tasks   []*ddbtrack.Task[S]
		refused []Refusal
	)
	for i, t := range found {
		switch err := errs[i]; {
		case IsNotFound(err) || errors.Is(err, ddbtrack.ErrInvalidOption):
			refused = append(refused, refusal(ids[i], err))
			continue
		case err != nil:
			return nil, nil, err
		}
		switch {
		case !slices.Contains(statuses, t.Status):
			refused = append(refused, refusal(t.ID, &StatusError{Op: "requeue", TaskID: t.ID, Status: j.st.Name(t.Status), Want: want, Err: ErrNotRequeueable}))
		case held(t, now):
			refused = append(refused, refusal(t.ID, LockedError("requeue", t)))
		case !f.matches(j.st, t, now):
			refused = append(refused, refusal(t.ID, fmt.Errorf("task %q does not match the filter (%s)", t.ID, f.Describe(j.st))))
		default:
			tasks = append(tasks, t)
		}
	}
	return tasks, refused, nil
}

// matches applies the filter's time range, texts and schedule to a task
// read by ID.
func (f Filter[S]) matches(st *Statuses[S], t *ddbtrack.Task[S], now time.Time) bool {
	switch {
	case f.Scheduled && !st.NotDue(t, now):
		return false
	case !f.Since.IsZero() && t.DueAt.Before(f.Since):
		return false
	case !f.Until.IsZero() && !t.DueAt.Before(f.Until):
		return false
	case f.ErrorContains != "" && !strings.Contains(t.LastError, f.ErrorContains):
		return false
	case f.IDContains != "" && !strings.Contains(t.ID, f.IDContains):
		return false
	case f.Stuck && !(t.LeaseExpiresAt.Before(now) && !t.LeaseExpiresAt.IsZero()):
		return false
	case f.Group != "" && GroupID(Normalize(t.LastError)) != f.Group:
		return false
	}
	return true
}

// requeueTasks moves tasks already read, in batches of idBatch ordered by
// due time, which the status index sorts on, and returns the IDs of those that moved. Each batch is one
// library requeue over the batch's statuses and time span, filtered to its
// IDs. A task that the library matched but did not move (it changed
// meanwhile) counts as skipped; so does one it no longer matched at all.
func (j *Job[S]) requeueTasks(ctx context.Context, tasks []*ddbtrack.Task[S], progress func(ddbtrack.RequeueResult)) (map[string]bool, ddbtrack.RequeueResult, error) {
	tasks = slices.SortedFunc(slices.Values(tasks), func(a, b *ddbtrack.Task[S]) int { return a.DueAt.Compare(b.DueAt) })
	moved := map[string]bool{}
	var total ddbtrack.RequeueResult
	for batch := range slices.Chunk(tasks, idBatch) {
		var statuses []S
		ids := make([]expression.OperandBuilder, len(batch))
		for i, t := range batch {
			ids[i] = expression.Value(t.ID)
			if !slices.Contains(statuses, t.Status) {
				statuses = append(statuses, t.Status)
			}
		}
		res, err := j.tr.Requeue(ctx, ddbtrack.RequeueOptions[S]{
			Statuses: statuses,
			Since:    batch[0].DueAt,
			// Until is exclusive, and times are stored in milliseconds.
			Until:  batch[len(batch)-1].DueAt.Add(time.Millisecond),
			Filter: expression.Name("task_id").In(ids[0], ids[1:]...),
		})
		total.Moved += res.Moved
		total.Skipped += len(batch) - res.Moved
		if err != nil {
			return moved, total, err
		}
		if res.Moved == len(batch) {
			for _, t := range batch {
				moved[t.ID] = true
			}
		} else if err := j.whichMoved(ctx, batch, moved); err != nil {
			return moved, total, err
		}
		if progress != nil {
			progress(total)
		}
	}
	return moved, total, nil
}

// whichMoved finds, by reading them again, which tasks of a batch are
// Pending now: the library's requeue counts what it skipped but does not
// name it.
func (j *Job[S]) whichMoved(ctx context.Context, batch []*ddbtrack.Task[S], moved map[string]bool) error {
	for _, t := range batch {
		now, err := j.tr.Get(ctx, t.ID)
		if IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if now.Status == j.st.Of(Pending) && now.Fence == t.Fence && !now.UpdatedAt.Equal(t.UpdatedAt) {
			moved[t.ID] = true
		}
	}
	return nil
}
