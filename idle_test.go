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

// These tests pin down when an idle Service-mode pool reads the index:
// every PollInterval for new Pending work, and for Failed and Running
// tasks only every 20 PollIntervals or when the next due time it has seen
// comes. They run on the real clock, with short intervals, because the
// pool's schedule is real time (due times are converted to it).

// partitionReads is a Client that counts the queries of each status
// partition of the index, told by the key condition's partition key, and
// the time spent waiting for them.
type partitionReads struct {
	ddbtrack.Client
	job string

	mu    sync.Mutex
	reads map[int]int // by status
	busy  time.Duration
}

func (c *partitionReads) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	began := time.Now()
	defer func() {
		c.mu.Lock()
		c.busy += time.Since(began)
		c.mu.Unlock()
	}()
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

// take returns the reads counted and the time spent in queries since the
// last take.
func (c *partitionReads) take() (map[int]int, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, busy := c.reads, c.busy
	c.reads, c.busy = map[int]int{}, 0
	return r, busy
}

// idlePool starts a Service-mode pool on cfg's job that records the tasks
// it starts, and returns them as they start, with the counting client.
func idlePool(t *testing.T, cfg ddbtrack.Config[Step], opts ddbtrack.ProcessOptions[Step], fn func(context.Context, *ddbtrack.Task[Step]) error) (*partitionReads, <-chan string) {
	t.Helper()
	reads := &partitionReads{Client: ddbtracktest.Client(t), job: cfg.Job, reads: map[int]int{}}
	cfg.Owner = "idle-pool"
	tr, err := ddbtrack.New(reads, cfg)
	require.NoError(t, err)
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

// TestIdlePollSchedule: an idle pool reads each Pending partition once per
// PollInterval and the Failed and Running ones about once per 20, two
// queries each time (the read, and the read of the next task not yet due,
// which tells when to look again).
func TestIdlePollSchedule(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("watches an idle pool for two seconds")
	}
	cfg := config(t)
	newTracker(t, cfg)
	const poll = 40 * time.Millisecond
	reads, _ := idlePool(t, cfg, ddbtrack.ProcessOptions[Step]{PollInterval: poll}, ok)
	time.Sleep(200 * time.Millisecond) // The first reads of every partition.
	reads.take()
	const window = 2 * time.Second
	time.Sleep(window)
	got, busy := reads.take()

	shards := cfg.Shards
	if shards == 0 {
		shards = defaultShards
	}
	polls := int(window / poll) // 50
	// A loaded machine delays polls; it never adds any.
	require.LessOrEqual(t, got[int(Todo)], shards*(polls+1), "Pending reads: %v", got)
	// The feeder reads one partition at a time and waits a PollInterval
	// between polls, so however slow the server, it polls at least once
	// per PollInterval of the time it did not spend reading. Half that
	// leaves room for timers that a loaded machine fires late.
	idle := window - busy
	require.GreaterOrEqual(t, got[int(Todo)], shards*int(idle/poll)/2,
		"Pending reads: %v, with %v of %v spent in queries", got, busy, window)
	sweeps := int(window/(20*poll)) + 1 // 3
	for _, s := range []Step{Failed, InProgress} {
		require.LessOrEqual(t, got[int(s)], 2*shards*sweeps, "%v reads: %v", s, got)
	}
	for s := range got {
		require.Contains(t, []int{int(Todo), int(Failed), int(InProgress)}, s, "only the partitions work comes from are read: %v", got)
	}
}

// TestIdlePickup: a task created while the pool idles is started within
// about a PollInterval.
func TestIdlePickup(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	tr := newTracker(t, cfg)
	const poll = 300 * time.Millisecond
	_, started := idlePool(t, cfg, ddbtrack.ProcessOptions[Step]{PollInterval: poll}, ok)
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
// retry is due, not at the next sweep of the Failed partitions, which is
// 20 PollIntervals away.
func TestIdleFindsDueRetry(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	const delay = 500 * time.Millisecond
	cfg.RetryDelay = func(int) time.Duration { return delay }
	tr := newTracker(t, cfg)
	const poll = time.Second // A sweep every 20 s.
	var failedAt time.Time
	var mu sync.Mutex
	_, started := idlePool(t, cfg, ddbtrack.ProcessOptions[Step]{PollInterval: poll}, func(_ context.Context, task *ddbtrack.Task[Step]) error {
		if task.Attempts == 1 {
			mu.Lock()
			failedAt = time.Now()
			mu.Unlock()
			return errFlaky
		}
		return nil
	})
	require.NoError(t, tr.Create(context.Background(), ddbtrack.NewTask{ID: "flaky"}))
	require.Equal(t, "flaky", <-started)
	select {
	case <-started:
		mu.Lock()
		waited := time.Since(failedAt)
		mu.Unlock()
		require.GreaterOrEqual(t, waited, delay, "not before the retry is due")
		require.Less(t, waited, delay+5*time.Second, "at the retry's due time, not at the sweep 20 s later")
	case <-time.After(15 * time.Second):
		t.Fatal("the due retry was not found before the sweep")
	}
	require.Eventually(t, func() bool { return get(t, tr, "flaky").Status == Success }, 10*time.Second, 10*time.Millisecond)
}

// TestIdleFindsExpiredLease: a task whose worker died is taken over once
// its lease expires, not at the next sweep of the Running partitions: the
// pool read the lease's expiry when it found nothing due there.
func TestIdleFindsExpiredLease(t *testing.T) {
	t.Parallel()
	cfg := config(t)
	cfg.Lease = 2 * time.Second
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(context.Background(), ddbtrack.NewTask{ID: "orphan"}))
	// The worker dies holding the task: runtime.Goexit ends fn's
	// goroutine, so nothing is recorded and the lease is not renewed.
	dead := make(chan struct{})
	claimed := time.Now() // The lease runs out Lease after the claim, which is later.
	go func() {
		defer close(dead)
		_ = worker(t, cfg, "dying").Start(context.Background(), "orphan", func(context.Context, *ddbtrack.Task[Step]) error {
			runtime.Goexit()
			return nil
		})
	}()
	<-dead
	require.Equal(t, InProgress, get(t, tr, "orphan").Status)

	const poll = time.Second // A sweep every 20 s.
	_, started := idlePool(t, cfg, ddbtrack.ProcessOptions[Step]{PollInterval: poll}, ok)
	select {
	case id := <-started:
		require.Equal(t, "orphan", id, "only the orphan is taken over")
		took := time.Since(claimed)
		require.GreaterOrEqual(t, took, cfg.Lease, "not before the lease expires")
		require.Less(t, took, cfg.Lease+5*time.Second, "when the lease expires, not at the sweep 20 s later")
	case <-time.After(15 * time.Second):
		t.Fatal("the expired lease was not found before the sweep")
	}
}
