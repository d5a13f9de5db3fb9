package ops

import (
	"context"
	"sync"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// StatusCount is the number of tasks in one status.
type StatusCount[S ddbtrack.Status] struct {
	Status S      `json:"status"`
	Name   string `json:"name"`
	Role   Role   `json:"role,omitempty"`
	Count  int64  `json:"count"`
}

// Counts is a job's task count per status at one time.
type Counts[S ddbtrack.Status] struct {
	// At is when the statuses were counted: a while ago when they come
	// from the job's shared counts (Config.CountMaxAge).
	At       time.Time        `json:"at"`
	Statuses []StatusCount[S] `json:"statuses"`
	Total    int64            `json:"total"`
	// Stuck counts Running tasks whose lease has expired. They are part
	// of the Running count too.
	Stuck int `json:"stuck"`
}

// Count returns the job's counts: every status the tracker knows, in value
// order, including those with no tasks. Stuck tasks are found by reading
// the Running tasks, which are few in a healthy job, since only a task's
// lease tells whether it is stuck.
func (j *Job[S]) Count(ctx context.Context, now time.Time) (Counts[S], error) {
	counted, err := j.tr.Count(ctx)
	if err != nil {
		return Counts[S]{}, err
	}
	return j.withStuck(ctx, counted, now)
}

// withStuck returns the counts with the stuck tasks, read now.
func (j *Job[S]) withStuck(ctx context.Context, counted ddbtrack.Counts[S], now time.Time) (Counts[S], error) {
	c := Counts[S]{At: counted.AsOf}
	for _, code := range j.st.All() {
		n := counted.ByStatus[code]
		c.Statuses = append(c.Statuses, StatusCount[S]{Status: code, Name: j.st.Name(code), Role: j.st.RoleOf(code), Count: n})
		c.Total += n
	}
	for _, err := range j.tr.Query(ctx, Filter[S]{Stuck: true}.query(j.st, now, oldestFirst, 0)) {
		if err != nil {
			return Counts[S]{}, err
		}
		c.Stuck++
	}
	return c, nil
}

// CountWait is how long [Counter.Count] waits for a count before it
// answers with the counts it has: long enough for the job's shared counts
// (one GetItem) and for a small job's full count, short enough that a
// page that shows the counts stays well under a second.
const CountWait = 300 * time.Millisecond

// countTimeout bounds a count that a Counter runs after its caller has
// been answered, so that a count that hangs does not keep the Counter from
// ever counting again.
const countTimeout = 10 * time.Minute

// Counter keeps a job's latest counts for a viewer that asks for them
// again and again, such as the dashboard, so that no answer waits for a
// full count of a big job. Each Count asks the tracker for the counts,
// which with Config.CountMaxAge costs one GetItem while the job's shared
// counts are fresh; when they are not, this viewer refreshes them, with a
// full count, which on a job of 100,000 tasks takes seconds. Count then
// answers once the count has run for the Counter's wait (CountWait) with
// the counts it last had, their age showing in Counts.At, and the count
// goes on alone, so that a later Count has it. Only the first Count, with
// no counts yet, waits for the count to end.
//
// One count at a time runs per Counter. Stuck tasks are read afresh on
// every Count; reading them costs little (see [Filter.Stuck]). A Counter
// is safe for concurrent use.
type Counter[S ddbtrack.Status] struct {
	job  *Job[S]
	wait time.Duration

	mu      sync.Mutex
	last    ddbtrack.Counts[S]
	have    bool
	current *counting[S] // nil when no count runs
}

// counting is one count that a Counter runs. Its result is set before done
// is closed.
type counting[S ddbtrack.Status] struct {
	started time.Time
	done    chan struct{}
	counts  ddbtrack.Counts[S]
	err     error
}

// Counter returns a Counter of the job's counts that waits wait for a
// count before answering with older counts; 0 means CountWait.
func (j *Job[S]) Counter(wait time.Duration) *Counter[S] {
	if wait <= 0 {
		wait = CountWait
	}
	return &Counter[S]{job: j, wait: wait}
}

// Count returns the job's counts as [Job.Count] does, or, when counting
// them takes longer than the Counter's wait, the counts it had before,
// which Counts.At dates.
func (c *Counter[S]) Count(ctx context.Context, now time.Time) (Counts[S], error) {
	c.mu.Lock()
	run := c.current
	if run == nil {
		// The count outlives this call when it takes longer than the
		// wait, so it runs on a context of its own, which keeps the
		// caller's values.
		run = &counting[S]{started: time.Now(), done: make(chan struct{})}
		c.current = run
		go c.count(context.WithoutCancel(ctx), run)
	}
	last, have := c.last, c.have
	c.mu.Unlock()

	// The wait runs from the count's start: a caller that finds a count
	// that has run for longer is answered at once.
	var timeout <-chan time.Time
	if have {
		timer := time.NewTimer(c.wait - time.Since(run.started))
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-run.done:
		if run.err != nil {
			return Counts[S]{}, run.err
		}
		return c.job.withStuck(ctx, c.latest(), now)
	case <-timeout:
		return c.job.withStuck(ctx, last, now)
	case <-ctx.Done():
		return Counts[S]{}, ctx.Err()
	}
}

// count runs one count and keeps its result.
func (c *Counter[S]) count(ctx context.Context, run *counting[S]) {
	ctx, cancel := context.WithTimeout(ctx, countTimeout)
	defer cancel()
	run.counts, run.err = c.job.tr.Count(ctx)
	c.mu.Lock()
	// Counts from another viewer's refresh may be older than those this
	// Counter has; keep the newest.
	if run.err == nil && (!c.have || !run.counts.AsOf.Before(c.last.AsOf)) {
		c.last, c.have = run.counts, true
	}
	c.current = nil
	c.mu.Unlock()
	close(run.done)
}

// latest returns the newest counts the Counter has.
func (c *Counter[S]) latest() ddbtrack.Counts[S] {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
