package ddbtrack_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// These tests pin down when an idle Service-mode pool with default options
// reads the index: every PollInterval (1.5 s) for new Pending work, and for
// Failed and Running tasks only every 20 PollIntervals or when the next due
// time it has seen comes. The pool's schedule and Config.Now run on one
// clock that only the test moves (manualClock), so minutes of idling are
// counted exactly, in a fraction of a second, on a loaded machine too.
// TestIdlePickup checks the same on the real clock.

const defaultPoll = 1500 * time.Millisecond

// manualClock is a clock with timers that only advanceTo moves.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*manualTimer]struct{}
}

type manualTimer struct {
	at time.Time
	c  chan time.Time
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Now().UTC().Truncate(time.Millisecond), timers: map[*manualTimer]struct{}{}}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &manualTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		tm.c <- c.now
		return tm.c, func() {}
	}
	c.timers[tm] = struct{}{}
	return tm.c, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.timers, tm)
	}
}

// next returns when the first timer set fires, if one is set.
func (c *manualClock) next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var first time.Time
	for tm := range c.timers {
		if first.IsZero() || tm.at.Before(first) {
			first = tm.at
		}
	}
	return first, !first.IsZero()
}

// advanceTo moves the clock to at and fires the timers due by then.
func (c *manualClock) advanceTo(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = at
	for tm := range c.timers {
		if !tm.at.After(at) {
			tm.c <- at
			delete(c.timers, tm)
		}
	}
}

// partitionReads is a Client that counts the queries of each status
// partition of the index, told by the key condition's partition key, and
// knows whether a query or a write is in flight.
type partitionReads struct {
	ddbtrack.Client
	job string

	mu       sync.Mutex
	reads    map[int]int // by status
	inflight int
}

// sent counts a request in flight until the returned function is called.
func (c *partitionReads) sent() (done func()) {
	c.mu.Lock()
	c.inflight++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.inflight--
		c.mu.Unlock()
	}
}

func (c *partitionReads) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	defer c.sent()()
	for _, v := range in.ExpressionAttributeValues {
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok || !strings.HasPrefix(s.Value, c.job+"#") {
			continue
		}
		// A status partition's key is job#status#shard.
		parts := strings.Split(strings.TrimPrefix(s.Value, c.job+"#"), "#")
		if status, err := strconv.Atoi(parts[0]); err == nil && len(parts) == 2 {
			c.mu.Lock()
			c.reads[status]++
			c.mu.Unlock()
		}
	}
	return c.Client.Query(ctx, in, opts...)
}

// UpdateItem counts the claim or outcome in flight, so that the pool is
// not taken to sleep while one is under way.
func (c *partitionReads) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	defer c.sent()()
	return c.Client.UpdateItem(ctx, in, opts...)
}

// take returns the reads counted since the last take.
func (c *partitionReads) take() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reads
	c.reads = map[int]int{}
	return r
}

func (c *partitionReads) reading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inflight > 0
}

// idlePool starts a Service-mode pool on cfg's job that records the tasks
// it starts, and returns them as they start, with the counting client. With
// clk, the pool schedules its reads by clk, which cfg.Now must be too.
func idlePool(t *testing.T, cfg ddbtrack.Config[Step], clk *manualClock, opts ddbtrack.ProcessOptions[Step], fn func(context.Context, *ddbtrack.Task[Step]) error) (*partitionReads, <-chan string) {
	t.Helper()
	reads := &partitionReads{Client: ddbtracktest.Client(t), job: cfg.Job, reads: map[int]int{}}
	cfg.Owner = "idle-pool"
	tr, err := ddbtrack.New(reads, cfg)
	require.NoError(t, err)
	if clk != nil {
		ddbtrack.SetSchedClock(tr, clk)
	}
	started := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	opts.Mode = ddbtrack.Service
	go func() {
		defer close(done)
		_, _ = tr.Process(ctx, func(ctx context.Context, task *ddbtrack.Task[Step]) error {
			started <- task.ID
			return fn(ctx, task)
		}, opts)
	}()
	return reads, started
}

// settle waits until the pool sleeps on a timer of clk with no query or
// write in flight, in three checks in a row, and returns when that timer
// fires.
func settle(t *testing.T, clk *manualClock, reads *partitionReads) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for calm := 0; calm < 3; {
		require.True(t, time.Now().Before(deadline), "the pool never slept")
		time.Sleep(5 * time.Millisecond)
		if _, ok := clk.next(); ok && !reads.reading() {
			calm++
		} else {
			calm = 0
		}
	}
	at, _ := clk.next()
	return at
}

// runUntil moves clk from timer to timer of the pool until it starts a
// task, and returns the task and the clock's time when it did; it fails
// the test if that takes more than limit of clk's time.
func runUntil(t *testing.T, clk *manualClock, reads *partitionReads, started <-chan string, limit time.Duration) (string, time.Time) {
	t.Helper()
	end := clk.Now().Add(limit)
	for {
		select {
		case id := <-started:
			return id, clk.Now()
		case <-time.After(50 * time.Millisecond):
		}
		at := settle(t, clk, reads)
		select {
		case id := <-started:
			return id, clk.Now()
		default:
		}
		require.False(t, at.After(end), "no task started within %v", limit)
		clk.advanceTo(at)
	}
}

// TestIdlePollSchedule: over a minute of idling, the pool reads each of
// the 2 Pending partitions 40 times and each of the 2 Failed and 2 Running
// ones twice, two queries each time (the read, and the read of the next
// task not yet due, which tells when to look again): 96 requests, within
// issue 16's goal of 120.
func TestIdlePollSchedule(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	clk := newManualClock()
	cfg.Now = clk.Now
	newTracker(t, cfg)
	reads, _ := idlePool(t, cfg, clk, ddbtrack.ProcessOptions[Step]{}, ok)
	at := settle(t, clk, reads)
	first := reads.take()
	require.Equal(t, map[int]int{int(Todo): 2, int(Failed): 4, int(InProgress): 4}, first, "the first reads of every partition")

	start := clk.Now()
	for ; !at.After(start.Add(time.Minute)); at = settle(t, clk, reads) {
		clk.advanceTo(at)
	}
	got := reads.take()
	require.Equal(t, map[int]int{int(Todo): 2 * 40, int(Failed): 2 * 2 * 2, int(InProgress): 2 * 2 * 2}, got)
}

// TestIdlePickupClocked: a task created while the pool idles is started at
// the next poll, within a PollInterval.
func TestIdlePickupClocked(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	clk := newManualClock()
	cfg.Now = clk.Now
	tr := newTracker(t, cfg)
	reads, started := idlePool(t, cfg, clk, ddbtrack.ProcessOptions[Step]{}, ok)
	clk.advanceTo(settle(t, clk, reads)) // Idle for a poll.
	created := clk.Now()
	require.NoError(t, tr.Create(context.Background(), ddbtrack.NewTask{ID: "new"}))
	id, at := runUntil(t, clk, reads, started, time.Minute)
	require.Equal(t, "new", id)
	require.LessOrEqual(t, at.Sub(created), defaultPoll)
}

// TestIdlePickup: the same on the real clock, with a short PollInterval.
func TestIdlePickup(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	tr := newTracker(t, cfg)
	const poll = 300 * time.Millisecond
	_, started := idlePool(t, cfg, nil, ddbtrack.ProcessOptions[Step]{PollInterval: poll}, ok)
	time.Sleep(2 * poll) // Idle.
	created := time.Now()
	require.NoError(t, tr.Create(context.Background(), ddbtrack.NewTask{ID: "new"}))
	select {
	case id := <-started:
		require.Equal(t, "new", id)
		require.Less(t, time.Since(created), poll+2*time.Second, "picked up within a PollInterval, and slack for a loaded machine")
	case <-time.After(poll + 10*time.Second):
		t.Fatal("a new task was not picked up")
	}
}

var errFlaky = errors.New("flaky dependency")

// TestIdleFindsDueRetry: a task that failed is started again when its
// retry is due, 45 s later, not at the next sweep of the Failed
// partitions, which comes 30 s after the failure and finds it not yet due.
func TestIdleFindsDueRetry(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	clk := newManualClock()
	cfg.Now = clk.Now
	const delay = 45 * time.Second
	cfg.RetryDelay = func(int) time.Duration { return delay }
	tr := newTracker(t, cfg)
	reads, started := idlePool(t, cfg, clk, ddbtrack.ProcessOptions[Step]{}, func(_ context.Context, task *ddbtrack.Task[Step]) error {
		if task.Attempts == 1 {
			return errFlaky
		}
		return nil
	})
	require.NoError(t, tr.Create(context.Background(), ddbtrack.NewTask{ID: "flaky"}))
	id, startedAt := runUntil(t, clk, reads, started, time.Minute)
	require.Equal(t, "flaky", id)
	var due time.Time
	require.Eventually(t, func() bool {
		task := get(t, tr, "flaky")
		due = task.DueAt
		return task.Status == Failed
	}, 10*time.Second, 5*time.Millisecond, "the failure is recorded")
	require.GreaterOrEqual(t, due.Sub(startedAt), delay, "the retry is due RetryDelay after the failure")
	id, retriedAt := runUntil(t, clk, reads, started, 2*delay)
	require.Equal(t, "flaky", id)
	require.False(t, retriedAt.Before(due), "not before the retry is due")
	require.LessOrEqual(t, retriedAt.Sub(due), 10*time.Millisecond, "at the retry's due time")
	require.Eventually(t, func() bool { return get(t, tr, "flaky").Status == Success }, 10*time.Second, 10*time.Millisecond)
}

// TestIdleFindsExpiredLease: a task whose worker died is taken over once
// its lease expires, not at the next sweep of the Running partitions: the
// pool read the lease's expiry when it found nothing due there.
func TestIdleFindsExpiredLease(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	clk := newManualClock()
	cfg.Now = clk.Now
	cfg.Lease = 100 * time.Second // Between the sweeps at 30 s, 60 s, 90 s and 120 s.
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(context.Background(), ddbtrack.NewTask{ID: "orphan"}))
	// The worker dies holding the task: runtime.Goexit ends fn's
	// goroutine, so nothing is recorded and the lease is not renewed.
	dead := make(chan struct{})
	claimed := clk.Now()
	go func() {
		defer close(dead)
		_ = worker(t, cfg, "dying").Start(context.Background(), "orphan", func(context.Context, *ddbtrack.Task[Step]) error {
			runtime.Goexit()
			return nil
		})
	}()
	<-dead
	require.Equal(t, InProgress, get(t, tr, "orphan").Status)

	reads, started := idlePool(t, cfg, clk, ddbtrack.ProcessOptions[Step]{}, ok)
	id, at := runUntil(t, clk, reads, started, 2*cfg.Lease)
	require.Equal(t, "orphan", id, "only the orphan is taken over")
	require.Greater(t, at.Sub(claimed), cfg.Lease, "not before the lease expires")
	require.LessOrEqual(t, at.Sub(claimed), cfg.Lease+10*time.Millisecond, "when the lease expires")
}
