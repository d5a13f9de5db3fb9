package ops

import (
	"context"
	"iter"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// Job is one job of one table as an operator sees it: its tasks, their
// statuses by role and name, and the actions an operator takes on them. It
// wraps the job's tracker so that the command and the dashboard call the
// library from this package only.
type Job[S ddbtrack.Status] struct {
	tr *ddbtrack.Tracker[S]
	st *Statuses[S]
}

// NewJob returns the job the tracker works on. It makes no request.
func NewJob[S ddbtrack.Status](tr *ddbtrack.Tracker[S]) *Job[S] {
	return &Job[S]{tr: tr, st: StatusesOf(tr.Config())}
}

// Statuses returns the job's statuses.
func (j *Job[S]) Statuses() *Statuses[S] { return j.st }

// Name returns the job's name.
func (j *Job[S]) Name() string { return j.tr.Config().Job }

// Table returns the name of the job's table.
func (j *Job[S]) Table() string { return j.tr.Config().Table }

// Get returns one task, read with strong consistency.
func (j *Job[S]) Get(ctx context.Context, id string) (*ddbtrack.Task[S], error) {
	return j.tr.Get(ctx, id)
}

// Reset moves a task back to Pending with no failed attempts, whatever its
// status, unless a worker holds it.
func (j *Job[S]) Reset(ctx context.Context, id string) error {
	return j.tr.Reset(ctx, id)
}

// Delete deletes a task. Unless force is set, it first reads the task and
// refuses, with a [*ddbtrack.TaskError] matching ErrTaskLocked, when a
// worker holds it under a live lease: deleting it would throw away the
// worker's result. The read and the delete are two requests, so a worker
// that claims the task in between loses its work anyway; the library's
// delete takes no condition on the lease yet.
func (j *Job[S]) Delete(ctx context.Context, id string, now time.Time, force bool) error {
	if !force {
		t, err := j.tr.Get(ctx, id)
		if err != nil {
			return err
		}
		if t.LeaseOwner != "" && now.Before(t.LeaseExpiresAt) {
			return LockedError("delete", t)
		}
	}
	return j.tr.Delete(ctx, id)
}

// LockedError describes a task that a worker holds, in the library's own
// error type, so that callers treat it like the library's refusals.
func LockedError[S ddbtrack.Status](op string, t *ddbtrack.Task[S]) error {
	return &ddbtrack.TaskError{
		Op: op, Job: t.Job, TaskID: t.ID, Err: ddbtrack.ErrTaskLocked,
		Status: int(t.Status), StatusName: t.StatusName, Attempts: t.Attempts,
		LeaseOwner: t.LeaseOwner, LeaseExpiresAt: t.LeaseExpiresAt,
	}
}

// DeleteByStatus deletes every task in the statuses that no worker holds,
// and returns how many it deleted.
func (j *Job[S]) DeleteByStatus(ctx context.Context, statuses ...S) (int, error) {
	return j.tr.DeleteByStatus(ctx, statuses...)
}

// CountStatuses counts the tasks in each of the statuses. Each count reads
// every task it counts.
func (j *Job[S]) CountStatuses(ctx context.Context, statuses ...S) (map[S]int64, error) {
	c, err := j.tr.Count(ctx, statuses...)
	if err != nil {
		return nil, err
	}
	return c.ByStatus, nil
}

// Page returns one page of the tasks the filter selects, after cursor, a
// cursor of the library's (see [DecodeCursor]). A filter with a group is
// not paged: use [Job.All] or [Job.Errors].
func (j *Job[S]) Page(ctx context.Context, f Filter[S], now time.Time, newestFirst bool, limit int, cursor string) (ddbtrack.Page[S], error) {
	return j.tr.QueryPage(ctx, f.query(j.st, now, newestFirst, limit), cursor)
}

// All returns every task the filter selects, read as the loop asks for
// them.
func (j *Job[S]) All(ctx context.Context, f Filter[S], now time.Time, newestFirst bool) iter.Seq2[*ddbtrack.Task[S], error] {
	q := f.query(j.st, now, newestFirst, 0)
	if f.Group == "" {
		return j.tr.Query(ctx, q)
	}
	return func(yield func(*ddbtrack.Task[S], error) bool) {
		for t, err := range j.tr.Query(ctx, q) {
			if err == nil && GroupID(Normalize(t.LastError)) != f.Group {
				continue
			}
			if !yield(t, err) || err != nil {
				return
			}
		}
	}
}

// Latest returns the n tasks the filter selects that are due latest, the
// latest first, and whether more tasks match. A filter with a group is
// read as if it had none.
//
// It reads in pages sized for n rather than the library's default of 100
// items: each of a status's shards holds about its share of the latest
// tasks, so a page a quarter above that share is one request per shard
// for most, where pages of 100 took 10 requests per shard for the
// dashboard's chart of 2,000 tasks a status. Each request is a round trip,
// and one that waits its turn behind other work on the server, such as a
// count of the job.
func (j *Job[S]) Latest(ctx context.Context, f Filter[S], now time.Time, n int) ([]*ddbtrack.Task[S], bool, error) {
	q := f.query(j.st, now, newestFirst, n+1)
	share := n / max(j.tr.Config().Shards, 1)
	q.PageSize = int32(min(n+1, share+share/4+1))
	var tasks []*ddbtrack.Task[S]
	for t, err := range j.tr.Query(ctx, q) {
		if err != nil {
			return nil, false, err
		}
		if len(tasks) == n {
			return tasks, true, nil
		}
		tasks = append(tasks, t)
	}
	return tasks, false, nil
}

// IsStuck reports whether the task is Running under a lease that expired
// by now: its worker died or hung, and no other worker has taken it over.
func (s *Statuses[S]) IsStuck(t *ddbtrack.Task[S], now time.Time) bool {
	return t.Status == s.Of(Running) && !t.LeaseExpiresAt.IsZero() && !now.Before(t.LeaseExpiresAt)
}

// The orders of Page and All, named where a bool would say nothing.
const (
	oldestFirst = false
	newestFirst = true
)
