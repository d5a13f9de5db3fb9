package ddbtrack

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// This file finds the work of Process: the feeder reads due tasks from the
// status index, keeps a page of candidates ahead of the workers, and hands
// them out one at a time.
//
// Each index partition the pool takes work from is a source with a
// schedule. A partition that had nothing due is not read again until the
// next poll: every PollInterval for Pending ones, whose new tasks nobody
// can predict, and every sweepPolls PollIntervals for Failed and Running
// ones, whose tasks come due at times the index tells (the retry's due
// time, the lease's expiry), or when a task this pool made wait is due.
//
// Pools of a fleet read the same partitions. Once a partition holds more
// due tasks than a page, each pool reads it from random points among them
// (see spread) rather than from its head, so that the pools take different
// tasks instead of racing for the same ones; and once another machine has
// taken a task the pool listed, the pool keeps no page waiting (see want).

// sweepPolls is how many PollIntervals an idle pool waits between reads of
// a Failed or Running partition whose next due time it does not know.
const sweepPolls = 20

// candidateTTL is how long candidates are kept before they are read
// afresh: long enough not to reread a busy partition for every task, short
// enough that other machines have not taken most of them meanwhile.
const candidateTTL = 2 * time.Second

// contendedTTL is how long candidates are kept while other machines take
// the pool's candidates: long enough for a claim to be sent.
const contendedTTL = 250 * time.Millisecond

// indexLag is how long a Batch pool allows the status index to list a task
// that it made wait (a failure to retry, a release) before a partition
// found empty is believed: the index is eventually consistent, usually by
// well under a second.
const indexLag = time.Second

// source is one index partition the pool takes work from.
type source struct {
	part partition
	// takeover says the partition is Running's, where the work is tasks
	// whose lease expired; fresh says it holds new work (Pending or a
	// Config.Startable status), which nobody can predict.
	takeover, fresh bool
	// nextRead is when to read the partition again after it had nothing
	// due; zero to read it whenever there is room for candidates. It is
	// by the schedule's clock (the real one, see schedclock.go), while due
	// times are by Config.Now: readTime converts.
	nextRead time.Time
	// crowded says a read from the head filled a page: the partition has
	// more due tasks than a page, and other machines are likely reading
	// its head too, so the pool reads from random points among its due
	// tasks (spread) instead.
	crowded bool
	spread  spread
}

// candidate is a task listed as due, on a page of candidates read
// together.
type candidate[S Status] struct {
	task    *Task[S]
	version string // the status and fence it was listed with
	page    *page
	read    time.Time
}

// page is one read of candidates. Workers count its refused claims, which
// tell the feeder that another process is taking from the same page.
type page struct{ refused atomic.Int32 }

// feeder lists candidates and starts workers on them.
type feeder[S Status] struct {
	p     *pool[S]
	start func(candidate[S])
	cands []candidate[S]

	mu      sync.Mutex // guards sources and waiting, which workers' ends update
	sources []*source
	// waiting holds the tasks this pool made wait, by ID, with when, until
	// the index lists them in the partition they wait in or indexLag has
	// passed: until then a Batch pool does not believe that partition
	// empty.
	waiting map[string]wait
	// quiet counts the checks in a row that found the job finished.
	quiet int
	// unfinished is when a check last found the job unfinished, zero once
	// the pool has started a task since: see idle.
	unfinished time.Time
}

// wait is a task this pool made wait: where, and when.
type wait struct {
	src *source
	at  time.Time
}

func newFeeder[S Status](p *pool[S], start func(candidate[S])) *feeder[S] {
	f := &feeder[S]{p: p, start: start, waiting: map[string]wait{}}
	cfg := p.t.cfg
	add := func(s S, takeover, fresh bool) {
		for shard := range cfg.Shards {
			f.sources = append(f.sources, &source{part: partition{status: int(s), shard: shard}, takeover: takeover, fresh: fresh})
		}
	}
	add(cfg.Running, true, false)
	add(cfg.Pending, false, true)
	for _, s := range cfg.Startable {
		add(s, false, true)
	}
	add(cfg.Failed, false, false)
	p.onEnd = f.ended
	return f
}

// ended learns from an attempt that made its task wait when the task is
// due again, so that the partition it waits in is read then, and, in Batch
// mode, that the partition is not empty until the index lists the task
// there.
func (f *feeder[S]) ended(a *attempt[S]) {
	if a.kind != EventFailed && a.kind != EventReleased {
		return
	}
	shard := keys.Shard(a.task.ID, f.p.t.cfg.Shards)
	due := f.readTime(a.task.DueAt)
	now := f.clock().Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, src := range f.sources {
		if src.part.status != int(a.task.Status) || src.part.shard != shard {
			continue
		}
		src.readBy(due)
		if f.p.opts.Mode == Batch {
			if len(f.waiting) >= maxWaiting {
				f.forgetWaits(now)
			}
			f.waiting[a.task.ID] = wait{src: src, at: now}
		}
	}
}

// maxWaiting is how many waits the feeder keeps before it forgets those
// older than indexLag, which tasks that other pools took leave behind.
const maxWaiting = 1024

// forgetWaits forgets the waits older than indexLag. f.mu must be held.
func (f *feeder[S]) forgetWaits(now time.Time) {
	for id, w := range f.waiting {
		if now.Sub(w.at) >= indexLag {
			delete(f.waiting, id)
		}
	}
}

// listed forgets the waits of tasks that a read of src listed: the index
// shows them where they wait.
func (f *feeder[S]) listed(src *source, tasks []*Task[S]) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.waiting) == 0 {
		return
	}
	for _, task := range tasks {
		if w, ok := f.waiting[task.ID]; ok && w.src == src {
			delete(f.waiting, task.ID)
		}
	}
}

// unlisted reports whether src may hold a task this pool made wait that
// the index does not list yet.
func (f *feeder[S]) unlisted(src *source) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgetWaits(f.clock().Now())
	for _, w := range f.waiting {
		if w.src == src {
			return true
		}
	}
	return false
}

// clock is the clock the feeder schedules its reads by.
func (f *feeder[S]) clock() schedClock { return f.p.t.sched }

// run feeds the pool until the job is done (Batch), ctx ends, or an error
// no retry can fix.
func (f *feeder[S]) run(ctx context.Context) error {
	p := f.p
	for {
		if err := p.backOff(ctx); err != nil {
			return err
		}
		f.dropStale()
		read, keep := f.want()
		if keep > 0 {
			if err := f.refill(ctx, read, keep); err != nil {
				if ctx.Err() != nil || permanent(err) {
					return err
				}
				p.problem(ctx, err, true)
				continue
			}
		}
		if len(f.cands) == 0 && keep == 0 && p.busy() > 0 {
			// Contended, and waiting for slots to free: see want.
			if err := f.await(ctx); err != nil {
				return err
			}
			continue
		}
		if len(f.cands) == 0 {
			done, err := f.idle(ctx)
			if done || err != nil {
				return err
			}
			continue
		}
		if err := p.acquire(ctx); err != nil {
			return err
		}
		c := f.cands[0]
		f.cands = f.cands[1:]
		if c.page.refused.Load() > 0 || !p.claimable(c.task, c.version) {
			// Another machine is working through this page too; leave it
			// the rest, which is the cheapest way for two pollers to part.
			if c.page.refused.Load() > 0 {
				f.dropPage(c.page)
			}
			<-p.slots
			continue
		}
		f.unfinished = time.Time{}
		f.start(c)
	}
}

// want returns how many tasks to read now and how many of them to keep as
// candidates; 0 to keep means no read.
//
// A pool alone reads a page ahead while its workers are busy, so that a
// worker that finishes starts its next task without waiting. But when
// other machines take the tasks the pool lists (its claims are refused),
// a candidate kept waiting for a slot is likely taken by the time one
// frees: then the pool keeps only as many as it has slots free, which it
// claims at once, and reads only once half of its slots are free, to keep
// reads few. It still reads a few times as many tasks as it keeps, and
// keeps a random few: pools that land on the same tasks, as they do after
// a stretch that others emptied, then mostly claim different ones.
func (f *feeder[S]) want() (read, keep int) {
	p := f.p
	if !p.contended() {
		if len(f.cands) < p.opts.Concurrency {
			return p.opts.PageSize, p.opts.PageSize
		}
		return 0, 0
	}
	free := p.opts.Concurrency - p.busy() - len(f.cands)
	if free < max(1, p.opts.Concurrency/2) {
		return 0, 0
	}
	return min(4*free, p.opts.PageSize), free
}

// await waits for a task in flight to end.
func (f *feeder[S]) await(ctx context.Context) error {
	timer, stop := f.clock().After(f.p.opts.PollInterval)
	defer stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-f.p.finished:
	case <-timer:
	}
	return nil
}

// dropStale forgets candidates read too long ago: more than candidateTTL,
// or, while other machines take the pool's candidates, contendedTTL.
func (f *feeder[S]) dropStale() {
	ttl := candidateTTL
	if f.p.contended() {
		ttl = contendedTTL
	}
	i, now := 0, f.clock().Now()
	for i < len(f.cands) && now.Sub(f.cands[i].read) > ttl {
		i++
	}
	f.cands = f.cands[i:]
}

// dropPage forgets the candidates of a page.
func (f *feeder[S]) dropPage(pg *page) {
	kept := f.cands[:0]
	for _, c := range f.cands {
		if c.page != pg {
			kept = append(kept, c)
		}
	}
	f.cands = kept
}

// refill reads up to limit due tasks of one partition that is due for a
// read, if any, and adds keep of them, at random, to the candidates.
func (f *feeder[S]) refill(ctx context.Context, limit, keep int) error {
	src := f.nextSource()
	if src == nil {
		return nil
	}
	now := f.p.t.cfg.Now()
	from := f.readFrom(src, now)
	tasks, err := f.read(ctx, src, from, now, limit)
	if err != nil {
		return err
	}
	f.listed(src, tasks)
	var next, last time.Time
	switch {
	case len(tasks) == 0 && from == "" && !src.fresh && f.p.opts.Mode == Service:
		// Learn when the partition's next task is due, to read it then.
		// A Batch pool learns it from its check of whether the job is
		// finished, which reads every partition's first task anyway.
		if next, err = f.nextDue(ctx, src, now); err != nil {
			return err
		}
	case len(tasks) == limit && from == "" && !src.takeover:
		// The partition is crowded: learn where its due tasks end, so
		// that the points read from next fall among them. Drawn up to now
		// instead, most would fall after a job created in a burst.
		if last, err = f.lastDue(ctx, src, now); err != nil {
			return err
		}
	}
	f.p.healthy()
	f.schedule(src, tasks, from, limit, next, last)
	pg := &page{}
	read := f.clock().Now()
	rand.Shuffle(len(tasks), func(i, j int) { tasks[i], tasks[j] = tasks[j], tasks[i] })
	tasks = tasks[:min(keep, len(tasks))]
	for _, task := range tasks {
		version := strconv.Itoa(int(task.Status)) + "/" + strconv.FormatInt(task.Fence, 10)
		f.cands = append(f.cands, candidate[S]{task: task, version: version, page: pg, read: read})
	}
	return nil
}

// readFrom returns the order key to read src from: a random point among
// its due tasks if it is crowded, or "" for its head.
func (f *feeder[S]) readFrom(src *source, now time.Time) string {
	if !src.crowded || src.takeover {
		return ""
	}
	at, ok := src.spread.draw(now.UnixMilli())
	if !ok {
		return ""
	}
	return keys.Order(at, "")
}

// schedule decides, from what a read of src from the order key from found,
// how to read it next: where from if it is crowded, and when, if it had
// nothing due. next is when the partition's next task not yet due will be,
// and last when its last due task is, if a read told.
func (f *feeder[S]) schedule(src *source, tasks []*Task[S], from string, limit int, next, last time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(tasks)
	switch {
	case from != "":
		// Nothing is due from the point up to the first task read, and,
		// unless the page is full, after the last.
		at := keys.OrderTime(from)
		switch {
		case n == 0:
			src.spread.hi = at - 1
		case n < limit:
			src.spread.hi = tasks[n-1].DueAt.UnixMilli()
			fallthrough
		default:
			src.spread.empty(at, tasks[0].DueAt.UnixMilli())
		}
	case n == 0:
		src.crowded = false
		src.nextRead = f.clock().Now().Add(f.pollInterval(src))
		if !next.IsZero() {
			src.readBy(f.readTime(next))
		}
	default:
		src.crowded = n == limit
		src.spread = newSpread(tasks[0].DueAt.UnixMilli())
		if !last.IsZero() {
			src.spread.hi = last.UnixMilli()
		}
		if !src.crowded {
			// Every due task of the partition is a candidate now: reading
			// it again before they are taken would return the same ones.
			src.nextRead = f.clock().Now().Add(candidateTTL / 2)
		}
	}
}

// readTime returns when, by the schedule's clock, to read a partition for
// a task due at due by Config.Now: a millisecond after it, since a lease
// that expires at due can be taken over only after that millisecond, and a
// read that comes too early finds nothing and waits for the next sweep.
func (f *feeder[S]) readTime(due time.Time) time.Time {
	return f.clock().Now().Add(due.Sub(f.p.t.cfg.Now()) + time.Millisecond)
}

// pollInterval is how long a source that had nothing due waits for its
// next read.
func (f *feeder[S]) pollInterval(src *source) time.Duration {
	if src.fresh {
		return f.p.opts.PollInterval
	}
	return sweepPolls * f.p.opts.PollInterval
}

// nextSource picks, at random, a partition that is due for a read, or nil.
func (f *feeder[S]) nextSource() *source {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock().Now()
	var ready []*source
	for _, src := range f.sources {
		if !src.nextRead.After(now) {
			ready = append(ready, src)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	return ready[rand.IntN(len(ready))]
}

// read returns a page of the tasks of src due at now, from the order key
// from on if it is set. A Running partition lists tasks by their first
// lease's expiry, so its read keeps only those whose lease, renewed or not,
// has expired.
func (f *feeder[S]) read(ctx context.Context, src *source, from string, now time.Time, limit int) ([]*Task[S], error) {
	t := f.p.t
	p := &plan[S]{t: t, parts: []partition{src.part}, lo: from, hi: keys.OrderBound(now.UnixMilli()), limit: limit, pageSize: int32(limit)}
	if src.takeover {
		p.filter = expression.Name(attrLeaseExpiresAt).LessThan(expression.Value(now.UnixMilli()))
	}
	return p.page(ctx)
}

// nextDue returns when the first task of src that is not yet due at now
// will be, or the zero time if there is none: one item's read.
func (f *feeder[S]) nextDue(ctx context.Context, src *source, now time.Time) (time.Time, error) {
	return f.firstDue(ctx, &plan[S]{t: f.p.t, parts: []partition{src.part}, lo: keys.OrderBound(now.UnixMilli()), limit: 1, pageSize: 1})
}

// lastDue returns when the last task of src due at now is, or the zero
// time if there is none: one item's read.
func (f *feeder[S]) lastDue(ctx context.Context, src *source, now time.Time) (time.Time, error) {
	return f.firstDue(ctx, &plan[S]{t: f.p.t, parts: []partition{src.part}, hi: keys.OrderBound(now.UnixMilli()), desc: true, limit: 1, pageSize: 1})
}

// firstDue returns the due time of the first task p reads, or the zero
// time if it reads none.
func (f *feeder[S]) firstDue(ctx context.Context, p *plan[S]) (time.Time, error) {
	tasks, err := p.page(ctx)
	if err != nil || len(tasks) == 0 {
		return time.Time{}, err
	}
	return tasks[0].DueAt, nil
}

// idle waits for work when there are no candidates: until a partition is
// due for a read or a task in flight ends. In Batch mode it first checks
// whether the job is finished, and reports done if it is.
func (f *feeder[S]) idle(ctx context.Context) (done bool, err error) {
	p := f.p
	wake := f.nextWake()
	// A pool that found the job unfinished and has started nothing since,
	// as one of many does while the others finish the last tasks, checks
	// again only after a PollInterval: checking each time a read finds
	// nothing made a fleet's idle pools read every partition over and
	// over.
	now := f.clock().Now()
	if p.opts.Mode == Batch && p.busy() == 0 && wake.After(now) && now.Sub(f.unfinished) >= p.opts.PollInterval {
		finished, err := f.finished(ctx)
		switch {
		case err != nil && (ctx.Err() != nil || permanent(err)):
			return false, err
		case err != nil:
			p.problem(ctx, err, true)
			return false, nil
		case finished:
			// The check reads the partitions one after another, so a task
			// that another worker moved from one it had not read yet to
			// one it had read is listed in neither; the check after it
			// finds the task.
			if f.quiet++; f.quiet >= 2 {
				return true, nil
			}
			return false, nil
		default:
			f.quiet = 0
			f.unfinished = f.clock().Now()
			wake = f.nextWake()
		}
	}
	wait := wake.Sub(f.clock().Now())
	if wait <= 0 {
		// A partition is due for a read, which the next refill makes.
		return false, nil
	}
	timer, stop := f.clock().After(min(wait, p.opts.PollInterval))
	defer stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-p.finished:
	case <-timer:
	}
	return false, nil
}

// nextWake returns when the first partition is due for a read. A zero
// nextRead means the partition is due now, so it wins over any later time.
func (f *feeder[S]) nextWake() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	wake := f.sources[0].nextRead
	for _, src := range f.sources[1:] {
		if src.nextRead.Before(wake) {
			wake = src.nextRead
		}
	}
	return wake
}

// finished reports whether the job has nothing left: no task in any
// partition the pool takes work from, due or not, and none Running. It
// reads the first task of each partition, and schedules a read of each for
// the time its first task is due. A partition where this pool made a task
// wait is not empty until the index lists the task there (see indexLag).
func (f *feeder[S]) finished(ctx context.Context) (bool, error) {
	empty := true
	for _, src := range f.sources {
		p := &plan[S]{t: f.p.t, parts: []partition{src.part}, limit: 1, pageSize: 1}
		tasks, err := p.page(ctx)
		if err != nil {
			return false, err
		}
		f.listed(src, tasks)
		if len(tasks) == 0 {
			if f.unlisted(src) {
				empty = false
				f.readBy(src, f.clock().Now().Add(indexLag/4))
			}
			continue
		}
		empty = false
		due := f.readTime(tasks[0].DueAt)
		if src.takeover {
			// Another worker runs it: look again within a poll, as it may
			// fail and need a retry, or die and need a takeover.
			due = f.clock().Now().Add(f.p.opts.PollInterval)
		}
		f.readBy(src, due)
	}
	f.p.healthy()
	return empty, nil
}

// readBy schedules a read of src by the time at at the latest.
func (f *feeder[S]) readBy(src *source, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	src.readBy(at)
}

// readBy schedules a read of the partition by the time at at the latest.
// The feeder's mu must be held.
func (src *source) readBy(at time.Time) {
	if at.Before(src.nextRead) {
		src.nextRead = at
	}
}

// page reads one page of a single-partition plan with one request: the
// feeder needs some due tasks, not all of them, and a page is enough to
// tell whether there are any.
func (p *plan[S]) page(ctx context.Context) ([]*Task[S], error) {
	in, err := p.input(p.parts[0], "")
	if err != nil {
		return nil, err
	}
	in.Limit = aws.Int32(int32(p.limit))
	out, err := p.t.client.Query(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("ddbtrack: query index %s, partition %s: %w", indexName, p.parts[0].key(p.t.cfg.Job), err)
	}
	tasks := make([]*Task[S], 0, len(out.Items))
	for _, item := range out.Items {
		task, err := decodeTask[S](item)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, task)
	}
	return tasks, nil
}
