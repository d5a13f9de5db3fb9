package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the worker pool of Process: it starts an attempt on each
// candidate the feeder (candidates.go) hands it, with at most Concurrency
// at once, and counts how they end.

// ProcessMode says when [Tracker.Process] returns.
type ProcessMode int

const (
	// Batch returns once the job has nothing left to run: no task is in a
	// startable status, due now or later, and none is Running anywhere.
	// Running tasks of other workers count, because one that fails must be
	// retried and one whose worker dies must be taken over; so do tasks
	// waiting out a retry delay or scheduled for later, which Batch sleeps
	// until.
	Batch ProcessMode = iota

	// Service keeps looking for due tasks until ctx is cancelled.
	Service
)

// ProcessOptions configures [Tracker.Process]. Every field is optional.
type ProcessOptions[S Status] struct {
	// Concurrency is how many tasks this process runs at once. Defaults
	// to 4.
	Concurrency int

	// Mode is Batch or Service. Defaults to Batch.
	Mode ProcessMode

	// PollInterval is how long an idle pool waits before it looks again
	// for new work in a Pending (or Config.Startable) index partition; it
	// bounds how soon a task created by another process is picked up, and
	// costs one query per partition (Config.Shards per status) per poll.
	// Failed and Running partitions change only when tasks fail or workers
	// die, so an idle pool reads them every 20 PollIntervals, and at the
	// due time of the next retry or lease expiry it has seen. With the
	// default 2 shards an idle pool then sends 96 queries a minute and
	// starts a new task 0.7 s after its creation at the median; 5 seconds
	// sends 29 and takes 2.6 s (docs/cost.md). Defaults to 1.5 seconds.
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

	// Start holds the options of every attempt. With
	// Start.ReleaseOnCancel, the tasks in flight when ctx is cancelled see
	// their context cancelled too, and those whose function then returns
	// an error are released, not failed. Without it, they run to the end
	// and their outcome is recorded. Either way Process returns only when
	// every function has returned.
	Start StartOptions

	// Progress, if set, is called every ProgressInterval, and once more
	// when Process returns, with counts of the whole job: shared counts at
	// most ProgressInterval or Config.CountMaxAge old, whichever is longer,
	// so that however many pools and dashboards report on the job, it is
	// counted at most once per that interval. Keep it long for big jobs.
	Progress func(Progress)
	// ProgressInterval is how often Progress is called. Defaults to 5
	// seconds.
	ProgressInterval time.Duration

	// PageSize is how many candidates the pool reads from an index
	// partition at a time. More candidates make it rarer for pools on
	// different machines to try the same task, at the cost of reading more
	// items. Defaults to 4 × Concurrency, at least 32 and at most 100.
	PageSize int
}

// ProcessResult counts what one call of [Tracker.Process] did.
type ProcessResult struct {
	// Claimed counts successful claims, hence attempts.
	Claimed int
	// Succeeded, Failed, Ignored, Released, Cancelled and LeaseLost count
	// the attempts by how they ended.
	Succeeded, Failed, Ignored, Released, Cancelled, LeaseLost int
	// Refused counts claims refused because the task had changed since
	// it was listed, almost always because another worker claimed it
	// first. Each cost a write unit; Refused/Claimed is the share of
	// claims wasted on races.
	Refused int
	// Errors counts errors from DynamoDB that the pool backed off from,
	// and attempts whose outcome could not be written.
	Errors int
}

// Process runs fn on the job's tasks with a bounded number of concurrent
// workers, until the job is done (Batch mode) or ctx is cancelled. Each
// task runs as in [Tracker.StartWith]: claimed with one conditional write,
// its lease renewed while fn runs, its outcome recorded with a write fenced
// by the lease token, and every step reported to Config.OnEvent. Many
// processes on many machines may call Process on the same job at once.
//
// The pool picks tasks that are due in a startable status (Pending,
// Failed and Config.Startable), and Running tasks whose lease has expired,
// whose worker died. It reads them from the status index, which sorts them
// by due time, so tasks scheduled for later or waiting out a retry delay
// cost no reads until they are due. It reads a partition at a time, in
// random order and from random points, and keeps a page of candidates
// ahead of the workers, so that pools on different machines seldom try the
// same task and a worker that finishes starts its next task at once. A
// refused claim costs a write unit and is counted in
// [ProcessResult].Refused.
//
// Errors from DynamoDB (throttling beyond the SDK's retries, a server that
// is down) are reported as EventError and make the pool back off; they
// never fail a task. Errors that no retry can fix, such as a missing table
// or denied access, end Process with that error, and so does an outage
// longer than [ProcessOptions].MaxOutage, with one matching
// ErrUnavailable.
//
// When ctx is cancelled, the pool stops claiming. Tasks in flight run to
// the end, or are released with Start.ReleaseOnCancel. Process returns
// once every worker has stopped: nil when a Batch run found nothing left,
// otherwise the error that ended it, such as ctx's.
//
// If fn panics, the failure is recorded as [Tracker.Start] records it, the
// pool stops claiming, the other tasks in flight finish, and Process
// panics with the same value in the caller's goroutine: a panic is a bug
// that should not be hidden, nor kill the process from a goroutine the
// caller cannot recover in.
func (t *Tracker[S]) Process(ctx context.Context, fn func(ctx context.Context, task *Task[S]) error, opts ProcessOptions[S]) (ProcessResult, error) {
	if fn == nil {
		return ProcessResult{}, optionError("fn", "is nil", "pass the function to run on each task")
	}
	opts, err := t.processOptions(opts)
	if err != nil {
		return ProcessResult{}, err
	}
	p := &pool[S]{
		t: t, fn: fn, opts: opts,
		began:      time.Now(),
		slots:      make(chan struct{}, opts.Concurrency),
		finished:   make(chan struct{}, 1),
		inflight:   map[string]bool{},
		dispatched: map[string]dispatch{},
		pause:      newPause(opts.MaxBackoff),
	}
	return p.run(ctx)
}

func (t *Tracker[S]) processOptions(opts ProcessOptions[S]) (ProcessOptions[S], error) {
	if err := positive("ProcessOptions.Concurrency", &opts.Concurrency, 4); err != nil {
		return opts, err
	}
	if opts.Mode != Batch && opts.Mode != Service {
		return opts, optionError("ProcessOptions.Mode", fmt.Sprintf("is %d", opts.Mode), "use Batch or Service")
	}
	switch {
	case opts.MaxOutage < 0:
		opts.MaxOutage = 0 // From here on, 0 means no limit.
	case opts.MaxOutage == 0 && opts.Mode == Batch:
		opts.MaxOutage = 15 * time.Minute
	}
	if err := durations("ProcessOptions.", []durationField{
		{"PollInterval", &opts.PollInterval, 1500 * time.Millisecond},
		{"MaxBackoff", &opts.MaxBackoff, 10 * time.Second},
		{"ProgressInterval", &opts.ProgressInterval, 5 * time.Second},
	}); err != nil {
		return opts, err
	}
	if err := positive("ProcessOptions.PageSize", &opts.PageSize, min(max(4*opts.Concurrency, 32), 100)); err != nil {
		return opts, err
	}
	start, err := t.startOptions(opts.Start, "ProcessOptions.Start")
	if err != nil {
		return opts, err
	}
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
	// slots holds a token for each task in flight.
	slots   chan struct{}
	workers sync.WaitGroup
	// finished is signalled when a task in flight ends, so that a feeder
	// waiting for work looks again.
	finished chan struct{}

	mu         sync.Mutex
	res        ProcessResult
	inflight   map[string]bool
	dispatched map[string]dispatch
	pruned     time.Time
	panicked   bool
	panicValue any
	// pause, pauseUntil, outageSince and lastErr are the backoff after
	// errors and the outage they add up to.
	pause       *pause
	pauseUntil  time.Time
	outageSince time.Time
	lastErr     error
	// onEnd, if set, learns of each attempt's end, so that the feeder
	// knows when a task it made wait is due again.
	onEnd func(*attempt[S])
	// lastRefusal is when a claim of the pool was last refused, in Unix
	// nanoseconds.
	lastRefusal atomic.Int64
}

// contendedFor is how long after a refused claim the pool takes its
// candidates to be contended by other machines.
const contendedFor = 10 * time.Second

// contended reports whether other machines took tasks the pool listed
// lately.
func (p *pool[S]) contended() bool {
	last := p.lastRefusal.Load()
	return last != 0 && time.Since(time.Unix(0, last)) < contendedFor
}

// dispatch remembers a version of a task handed to a worker: its status
// and fence, one of which every change of an attempt moves. The index may
// go on listing a version for a moment after it changed; the feeder skips
// it rather than waste a claim on it.
type dispatch struct {
	version string
	at      time.Time
}

// forgetAfter is how long a dispatched version is remembered. The status
// index lags the table by well under a second in normal operation, and a
// version forgotten too soon costs one refused claim, while one remembered
// costs memory in proportion to throughput.
const forgetAfter = 10 * time.Second

var errPanicked = errors.New("ddbtrack: a task panicked")

func (p *pool[S]) run(ctx context.Context) (ProcessResult, error) {
	// One write per run lets Tracker.Jobs list the job; the pool goes on
	// without it, since its work does not depend on it.
	if err := p.t.register(ctx); err != nil && permanent(err) {
		return ProcessResult{}, err
	}
	// What fn sees: by default tasks in flight finish after ctx is
	// cancelled, so their context must not end with it.
	workCtx := context.WithoutCancel(ctx)
	if p.opts.Start.ReleaseOnCancel {
		workCtx = ctx
	}
	// feedCtx ends the feeding: on ctx's end, a panic, or a fatal error.
	feedCtx, stopFeeding := context.WithCancelCause(ctx)
	defer stopFeeding(nil)
	start := func(c candidate[S]) {
		p.workers.Go(func() {
			defer func() { <-p.slots }()
			if p.work(workCtx, ctx, c) {
				stopFeeding(errPanicked)
			}
		})
	}

	var reporter sync.WaitGroup
	stopReports := make(chan struct{})
	if p.opts.Progress != nil {
		reporter.Go(func() { p.report(ctx, stopReports) })
	}
	err := newFeeder(p, start).run(feedCtx)
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

// acquire takes a slot, waiting for a worker to finish if all are busy.
func (p *pool[S]) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// claimable reports whether a candidate is worth a claim, and if so marks
// it in flight.
func (p *pool[S]) claimable(task *Task[S], version string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.inflight[task.ID] {
		return false
	}
	if d, ok := p.dispatched[task.ID]; ok && d.version == version {
		return false
	}
	now := time.Now()
	// The ID is copied because it is part of a decoded page of results,
	// which a key kept for a while would keep whole.
	id := strings.Clone(task.ID)
	p.inflight[id] = true
	p.dispatched[id] = dispatch{version: version, at: now}
	if now.Sub(p.pruned) > forgetAfter/4 {
		p.pruned = now
		for id, d := range p.dispatched {
			if now.Sub(d.at) > forgetAfter && !p.inflight[id] {
				delete(p.dispatched, id)
			}
		}
	}
	return true
}

// done marks a task no longer in flight. A task whose claim failed for a
// reason that may pass is forgotten, so that it may be tried again.
func (p *pool[S]) done(id string, tried bool) {
	p.mu.Lock()
	delete(p.inflight, id)
	if !tried {
		delete(p.dispatched, id)
	}
	p.mu.Unlock()
	select {
	case p.finished <- struct{}{}:
	default:
	}
}

func (p *pool[S]) busy() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inflight)
}

// work runs one candidate and counts how it ended. It returns true if fn
// panicked; the panic is kept for Process to raise again.
//
// runCtx is Process's own context, which ends the settling of a claim or
// an outcome whose answer never came (see settle).
func (p *pool[S]) work(ctx, runCtx context.Context, c candidate[S]) (panicked bool) {
	a := p.t.newAttempt(c.task.ID, p.opts.Start)
	tried := true
	defer func() {
		if v := recover(); v != nil {
			p.mu.Lock()
			if !p.panicked {
				p.panicked, p.panicValue = true, v
			}
			p.mu.Unlock()
			panicked = true
		}
		p.count(a)
		p.done(c.task.ID, tried)
	}()
	err := a.run(ctx, p.fn)
	switch {
	case a.task == nil && isRefusal(err):
		// The task changed since it was listed: another worker got it
		// first, or it finished or was reset meanwhile.
		c.page.refused.Add(1)
		p.lastRefusal.Store(time.Now().UnixNano())
	case a.task == nil:
		tried = false
		p.problem(ctx, err, false)
		if errors.Is(err, ErrUnavailable) {
			p.settle(runCtx, a, a.claimLate)
		}
	case a.kind == EventError:
		p.problem(ctx, err, false)
		if a.unwritten != nil {
			p.settle(runCtx, a, a.writeLate)
		}
	}
	return false
}

// count adds an attempt to the result and tells the feeder of its end.
func (p *pool[S]) count(a *attempt[S]) {
	p.mu.Lock()
	r := &p.res
	if a.task != nil {
		r.Claimed++
	}
	switch a.kind {
	case EventRefused:
		r.Refused++
	case EventSucceeded:
		r.Succeeded++
	case EventFailed:
		r.Failed++
	case EventIgnored:
		r.Ignored++
	case EventReleased:
		r.Released++
	case EventCancelled:
		r.Cancelled++
	case EventLeaseLost:
		r.LeaseLost++
	}
	onEnd := p.onEnd
	p.mu.Unlock()
	if onEnd != nil && a.task != nil {
		onEnd(a)
	}
}

// problem counts an error from DynamoDB and makes the feeder back off. The
// pool's own errors, which no attempt reported, become EventError.
func (p *pool[S]) problem(ctx context.Context, err error, own bool) {
	p.mu.Lock()
	p.res.Errors++
	now := time.Now()
	if p.lastErr == nil {
		p.outageSince = now
	}
	p.lastErr = err
	if until := now.Add(p.pause.next()); until.After(p.pauseUntil) {
		p.pauseUntil = until
	}
	p.mu.Unlock()
	p.t.log.LogAttrs(ctx, warnLevel, "worker pool: backing off after an error", errAttr(err))
	if own {
		p.t.emit(ctx, Event[S]{Kind: EventError, Err: err})
	}
}

// healthy ends an outage: a read of the task list succeeded.
func (p *pool[S]) healthy() {
	p.mu.Lock()
	p.pause.reset()
	p.lastErr = nil
	p.mu.Unlock()
}

// backOff waits out the pause after errors, and returns an error matching
// ErrUnavailable once errors have gone on for MaxOutage since the last
// successful read.
func (p *pool[S]) backOff(ctx context.Context) error {
	p.mu.Lock()
	wait, since, last := time.Until(p.pauseUntil), p.outageSince, p.lastErr
	p.mu.Unlock()
	if last != nil && p.opts.MaxOutage > 0 {
		if d := time.Since(since); d >= p.opts.MaxOutage {
			return fmt.Errorf("%w: requests have failed for %v without a successful read of the task list, "+
				"longer than ProcessOptions.MaxOutage (%v); tasks whose outcome was not written are claimable once their leases expire. Last error: %w",
				ErrUnavailable, d.Round(time.Millisecond), p.opts.MaxOutage, last)
		}
	}
	if wait <= 0 {
		return ctx.Err()
	}
	return sleep(ctx, wait)
}

// settle goes on with what an attempt left unsettled after
// Config.FinishTimeout: try, after a pause each time, until try reports it
// settled, the lease would have expired, or runCtx ends. Left alone, a
// claim or an outcome with no answer would leave the task Running, run by
// nobody, until its lease expired, and a Batch run would wait for that.
func (p *pool[S]) settle(runCtx context.Context, a *attempt[S], try func(context.Context) bool) {
	ctx, cancel := context.WithTimeout(runCtx, a.opts.Lease)
	defer cancel()
	wait := newPause(p.opts.MaxBackoff)
	for sleep(ctx, wait.next()) == nil {
		if try(ctx) {
			return
		}
	}
}
