package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/smithy-go"
)

// ProcessMode says when [Tracker.Process] returns.
type ProcessMode int

const (
	// Batch returns once the job has nothing left to run: no task is in a
	// startable status and none is Running anywhere. Running tasks of other
	// workers count, because one that fails must be retried and one whose
	// worker dies must be taken over.
	Batch ProcessMode = iota

	// Service keeps polling for new tasks until ctx is cancelled.
	Service
)

// ProcessOptions configures [Tracker.Process]. Every field is optional.
// The hooks are called from the workers' goroutines, concurrently: they
// must be safe for concurrent use, and quick, because a worker does not
// take its next task until its hook has returned.
type ProcessOptions[S Status] struct {
	// Concurrency is how many tasks this process runs at once. Defaults
	// to 4.
	Concurrency int

	// Mode is Batch or Service. Defaults to Batch.
	Mode ProcessMode

	// PollInterval is how long the pool waits before looking again when it
	// found nothing to claim. It bounds how soon a new or retried task is
	// picked up, and costs one query per index partition per poll.
	// Defaults to 1 second.
	PollInterval time.Duration

	// MaxBackoff caps the pause after errors from DynamoDB, such as
	// throttling that outlasted the SDK's own retries or a server that is
	// down. The pause starts at 100ms and doubles with each error in a
	// row. Defaults to 10 seconds.
	MaxBackoff time.Duration

	// MaxOutage is how long errors from DynamoDB may go on, with no
	// successful read of the job's tasks in between, before Process gives
	// up. It then stops claiming, lets the tasks in flight end, and returns
	// an error matching ErrUnavailable that wraps the last error. Tasks
	// whose outcome could not be written stay Running until their lease
	// expires and are claimable again then. Defaults to 15 minutes in Batch
	// mode, so that a job run from a scheduler ends rather than hangs, and
	// to no limit in Service mode, which should outlive an outage. A
	// negative value means no limit.
	MaxOutage time.Duration

	// Start holds the options of every attempt: lease and attempt limit.
	// Its ReleaseOnCancel is set by ReleaseOnShutdown.
	Start StartOptions

	// ReleaseOnShutdown changes what happens to tasks in flight when ctx is
	// cancelled. By default they run to the end and their outcome is
	// recorded; fn's context is not cancelled with ctx. With
	// ReleaseOnShutdown, fn's context is cancelled with ctx, and a task
	// whose fn then returns an error is released: back to the status it was
	// claimed from, the attempt not counted. Either way Process returns only
	// when every fn has returned.
	ReleaseOnShutdown bool

	// OnClaim is called when a task is claimed, before fn runs.
	OnClaim func(Event[S])
	// OnSuccess is called when a success has been recorded.
	OnSuccess func(Event[S])
	// OnFailure is called when a failure has been recorded and the task
	// may be retried.
	OnFailure func(Event[S])
	// OnIgnored is called when a failure has made the task Ignored.
	OnIgnored func(Event[S])
	// OnLeaseLost is called when an attempt lost its lease, so its outcome
	// was not recorded: another worker took the task over, or it was reset
	// or deleted.
	OnLeaseLost func(Event[S])
	// OnError is called with errors that are no task's outcome: queries or
	// claims that failed, and outcomes that could not be written. The pool
	// backs off and carries on after them; a task whose outcome could not
	// be written is taken over once its lease expires.
	OnError func(error)

	// Progress, if set, is called every ProgressInterval, and once more
	// when Process returns, with counts of the whole job. Each report
	// costs a COUNT query per status and shard, and a COUNT query reads
	// every item it counts, so keep the interval long for big jobs.
	Progress func(Progress)
	// ProgressInterval is how often Progress is called. Defaults to 5
	// seconds.
	ProgressInterval time.Duration

	// PageSize is how many candidates the pool reads from an index
	// partition at a time, before shuffling them. More candidates make it
	// rarer for workers on different machines to try the same task, at
	// the cost of reading more items. Defaults to 4 × Concurrency, at least
	// 32 and at most 100.
	PageSize int
}

// Event describes one task's attempt to the hooks of [ProcessOptions].
type Event[S Status] struct {
	// Task is the task as the attempt left it. Hooks must not modify it.
	Task *Task[S]
	// Err is fn's error, or why the attempt ended, such as ErrLeaseLost.
	Err error
	// Waited is how long the task waited, from its last status change
	// (creation or last failure) to this claim.
	Waited time.Duration
	// Ran is how long fn ran. It is zero in OnClaim.
	Ran time.Duration
}

// ProcessResult counts what one call of [Tracker.Process] did.
type ProcessResult struct {
	// Claimed counts successful claims, hence attempts.
	Claimed int
	// Succeeded, Failed, Ignored, Released and LeaseLost count the
	// attempts by how they ended.
	Succeeded, Failed, Ignored, Released, LeaseLost int
	// Refused counts claims refused because the task had changed since
	// it was listed, almost always because another worker claimed it
	// first. Each cost a write unit; Refused/Claimed is the share of
	// claims wasted on races.
	Refused int
	// Errors counts errors from DynamoDB that the pool backed off from.
	Errors int
}

// Progress reports a job's progress to [ProcessOptions].Progress. The
// counts are the whole job's, across every worker, read from the status
// index, which is eventually consistent.
type Progress struct {
	// Succeeded, Failed, Ignored and Running count the tasks in those
	// roles. Failed tasks will be retried; Ignored ones will not.
	Succeeded, Failed, Ignored, Running int64
	// Pending counts tasks waiting for a first attempt, in Pending or one
	// of Config.Startable.
	Pending int64
	// Remaining is Pending + Failed + Running: tasks not yet finished.
	Remaining int64
	// Rate is how many tasks per second became Succeeded or Ignored,
	// over the last minute at most. It is 0 until two reports apart.
	Rate float64
	// ETA is Remaining / Rate, or 0 when Rate is 0.
	ETA time.Duration
	// Elapsed is the time since Process started.
	Elapsed time.Duration
	// Process is what this call of Process has done so far.
	Process ProcessResult
}

// Defaults for ProcessOptions.
const (
	DefaultConcurrency      = 4
	DefaultPollInterval     = time.Second
	DefaultMaxBackoff       = 10 * time.Second
	DefaultBatchMaxOutage   = 15 * time.Minute
	DefaultProgressInterval = 5 * time.Second
)

// Process runs fn on the job's tasks with a bounded number of concurrent
// workers, until the job is done (Batch mode) or ctx is cancelled. Each
// task runs as in [Tracker.StartWith]: claimed with one conditional write,
// its lease renewed while fn runs, its outcome recorded with a write fenced
// by the lease token. Many processes on many machines may call Process on
// the same job at once.
//
// The pool picks tasks in a startable status (Pending, Failed and
// Config.Startable) and Running tasks whose lease has expired, whose worker
// died. It reads them from the status index, one partition at a time: the
// shards in random order, candidates shuffled within a page, and the
// oldest or newest end of a partition at random, so that workers on
// different machines seldom try the same task. A refused claim costs a
// write unit and is counted in [ProcessResult].Refused.
//
// Errors from DynamoDB (throttling beyond the SDK's retries, a server
// that is down) are reported to OnError and make the pool back off; they
// never fail a task. Errors that no retry can fix, such as a missing table
// or denied access, end Process with that error, and so does an outage
// longer than [ProcessOptions].MaxOutage, with one matching ErrUnavailable.
//
// When ctx is cancelled, the pool stops claiming. Tasks in flight run to
// the end, or are released with [ProcessOptions].ReleaseOnShutdown.
// Process returns once every worker has stopped: nil when a Batch run found
// nothing left, otherwise the error that ended it, such as ctx's.
//
// If fn panics, the failure is recorded as [Tracker.Start] records it, the
// pool stops claiming, the other tasks in flight finish, and Process
// panics with the same value in the caller's goroutine, as errgroup does:
// a panic is a bug that should not be hidden, nor kill the process from a
// goroutine the caller cannot recover in.
func (t *Tracker[S]) Process(ctx context.Context, fn func(ctx context.Context, task *Task[S]) error, opts ProcessOptions[S]) (ProcessResult, error) {
	if fn == nil {
		return ProcessResult{}, fmt.Errorf("%w: Process needs a function to run on each task", ErrInvalidConfig)
	}
	opts, err := t.processOptions(opts)
	if err != nil {
		return ProcessResult{}, err
	}
	p := &pool[S]{
		t: t, fn: fn, opts: opts,
		began:      time.Now(),
		inflight:   map[string]bool{},
		dispatched: map[string]dispatch{},
		spans:      map[partitionKey]span{},
		empty:      map[partitionKey]time.Time{},
		wake:       make(chan struct{}, 1),
		slots:      make(chan struct{}, opts.Concurrency),
	}
	p.backoff.max = opts.MaxBackoff
	return p.run(ctx)
}

func (t *Tracker[S]) processOptions(opts ProcessOptions[S]) (ProcessOptions[S], error) {
	bad := func(field, problem, fix string) error {
		return fmt.Errorf("%w: ProcessOptions.%s %s: %s", ErrInvalidConfig, field, problem, fix)
	}
	switch {
	case opts.Concurrency < 0:
		return opts, bad("Concurrency", fmt.Sprintf("is %d", opts.Concurrency), fmt.Sprintf("use a positive number, or 0 for the default (%d)", DefaultConcurrency))
	case opts.Concurrency == 0:
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Mode != Batch && opts.Mode != Service {
		return opts, bad("Mode", fmt.Sprintf("is %d", opts.Mode), "use Batch or Service")
	}
	switch {
	case opts.MaxOutage < 0:
		opts.MaxOutage = 0 // From here on, 0 means no limit.
	case opts.MaxOutage == 0 && opts.Mode == Batch:
		opts.MaxOutage = DefaultBatchMaxOutage
	}
	for _, f := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"PollInterval", &opts.PollInterval, DefaultPollInterval},
		{"MaxBackoff", &opts.MaxBackoff, DefaultMaxBackoff},
		{"ProgressInterval", &opts.ProgressInterval, DefaultProgressInterval},
	} {
		switch {
		case *f.v < 0:
			return opts, bad(f.name, fmt.Sprintf("is %v", *f.v), fmt.Sprintf("use a positive duration, or 0 for the default (%v)", f.def))
		case *f.v == 0:
			*f.v = f.def
		}
	}
	switch {
	case opts.PageSize < 0:
		return opts, bad("PageSize", fmt.Sprintf("is %d", opts.PageSize), "use a positive number, or 0 for the default")
	case opts.PageSize == 0:
		opts.PageSize = min(max(4*opts.Concurrency, 32), 100)
	}
	start, err := t.startOptions(opts.Start)
	if err != nil {
		return opts, fmt.Errorf("ProcessOptions.Start: %w", err)
	}
	start.ReleaseOnCancel = opts.ReleaseOnShutdown
	opts.Start = start
	return opts, nil
}

// pool is one run of Process: a feeder that lists candidates and starts a
// worker goroutine for each, holding one of Concurrency slots. One feeder
// per process means that no two workers of a process try the same task.
type pool[S Status] struct {
	t     *Tracker[S]
	fn    func(context.Context, *Task[S]) error
	opts  ProcessOptions[S]
	began time.Time
	// slots holds a token for each task in flight. The feeder takes one
	// before it reads candidates, so it never reads more than it can run.
	slots   chan struct{}
	workers sync.WaitGroup
	// wake is signalled when a task in flight finishes, so a Batch feeder
	// waiting on it looks again at once.
	wake chan struct{}

	mu         sync.Mutex
	res        ProcessResult
	inflight   map[string]bool
	dispatched map[string]dispatch
	spans      map[partitionKey]span
	pruned     time.Time
	// empty is when the feeder last found each empty partition empty. Only
	// the feeder uses it.
	empty      map[partitionKey]time.Time
	panicked   bool
	panicValue any

	backoff backoff
	// start runs a candidate in a new worker goroutine; the caller holds a
	// slot for it.
	start func(cand *Task[S], pg *page)
}

// dispatch remembers a version of a task handed to a worker. The index may
// go on listing a version for a moment after it changed; the feeder skips it
// rather than waste a claim on it.
type dispatch struct {
	version version
	at      time.Time
}

// version identifies one state of a task. The update time alone does not:
// a claim and a failure within one millisecond, or under a test's stopped
// clock (Config.Now), leave it as it was, and the retry would then wait
// forgetAfter. The fence grows with every claim and the status changes with
// every reset or requeue, so together they tell the versions apart.
type version struct {
	updated, fence int64
	status         int
}

// candidateTTL is how long the feeder keeps a page of candidates that it
// has no free worker for, at least, before it reads afresh: long enough
// not to reread a busy partition for every task, short enough that other
// machines have not taken most of it meanwhile.
const candidateTTL = time.Second

// forgetAfter is how long a dispatched version is remembered. The status
// index lags the table by well under a second in normal operation.
const forgetAfter = time.Minute

func (p *pool[S]) run(ctx context.Context) (ProcessResult, error) {
	// What fn sees: by default tasks in flight finish after ctx is
	// cancelled, so their context must not end with it.
	workCtx := context.WithoutCancel(ctx)
	if p.opts.ReleaseOnShutdown {
		workCtx = ctx
	}
	// feedCtx ends the feeding: on ctx's end, a panic, or a fatal error.
	feedCtx, stopFeeding := context.WithCancelCause(ctx)
	defer stopFeeding(nil)

	p.start = func(cand *Task[S], pg *page) {
		p.workers.Go(func() {
			defer func() { <-p.slots }()
			if p.work(workCtx, cand, pg) {
				stopFeeding(errPanicked)
			}
		})
	}

	var reporter sync.WaitGroup
	stopReports := make(chan struct{})
	if p.opts.Progress != nil {
		reporter.Go(func() { p.report(ctx, stopReports) })
	}

	err := p.feed(feedCtx)
	p.workers.Wait()
	close(stopReports)
	reporter.Wait()

	p.mu.Lock()
	res, panicked, value := p.res, p.panicked, p.panicValue
	p.mu.Unlock()
	if panicked {
		panic(value)
	}
	if err == nil {
		return res, nil
	}
	if ctx.Err() != nil {
		return res, context.Cause(ctx)
	}
	return res, err
}

var errPanicked = errors.New("ddbtrack: a task panicked")

// feed lists candidates and starts workers on them until the job is done
// (Batch), ctx ends, or an error no retry can fix.
func (p *pool[S]) feed(ctx context.Context) error {
	quiet := 0       // Empty sweeps in a row with nothing running anywhere.
	thorough := true // Whether the next sweep reads every partition from an end.
	for {
		if err := p.backoff.wait(ctx); err != nil {
			return err
		}
		if err := p.unavailable(); err != nil {
			return err
		}
		started, skipped, err := p.sweep(ctx, thorough)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if permanent(err) {
				return err
			}
			p.problem(err)
			continue
		}
		p.backoff.ok()
		if started > 0 {
			quiet, thorough = 0, false
			continue
		}
		if !thorough {
			// Reads from a random point may have missed what lies before
			// it; only a sweep that reads from an end shows a partition
			// empty.
			thorough = true
			continue
		}
		if p.opts.Mode == Batch && skipped == 0 && p.busy() == 0 {
			running, err := p.t.Count(ctx, p.t.cfg.Running)
			switch {
			case err != nil && ctx.Err() != nil:
				return ctx.Err()
			case err != nil && permanent(err):
				return err
			case err != nil:
				p.problem(err)
				continue
			case running == 0:
				// A task can move from Running to Failed in a partition
				// this sweep had already read; the sweep after the count
				// finds it.
				if quiet++; quiet >= 2 {
					return nil
				}
				continue
			}
		}
		quiet = 0
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.wake:
		case <-time.After(p.opts.PollInterval):
		}
	}
}

// sweep reads every index partition the pool picks from, once, and starts
// a worker on each new candidate. It returns how many it started, and how
// many it skipped because they are in flight here or were just handled.
func (p *pool[S]) sweep(ctx context.Context, thorough bool) (started, skipped int, err error) {
	p.prune()
	cfg := p.t.cfg
	// Expired leases first: their tasks have waited longest. Failed last,
	// which gives a failing task a moment before its retry.
	statuses := append([]S{cfg.Running, cfg.Pending}, cfg.Startable...)
	statuses = append(statuses, cfg.Failed)
	for _, shard := range rand.Perm(cfg.Shards) {
		for _, status := range statuses {
			key := partitionKey{int(status), shard}
			if emptyAt, ok := p.empty[key]; ok && !thorough && time.Since(emptyAt) < p.opts.PollInterval {
				// Found empty a moment ago. A busy pool sweeps many times
				// a PollInterval, and rereading the partitions that are
				// usually empty (Failed, expired leases) each time would
				// cost more queries than its tasks; an idle pool would
				// not look again before PollInterval either.
				continue
			}
			// Hold a slot before reading, so that candidates are read
			// only when a worker is free to take one at once.
			if err := p.acquire(ctx, nil); err != nil {
				return started, skipped, err
			}
			cands, err := p.read(ctx, status, shard, thorough)
			if err != nil {
				<-p.slots
				return started, skipped, err
			}
			if len(cands) == 0 {
				p.empty[key] = time.Now()
			} else {
				delete(p.empty, key)
			}
			// Candidates go stale as other workers claim them; after a
			// while the next sweep reads the partition afresh.
			stale := time.NewTimer(max(p.opts.PollInterval, candidateTTL))
			rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
			pg := new(page)
			held := true
			// Take only part of a page before reading another partition:
			// two machines that read the same page collide more the deeper
			// they go into it. But take at least minTake: a short page is
			// a whole partition, which a second read would only return
			// again, at the price of a query per task.
			if take := max(p.opts.Concurrency, len(cands)/4, minTake); len(cands) > take {
				cands = cands[:take]
			}
			for _, cand := range cands {
				if pg.refused.Load() > 0 {
					// Another machine is working through this page too.
					// Leave it the rest and try another partition: it
					// is the cheapest way for two pollers to part.
					break
				}
				if !p.claimable(cand) {
					skipped++
					continue
				}
				if !held {
					if err := p.acquire(ctx, stale.C); err != nil {
						p.finished(cand.ID, false)
						if errors.Is(err, errStale) {
							break
						}
						stale.Stop()
						return started, skipped, err
					}
				}
				p.start(cand, pg)
				started, held = started+1, false
			}
			stale.Stop()
			if held {
				<-p.slots
			}
		}
	}
	return started, skipped, nil
}

// minTake is the fewest candidates a sweep takes from a page, when it has
// them: a quarter of the smallest page.
const minTake = 8

var errStale = errors.New("ddbtrack: candidates are stale")

// partitionKey names an index partition: a status on a shard.
type partitionKey struct{ status, shard int }

// span is the range of update times a partition was last seen to hold.
type span struct{ lo, hi int64 }

// read returns a page of candidates from one index partition. Workers on
// many machines read the same partitions, so where they start reading
// decides how often they race for the same task. Reading from the oldest
// end only, every worker would read the same page; so most reads start at
// a random update time within the span the partition was last seen to
// cover, and the rest start from a random end, which keeps the span up to
// date as tasks come and go. A thorough read always starts from an end, so
// that it finds a task if the partition has one.
func (p *pool[S]) read(ctx context.Context, status S, shard int, thorough bool) ([]*Task[S], error) {
	cfg := p.t.cfg
	none := expression.ConditionBuilder{}
	if status == cfg.Running {
		// Only tasks whose lease expired, of which there are few.
		expired := expression.Name("lease_expires_at").LessThan(expression.Value(cfg.Now().UnixMilli()))
		return p.pick(ctx, status, shard, rand.IntN(2) == 0, time.Time{}, p.opts.PageSize, expired)
	}
	key := partitionKey{int(status), shard}
	p.mu.Lock()
	sp, known := p.spans[key]
	p.mu.Unlock()
	if !thorough && known && sp.lo < sp.hi && rand.IntN(4) != 0 {
		return p.pivot(ctx, key, sp)
	}
	newest := rand.IntN(2) == 0
	cands, err := p.pick(ctx, status, shard, newest, time.Time{}, p.opts.PageSize, none)
	if err != nil || len(cands) == 0 {
		p.mu.Lock()
		delete(p.spans, key)
		p.mu.Unlock()
		return cands, err
	}
	if len(cands) < p.opts.PageSize {
		return cands, nil // The whole partition: nothing to spread over.
	}
	// A full page from one end, which every other machine reads too. The
	// other end's first task gives the partition's span, and a page from a
	// random point within it is much less likely to be anyone else's.
	other, err := p.pick(ctx, status, shard, !newest, time.Time{}, 1, none)
	if err != nil || len(other) == 0 {
		return cands, err
	}
	a, b := cands[0].UpdatedAt.UnixMilli(), other[0].UpdatedAt.UnixMilli()
	sp = span{min(a, b), max(a, b)}
	p.mu.Lock()
	p.spans[key] = sp
	p.mu.Unlock()
	if sp.lo == sp.hi {
		return cands, nil
	}
	spread, err := p.pivot(ctx, key, sp)
	if err != nil || len(spread) == 0 {
		// Keep the end's page: a thorough read must not come back empty
		// from a partition that has tasks.
		return cands, err
	}
	return spread, nil
}

// pivot reads a page from a random update time within the partition's
// span on.
func (p *pool[S]) pivot(ctx context.Context, key partitionKey, sp span) ([]*Task[S], error) {
	at := sp.lo + rand.Int64N(sp.hi-sp.lo+1)
	cands, err := p.pick(ctx, S(key.status), key.shard, false, time.UnixMilli(at), p.opts.PageSize, expression.ConditionBuilder{})
	if err == nil && len(cands) == 0 {
		// Nothing from the pivot on: the newest task is older.
		p.mu.Lock()
		p.spans[key] = span{sp.lo, at}
		p.mu.Unlock()
	}
	return cands, err
}

// pick reads up to limit tasks of one index partition, from the oldest or
// newest end, or from since on if it is set. Without a filter it reads one
// page: candidates need no exact order. A filtered read goes on until it
// has limit tasks or the partition ends, so that it misses none.
func (p *pool[S]) pick(ctx context.Context, status S, shard int, newest bool, since time.Time, limit int, filter expression.ConditionBuilder) ([]*Task[S], error) {
	opts := QueryOptions[S]{Since: since, Limit: limit, PageSize: int32(limit), Filter: filter}
	if newest {
		opts.Order = NewestFirst
	}
	if !filter.IsSet() {
		return p.t.sampleShard(ctx, status, shard, opts)
	}
	cands := make([]*Task[S], 0, limit)
	for task, err := range p.t.queryShard(ctx, status, shard, opts) {
		if err != nil {
			return nil, err
		}
		cands = append(cands, task)
	}
	return cands, nil
}

// page is one read of candidates. Workers count its refused claims, which
// tell the feeder that another process is taking from the same page.
type page struct{ refused atomic.Int32 }

// acquire takes a slot, waiting for a worker to finish if all are busy. It
// gives up with errStale when stale fires first, and with ctx's error.
func (p *pool[S]) acquire(ctx context.Context, stale <-chan time.Time) error {
	if err := p.backoff.wait(ctx); err != nil {
		return err
	}
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-stale:
		return errStale
	case <-ctx.Done():
		return ctx.Err()
	}
}

// claimable reports whether a candidate is worth a claim, and if so marks
// it in flight.
func (p *pool[S]) claimable(cand *Task[S]) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[cand.ID] {
		return false
	}
	version := version{cand.UpdatedAt.UnixMilli(), cand.Fence, int(cand.Status)}
	if d, ok := p.dispatched[cand.ID]; ok && d.version == version {
		return false
	}
	p.inflight[cand.ID] = true
	p.dispatched[cand.ID] = dispatch{version: version, at: time.Now()}
	return true
}

// finished marks a task no longer in flight. A task whose claim failed for
// a reason that may pass is forgotten, so the next sweep may try it again.
func (p *pool[S]) finished(id string, tried bool) {
	p.mu.Lock()
	delete(p.inflight, id)
	if !tried {
		delete(p.dispatched, id)
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *pool[S]) busy() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inflight)
}

func (p *pool[S]) prune() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if now.Sub(p.pruned) < forgetAfter/4 {
		return
	}
	p.pruned = now
	for id, d := range p.dispatched {
		if now.Sub(d.at) > forgetAfter && !p.inflight[id] {
			delete(p.dispatched, id)
		}
	}
}

// work runs one candidate and reports it. It returns true if fn panicked;
// the panic is kept for Process to raise again.
func (p *pool[S]) work(ctx context.Context, cand *Task[S], pg *page) (panicked bool) {
	var (
		claimed *Task[S]
		began   time.Time
		waited  time.Duration
	)
	wrapped := func(ctx context.Context, task *Task[S]) error {
		claimed, began = task, time.Now()
		waited = max(p.t.cfg.Now().Sub(cand.UpdatedAt), 0)
		p.count(func(r *ProcessResult) { r.Claimed++ })
		call(p.opts.OnClaim, Event[S]{Task: task, Waited: waited})
		return p.fn(ctx, task)
	}
	tried := true
	defer func() {
		if v := recover(); v != nil {
			p.mu.Lock()
			if !p.panicked {
				p.panicked, p.panicValue = true, v
			}
			p.mu.Unlock()
			panicked = true
			ev := Event[S]{Task: claimed, Err: fmt.Errorf("panic: %v", v), Waited: waited, Ran: time.Since(began)}
			p.outcome(claimed, ev)
		}
		p.finished(cand.ID, tried)
	}()

	task, err := p.t.attempt(ctx, cand.ID, p.opts.Start, wrapped)
	if task == nil {
		var te *TaskError
		if errors.As(err, &te) {
			// The task changed since it was listed: another worker got it
			// first, or it finished or was reset meanwhile.
			p.count(func(r *ProcessResult) { r.Refused++ })
			pg.refused.Add(1)
			return false
		}
		tried = false
		p.problem(err)
		return false
	}
	ev := Event[S]{Task: task, Err: err, Waited: waited}
	if !began.IsZero() {
		ev.Ran = time.Since(began)
	}
	if p.outcome(task, ev) {
		p.problem(err)
	}
	return false
}

// outcome counts an attempt and calls its hook. It reports whether the
// outcome could not be written, which is a problem for OnError.
func (p *pool[S]) outcome(task *Task[S], ev Event[S]) (unknown bool) {
	if task == nil {
		return false
	}
	switch task.outcome {
	case outcomeSucceeded:
		p.count(func(r *ProcessResult) { r.Succeeded++ })
		call(p.opts.OnSuccess, ev)
	case outcomeFailed:
		p.count(func(r *ProcessResult) { r.Failed++ })
		call(p.opts.OnFailure, ev)
	case outcomeIgnored:
		p.count(func(r *ProcessResult) { r.Ignored++ })
		call(p.opts.OnIgnored, ev)
	case outcomeReleased:
		p.count(func(r *ProcessResult) { r.Released++ })
	case outcomeLeaseLost:
		p.count(func(r *ProcessResult) { r.LeaseLost++ })
		call(p.opts.OnLeaseLost, ev)
	default:
		return true
	}
	return false
}

func call[S Status](hook func(Event[S]), ev Event[S]) {
	if hook != nil {
		hook(ev)
	}
}

func (p *pool[S]) count(f func(*ProcessResult)) {
	p.mu.Lock()
	f(&p.res)
	p.mu.Unlock()
}

// problem reports an error from DynamoDB and makes the feeder back off.
func (p *pool[S]) problem(err error) {
	p.count(func(r *ProcessResult) { r.Errors++ })
	p.backoff.fail(err)
	p.t.log.Warn("worker pool: backing off after an error", "error", err)
	if p.opts.OnError != nil {
		p.opts.OnError(err)
	}
}

// permanent reports whether an error will not go away by retrying: the
// table is missing, access is denied, or a request is malformed.
func permanent(err error) bool {
	if errors.Is(err, ErrInvalidConfig) {
		return true
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException",
		"ValidationException", "MissingAuthenticationTokenException", "InvalidSignatureException":
		return true
	}
	return false
}

// unavailable returns an error matching ErrUnavailable once errors have
// gone on for MaxOutage since the feeder last read the task list.
func (p *pool[S]) unavailable() error {
	since, last := p.backoff.outage()
	if p.opts.MaxOutage <= 0 || last == nil {
		return nil
	}
	if d := time.Since(since); d >= p.opts.MaxOutage {
		return fmt.Errorf("%w: requests have failed for %v without a successful read of the task list, "+
			"longer than ProcessOptions.MaxOutage (%v); tasks whose outcome was not written are claimable once their leases expire. Last error: %w",
			ErrUnavailable, d.Round(time.Millisecond), p.opts.MaxOutage, last)
	}
	return nil
}

// backoff is the pause the feeder takes after errors: 100ms, doubling with
// each error in a row up to max, with full jitter so that many workers
// hitting the same throttled table do not come back in step. It also
// remembers when the errors began, and the last one.
type backoff struct {
	mu    sync.Mutex
	max   time.Duration
	delay time.Duration
	until time.Time
	since time.Time
	last  error
}

func (b *backoff) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil {
		b.since = time.Now()
	}
	b.last = err
	b.delay = min(max(2*b.delay, 100*time.Millisecond), b.max)
	until := time.Now().Add(b.delay/2 + rand.N(b.delay/2+1))
	if until.After(b.until) {
		b.until = until
	}
}

func (b *backoff) ok() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.delay, b.last = 0, nil
}

// outage returns when the current run of errors began and its last error,
// or a nil error if the last read succeeded.
func (b *backoff) outage() (since time.Time, last error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.since, b.last
}

func (b *backoff) wait(ctx context.Context) error {
	b.mu.Lock()
	d := time.Until(b.until)
	b.mu.Unlock()
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// report calls Progress every ProgressInterval until stop is closed, and
// once more then.
func (p *pool[S]) report(ctx context.Context, stop <-chan struct{}) {
	type sample struct {
		at   time.Time
		done int64
	}
	var samples []sample
	tick := time.NewTicker(p.opts.ProgressInterval)
	defer tick.Stop()
	for final := false; !final; {
		select {
		case <-tick.C:
		case <-stop:
			final = true
		}
		// The last report runs after ctx may have ended; it still says
		// where the job stands.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		counts, err := p.t.Stats(rctx)
		cancel()
		if err != nil {
			if !final {
				p.problem(err)
			}
			continue
		}
		cfg := p.t.cfg
		pr := Progress{
			Succeeded: counts[cfg.Succeeded], Failed: counts[cfg.Failed], Ignored: counts[cfg.Ignored],
			Running: counts[cfg.Running], Pending: counts[cfg.Pending],
			Elapsed: time.Since(p.began),
		}
		for _, s := range cfg.Startable {
			pr.Pending += counts[s]
		}
		pr.Remaining = pr.Pending + pr.Failed + pr.Running
		now := time.Now()
		samples = append(samples, sample{now, pr.Succeeded + pr.Ignored})
		for len(samples) > 2 && now.Sub(samples[0].at) > time.Minute {
			samples = samples[1:]
		}
		if first := samples[0]; len(samples) > 1 && now.Sub(first.at) > 0 {
			pr.Rate = float64(samples[len(samples)-1].done-first.done) / now.Sub(first.at).Seconds()
		}
		if pr.Rate > 0 {
			pr.ETA = time.Duration(float64(pr.Remaining) / pr.Rate * float64(time.Second))
		}
		p.mu.Lock()
		pr.Process = p.res
		p.mu.Unlock()
		p.opts.Progress(pr)
	}
}
