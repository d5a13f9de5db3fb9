package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// TestExponential: the default retry delay doubles from its base up to its
// cap, and its jitter only lengthens a delay, by at most half.
func TestExponential(t *testing.T) {
	t.Parallel()
	delay := ddbtrack.Exponential(30*time.Second, 5*time.Minute)
	for _, c := range []struct {
		n    int
		base time.Duration
	}{
		{1, 30 * time.Second}, {2, time.Minute}, {3, 2 * time.Minute}, {4, 4 * time.Minute},
		{5, 5 * time.Minute}, {6, 5 * time.Minute}, {100, 5 * time.Minute},
	} {
		lo, hi := c.base, c.base+c.base/2
		seen := map[time.Duration]bool{}
		for range 200 {
			d := delay(c.n)
			require.GreaterOrEqual(t, d, lo, "attempt %d", c.n)
			require.LessOrEqual(t, d, hi, "attempt %d", c.n)
			seen[d] = true
		}
		require.Greater(t, len(seen), 100, "attempt %d: the delays are spread at random", c.n)
	}
	require.Zero(t, ddbtrack.Exponential(0, 0)(3), "a zero base retries at once")
}

// TestRetryDelay: a failure makes the task due only after the delay; a
// claim before that is refused without running fn, and says when the task
// is due; after it, the task runs.
func TestRetryDelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	cfg.RetryDelay = func(n int) time.Duration { return time.Duration(n) * time.Minute }
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "flaky"}))

	fail := func(context.Context, *ddbtrack.Task[Step]) error { return errors.New("dependency down") }
	require.Error(t, tr.Start(ctx, "flaky", fail))
	failed := get(t, tr, "flaky")
	require.Equal(t, Failed, failed.Status)
	require.Equal(t, clk.Now().Add(time.Minute), failed.DueAt, "due one RetryDelay(1) after the failure")

	ran := false
	err := tr.Start(ctx, "flaky", func(context.Context, *ddbtrack.Task[Step]) error { ran = true; return nil })
	require.ErrorIs(t, err, ddbtrack.ErrTaskNotDue)
	require.False(t, ran, "a task that is not due does not run")
	var te *ddbtrack.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, failed.DueAt, te.DueAt)
	require.Contains(t, err.Error(), "due at "+failed.DueAt.UTC().Format(time.RFC3339Nano))
	require.Equal(t, failed.Fence, get(t, tr, "flaky").Fence, "a refused claim changes nothing")

	clk.Advance(time.Minute - time.Millisecond)
	require.ErrorIs(t, tr.Start(ctx, "flaky", fail), ddbtrack.ErrTaskNotDue)
	clk.Advance(time.Millisecond)
	require.Error(t, tr.Start(ctx, "flaky", fail))
	require.Equal(t, clk.Now().Add(2*time.Minute), get(t, tr, "flaky").DueAt, "the second failure waits RetryDelay(2)")

	// A per-call policy overrides the Config's.
	clk.Advance(2 * time.Minute)
	err = tr.StartWith(ctx, "flaky", ddbtrack.StartOptions{RetryDelay: noDelay, MaxAttempts: 5}, fail)
	require.EqualError(t, err, "dependency down")
	require.Equal(t, clk.Now(), get(t, tr, "flaky").DueAt)
	require.NoError(t, tr.Start(ctx, "flaky", ok))

	// The default protects a flapping dependency from being hammered.
	def := config(t)
	def.RetryDelay = nil
	d, err := ddbtrack.New(ddbtracktest.Client(t), def)
	require.NoError(t, err)
	require.NotNil(t, d.Config().RetryDelay)
	require.GreaterOrEqual(t, d.Config().RetryDelay(1), 30*time.Second)
}

// TestSchedule: a task created for later is not claimable until then, by
// Start or by Process; Reset and Requeue make a task due now; a schedule
// too far in the past or future is refused.
func TestSchedule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	tr := newTracker(t, cfg)
	later := clk.Now().Add(time.Hour)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "later", DueAt: later}))
	_, err := tr.CreateMany(ctx, []ddbtrack.NewTask{{ID: "now"}, {ID: "tomorrow", DueAt: clk.Now().Add(24 * time.Hour)}})
	require.NoError(t, err)
	require.Equal(t, later, get(t, tr, "later").DueAt)
	require.ErrorIs(t, tr.Start(ctx, "later", ok), ddbtrack.ErrTaskNotDue)

	// Unfinished lists scheduled tasks with their due times; a query with
	// Since lists the scheduled ones only.
	var due []string
	for task, err := range tr.Query(ctx, ddbtrack.QueryOptions[Step]{Unfinished: true}) {
		require.NoError(t, err)
		due = append(due, fmt.Sprintf("%s@%s", task.ID, task.DueAt.Sub(clk.Now())))
	}
	require.Equal(t, []string{"now@0s", "later@1h0m0s", "tomorrow@24h0m0s"}, due)
	scheduled := qIDs(t, tr.Query(ctx, ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo}, Since: clk.Now().Add(time.Millisecond)}))
	require.Equal(t, []string{"later", "tomorrow"}, scheduled)

	// Process runs only what is due: "later" once the clock reaches it,
	// "tomorrow" not at all.
	var runs atomic.Int32
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := tr.Process(pctx, func(_ context.Context, task *ddbtrack.Task[Step]) error {
			runs.Add(1)
			return nil
		}, ddbtrack.ProcessOptions[Step]{Mode: ddbtrack.Service, PollInterval: 10 * time.Millisecond})
		done <- err
	}()
	require.Eventually(t, func() bool { return get(t, tr, "now").Status == Success }, 10*time.Second, 5*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // Polls that must not find "later".
	require.Equal(t, Todo, get(t, tr, "later").Status)
	clk.Advance(time.Hour)
	require.Eventually(t, func() bool { return get(t, tr, "later").Status == Success }, 10*time.Second, 5*time.Millisecond)
	stop()
	require.ErrorIs(t, <-done, context.Canceled)
	require.EqualValues(t, 2, runs.Load())
	require.Equal(t, Success, get(t, tr, "later").Status)
	require.Equal(t, Todo, get(t, tr, "tomorrow").Status, "a task not due is not run")

	// Reset makes a scheduled task due now.
	require.NoError(t, tr.Reset(ctx, "tomorrow"))
	require.Equal(t, clk.Now(), get(t, tr, "tomorrow").DueAt)
	require.NoError(t, tr.Start(ctx, "tomorrow", ok))

	// Requeue makes a task waiting out its retry delay due now.
	slow := cfg
	slow.RetryDelay = func(int) time.Duration { return time.Hour }
	st, err := ddbtrack.New(ddbtracktest.Client(t), slow)
	require.NoError(t, err)
	require.NoError(t, st.Create(ctx, ddbtrack.NewTask{ID: "backing-off"}))
	require.Error(t, st.Start(ctx, "backing-off", func(context.Context, *ddbtrack.Task[Step]) error { return errors.New("no") }))
	require.ErrorIs(t, st.Start(ctx, "backing-off", ok), ddbtrack.ErrTaskNotDue)
	clk.Advance(time.Millisecond)
	rq, err := st.Requeue(ctx, ddbtrack.RequeueOptions[Step]{})
	require.NoError(t, err)
	require.Equal(t, 1, rq.Moved)
	require.NoError(t, st.Start(ctx, "backing-off", ok))

	// Bad schedules are refused before anything is written.
	for _, bad := range []time.Time{
		time.Date(1970, 1, 20, 0, 0, 0, 0, time.UTC), // Seconds passed as milliseconds.
		clk.Now().Add(11 * 365 * 24 * time.Hour),
	} {
		err := tr.Create(ctx, ddbtrack.NewTask{ID: "bad", DueAt: bad})
		var oe *ddbtrack.OptionError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, "NewTask.DueAt", oe.Field)
		require.Contains(t, oe.Fix, "ten years")
		_, err = tr.CreateMany(ctx, []ddbtrack.NewTask{{ID: "fine"}, {ID: "bad", DueAt: bad}})
		require.ErrorAs(t, err, &oe)
		require.Equal(t, "tasks[1].DueAt", oe.Field)
	}
	_, err = tr.Get(ctx, "fine")
	require.ErrorIs(t, err, ddbtrack.ErrTaskNotFound, "a bad task in a batch writes nothing")
}

// TestSnooze: a function can put its task back until later without
// counting the attempt.
func TestSnooze(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "waits"}))
	err := tr.Start(ctx, "waits", func(context.Context, *ddbtrack.Task[Step]) error {
		return ddbtrack.Snooze(10 * time.Minute)
	})
	require.ErrorIs(t, err, ddbtrack.ErrRelease)
	task := get(t, tr, "waits")
	require.Equal(t, Todo, task.Status, "back where it was claimed from")
	require.Zero(t, task.Attempts, "a snooze does not count the attempt")
	require.Empty(t, task.LastError)
	require.Equal(t, clk.Now().Add(10*time.Minute), task.DueAt)
	require.ErrorIs(t, tr.Start(ctx, "waits", ok), ddbtrack.ErrTaskNotDue)
	clk.Advance(10 * time.Minute)
	require.NoError(t, tr.Start(ctx, "waits", ok))

	// A negative snooze is a mistake in fn, recorded as its failure.
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "bad"}))
	err = tr.Start(ctx, "bad", func(context.Context, *ddbtrack.Task[Step]) error { return ddbtrack.Snooze(-time.Second) })
	require.ErrorIs(t, err, ddbtrack.ErrInvalidOption)
	require.NotErrorIs(t, err, ddbtrack.ErrRelease)
	require.Contains(t, get(t, tr, "bad").LastError, "Snooze was given -1s")
}

// TestAttemptTimeout: an attempt that runs past its timeout sees its
// context end, and is recorded as a failure that says so, to be retried.
func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.AttemptTimeout = 50 * time.Millisecond
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "slow"}))
	err := tr.Start(ctx, "slow", func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
		<-ctx.Done()
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	task := get(t, tr, "slow")
	require.Equal(t, Failed, task.Status)
	require.Equal(t, 1, task.Attempts)
	require.Equal(t, "attempt timed out after 50ms: context deadline exceeded", task.LastError)

	// The per-call timeout overrides it; a function that finishes in time
	// succeeds.
	err = tr.StartWith(ctx, "slow", ddbtrack.StartOptions{Timeout: time.Minute}, func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
		deadline, ok := ctx.Deadline()
		require.True(t, ok)
		require.Greater(t, time.Until(deadline), 30*time.Second)
		return nil
	})
	require.NoError(t, err)

	_, err = tr.Process(ctx, ok, ddbtrack.ProcessOptions[Step]{Start: ddbtrack.StartOptions{Timeout: -time.Second}})
	var oe *ddbtrack.OptionError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "ProcessOptions.Start.Timeout", oe.Field)
}

// TestCancel cancels a task in each status.
func TestCancel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	cfg.RetryDelay = func(int) time.Duration { return time.Hour }
	var evs events
	cfg.OnEvent = evs.hook
	tr := newTracker(t, cfg)
	for _, id := range []string{"pending", "failed", "succeeded", "scheduled"} {
		require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: id}))
	}
	require.Error(t, tr.Start(ctx, "failed", func(context.Context, *ddbtrack.Task[Step]) error { return errors.New("no") }))
	require.NoError(t, tr.Start(ctx, "succeeded", ok))

	for _, id := range []string{"pending", "failed"} {
		require.NoError(t, tr.Cancel(ctx, id, "superseded by job 42"))
		task := get(t, tr, id)
		require.Equal(t, Ignore, task.Status, id)
		require.Equal(t, clk.Now(), task.CancelledAt, id)
		require.Equal(t, "superseded by job 42", task.CancelReason, id)
		require.Equal(t, "cancelled: superseded by job 42", task.LastError, id)
		require.ErrorIs(t, tr.Start(ctx, id, ok), ddbtrack.ErrTaskIgnored, "a cancelled task does not run")
	}
	// Finished and missing tasks are refused, each with its reason.
	require.ErrorIs(t, tr.Cancel(ctx, "succeeded", "late"), ddbtrack.ErrTaskSucceeded)
	require.ErrorIs(t, tr.Cancel(ctx, "pending", "again"), ddbtrack.ErrTaskIgnored)
	require.ErrorIs(t, tr.Cancel(ctx, "missing", "why"), ddbtrack.ErrTaskNotFound)
	require.ErrorIs(t, tr.Cancel(ctx, "scheduled", ""), ddbtrack.ErrInvalidOption, "a cancel needs a reason")

	// Reset undoes a cancel.
	require.NoError(t, tr.Reset(ctx, "pending"))
	task := get(t, tr, "pending")
	require.Zero(t, task.CancelledAt)
	require.Empty(t, task.CancelReason)
	require.NoError(t, tr.Start(ctx, "pending", ok))
}

// TestCancelRunning: a cancel of a task that another worker runs reaches
// that worker at its next renewal, which cancels its function's context
// with a cause matching ErrCancelled, and the task ends Ignored, recorded
// as cancelled. The renewals are counted rather than timed, so that a
// loaded machine cannot make the test fail.
func TestCancelRunning(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.Lease = 600 * time.Millisecond
	var evs events
	wcfg := cfg
	wcfg.OnEvent = evs.hook
	tr := newTracker(t, cfg)
	counted := &completions{Client: ddbtracktest.Client(t)}
	wcfg.Owner = "worker"
	w, err := ddbtrack.New(counted, wcfg)
	require.NoError(t, err)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "long"}))

	claimed := make(chan struct{})
	asked := make(chan int64, 1)
	var renewals int64
	var cause error
	done := make(chan error, 1)
	go func() {
		done <- w.Start(ctx, "long", func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
			close(claimed)
			<-ctx.Done()
			renewals, cause = counted.updates.Load()-<-asked, context.Cause(ctx)
			return ctx.Err()
		})
	}()
	<-claimed
	require.NoError(t, tr.Cancel(ctx, "long", "operator said stop"))
	asked <- counted.updates.Load()
	require.Equal(t, InProgress, get(t, tr, "long").Status, "the worker records the cancel, not Cancel")
	err = <-done
	require.ErrorIs(t, err, ddbtrack.ErrCancelled)
	require.ErrorIs(t, cause, ddbtrack.ErrCancelled)
	// The renewal that sees the cancel is the next one, or the one after
	// it if one was already in flight when the cancel landed.
	require.LessOrEqual(t, renewals, int64(2), "the cancel reached the function at its next renewal")

	task := get(t, tr, "long")
	require.Equal(t, Ignore, task.Status)
	require.Equal(t, "operator said stop", task.CancelReason)
	require.Equal(t, "cancelled: operator said stop", task.LastError)
	require.Empty(t, task.LeaseOwner)
	cancelled := evs.of(ddbtrack.EventCancelled)
	require.Len(t, cancelled, 1)
	require.Equal(t, Ignore, cancelled[0].Task.Status)
	require.Empty(t, evs.of(ddbtrack.EventFailed), "a cancel is not a failure")
}

// TestCancelRacesSuccess: a cancel and a success race for a running task;
// whichever reaches DynamoDB first wins, and the record says which.
func TestCancelRacesSuccess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	for _, id := range []string{"cancel-first", "success-first"} {
		require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: id}))
	}
	// The cancel lands while fn runs, before the success write: the success
	// is refused and the cancellation recorded, output and all dropped.
	err := tr.Start(ctx, "cancel-first", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		require.NoError(t, tr.Cancel(ctx, "cancel-first", "too late to be useful"))
		return task.SetOutput("finished anyway")
	})
	require.ErrorIs(t, err, ddbtrack.ErrCancelled)
	task := get(t, tr, "cancel-first")
	require.Equal(t, Ignore, task.Status)
	require.Equal(t, "too late to be useful", task.CancelReason)
	var out string
	require.NoError(t, task.UnmarshalOutput(&out))
	require.Empty(t, out, "the cancelled attempt's output is not stored")

	// The success lands first: the cancel finds a finished task.
	require.NoError(t, tr.Start(ctx, "success-first", ok))
	require.ErrorIs(t, tr.Cancel(ctx, "success-first", "too late"), ddbtrack.ErrTaskSucceeded)
	require.Equal(t, Success, get(t, tr, "success-first").Status)
	require.Zero(t, get(t, tr, "success-first").CancelledAt)
}

// TestCancelledTaskOfDeadWorker: a task cancelled while its worker was
// dead is recorded as cancelled by the worker that takes it over, without
// running it.
func TestCancelledTaskOfDeadWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "orphan"}))
	// The worker dies once the cancel is stored: runtime.Goexit ends its
	// function's goroutine, so it records nothing and its lease runs out.
	// Both workers keep the default FinishTimeout: with a short one, a
	// loaded server's slow answer to a claim or to the cancellation's
	// record leaves the task Running under a lease that the stopped clock
	// never expires, which is not the case under test.
	dying := worker(t, cfg, "dying")
	cancelErr := errors.New("the dying worker's function never ran")
	dead := make(chan struct{})
	go func() {
		defer close(dead)
		_ = dying.Start(ctx, "orphan", func(context.Context, *ddbtrack.Task[Step]) error {
			cancelErr = tr.Cancel(ctx, "orphan", "no longer wanted")
			runtime.Goexit()
			return nil
		})
	}()
	<-dead
	require.NoError(t, cancelErr)
	task := get(t, tr, "orphan")
	require.Equal(t, InProgress, task.Status, "the dead worker recorded nothing")
	require.Equal(t, "no longer wanted", task.CancelReason, "the cancel was stored as a request to the dead worker")
	clk.Advance(tr.Config().Lease + time.Second)

	ran := false
	res := ddbtracktest.Drain(t, worker(t, cfg, "successor"), func(context.Context, *ddbtrack.Task[Step]) error {
		ran = true
		return nil
	})
	require.False(t, ran, "a cancelled task is not run")
	require.Equal(t, 1, res.Cancelled)
	task = get(t, tr, "orphan")
	require.Equal(t, Ignore, task.Status)
	require.Equal(t, "no longer wanted", task.CancelReason)
	require.True(t, strings.HasPrefix(task.LastError, "cancelled: "))
}
