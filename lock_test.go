package ddbtrack_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// TestHeartbeatKeepsLongTaskLocked: a task that runs for three times its
// lease keeps it, because the heartbeat renews it; another worker is
// refused throughout, and the result is recorded. Time is the injected
// clock's, moved on by a third of the lease after each renewal: a loaded
// machine may slow the renewals, but what the lease's clock sees is the
// heartbeat's work, not the machine's speed.
func TestHeartbeatKeepsLongTaskLocked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	cfg.Lease = shortLease(300 * time.Millisecond) // Real time between renewals: 100 ms.
	tr := newTracker(t, cfg)
	counted := &completions{Client: ddbtracktest.Client(t)}
	holder, err := ddbtrack.New(counted, cfg)
	require.NoError(t, err)
	other := worker(t, cfg, "other")
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "long"}))

	err = holder.Start(ctx, "long", func(ctx context.Context, task *ddbtrack.Task[Step]) error {
		claimed := counted.updates.Load()
		for beat := int64(1); beat <= 9; beat++ {
			for counted.updates.Load() < claimed+beat {
				select {
				case <-ctx.Done():
					t.Fatalf("fn's context was cancelled: %v", context.Cause(ctx))
				case <-time.After(5 * time.Millisecond):
				}
			}
			clk.Advance(cfg.Lease / 3)
			require.ErrorIs(t, other.Start(ctx, "long", ok), ddbtrack.ErrTaskLocked)
		}
		return task.SetOutput("done")
	})
	require.NoError(t, err)
	task := get(t, tr, "long")
	require.Equal(t, Success, task.Status)
	require.Equal(t, int64(1), task.Fence, "nobody else claimed it")
}

// TestLeaseLostCancelsFunction: when another worker takes the task over,
// the next renewal is refused, fn's context is cancelled with cause
// ErrLeaseLost, and nothing of the stale attempt is written.
func TestLeaseLostCancelsFunction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	cfg.Lease = 600 * time.Millisecond
	tr := newTracker(t, cfg)
	b := worker(t, cfg, "worker-b")
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))

	err := tr.Start(ctx, "t", func(ctx context.Context, task *ddbtrack.Task[Step]) error {
		// The lease runs out by the shared clock, and B takes over while
		// A is still running.
		clk.Advance(time.Minute)
		require.NoError(t, b.Start(context.Background(), "t", func(_ context.Context, bt *ddbtrack.Task[Step]) error {
			return bt.SetOutput("from b")
		}))
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
			t.Fatal("fn's context was not cancelled after the lease was lost")
		}
		require.ErrorIs(t, context.Cause(ctx), ddbtrack.ErrLeaseLost)
		require.NoError(t, task.SetOutput("from a"))
		return nil
	})
	require.ErrorIs(t, err, ddbtrack.ErrLeaseLost)
	task := get(t, tr, "t")
	require.Equal(t, Success, task.Status)
	var out string
	require.NoError(t, task.UnmarshalOutput(&out))
	require.Equal(t, "from b", out)
}

// TestRelease: a function that returns ErrRelease puts the task back where
// it was claimed from, with the attempt not counted; so does a cancelled
// context with ReleaseOnCancel.
func TestRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	notYet := func(context.Context, *ddbtrack.Task[Step]) error {
		return errors.Join(errors.New("input not ready"), ddbtrack.ErrRelease)
	}

	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "pending"}))
	err := tr.Start(ctx, "pending", notYet)
	require.ErrorIs(t, err, ddbtrack.ErrRelease, "Start returns fn's error")
	task := get(t, tr, "pending")
	require.Equal(t, Todo, task.Status)
	require.Equal(t, 0, task.Attempts)
	require.Equal(t, int64(1), task.Fence, "the fence never goes down")
	require.Empty(t, task.LeaseOwner)
	require.Empty(t, task.Errors, "a release is not a failure")

	// A failed task goes back to Failed with its count as it was.
	require.Error(t, tr.Start(ctx, "pending", func(context.Context, *ddbtrack.Task[Step]) error { return errors.New("no") }))
	require.ErrorIs(t, tr.Start(ctx, "pending", notYet), ddbtrack.ErrRelease)
	task = get(t, tr, "pending")
	require.Equal(t, Failed, task.Status)
	require.Equal(t, 1, task.Attempts)
	require.Len(t, task.Errors, 1)

	// ReleaseOnCancel: the caller's cancellation is not the task's fault.
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "cancelled"}))
	cctx, cancel := context.WithCancel(ctx)
	err = tr.StartWith(cctx, "cancelled", ddbtrack.StartOptions{ReleaseOnCancel: true}, func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
	task = get(t, tr, "cancelled")
	require.Equal(t, Todo, task.Status)
	require.Equal(t, 0, task.Attempts)
	require.NoError(t, tr.Start(ctx, "cancelled", ok), "a released task can be started again")
}

// TestReleaseAfterTakeover: a task claimed from a dead worker's expired
// lease cannot go back to Running without a lease, so a release records
// the dead attempt and leaves the task Failed.
func TestReleaseAfterTakeover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	cfg.Lease = time.Minute
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))

	b := worker(t, cfg, "worker-b")
	err := tr.Start(ctx, "t", func(context.Context, *ddbtrack.Task[Step]) error {
		clk.Advance(2 * time.Minute) // This worker "dies"; B finds the lease expired.
		return b.Start(ctx, "t", func(context.Context, *ddbtrack.Task[Step]) error { return ddbtrack.ErrRelease })
	})
	require.ErrorIs(t, err, ddbtrack.ErrRelease)

	task := get(t, tr, "t")
	require.Equal(t, Failed, task.Status)
	require.Equal(t, 1, task.Attempts, "the dead attempt counts, the released one does not")
	require.Len(t, task.Errors, 1)
	require.Contains(t, task.LastError, "abandoned")
	require.Empty(t, task.LeaseOwner)
}

// TestStartOptions: per-call lease and attempt limit, and refusals of
// options that cannot work.
func TestStartOptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	cfg.MaxAttempts = 5
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))

	opts := ddbtrack.StartOptions{Lease: 42 * time.Second, MaxAttempts: 1}
	err := tr.StartWith(ctx, "t", opts, func(_ context.Context, task *ddbtrack.Task[Step]) error {
		require.Equal(t, clk.Now().Add(42*time.Second), task.LeaseExpiresAt)
		require.Equal(t, clk.Now().Add(42*time.Second), get(t, tr, "t").LeaseExpiresAt)
		return errors.New("no")
	})
	require.EqualError(t, err, "no")
	require.Equal(t, Ignore, get(t, tr, "t").Status, "one failure reaches a limit of one")

	for _, bad := range []ddbtrack.StartOptions{{Lease: -time.Second}, {Lease: time.Millisecond}, {MaxAttempts: -1}} {
		err := tr.StartWith(ctx, "t", bad, ok)
		require.ErrorIs(t, err, ddbtrack.ErrInvalidOption)
		require.ErrorContains(t, err, "StartOptions.")
	}
}

// TestHeartbeatStopsBeforeStartReturns checks every way out of Start for a
// heartbeat goroutine left behind. It does not call t.Parallel: it counts
// goroutines across the whole binary, and parallel tests only run once the
// sequential ones are done.
func TestHeartbeatStopsBeforeStartReturns(t *testing.T) {
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	// A lease long enough that a heartbeat left running would still be
	// waiting for its first beat when the check looks for it.
	cfg.Lease = 3 * time.Second
	counted := reqcount.New(ddbtracktest.Client(t))
	tr, err := ddbtrack.New(counted, cfg)
	require.NoError(t, err)
	require.NoError(t, tr.CreateTable(ctx))
	b := worker(t, cfg, "worker-b")

	pause := func(ctx context.Context) error {
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
		return nil
	}
	cases := map[string]func(ctx context.Context, task *ddbtrack.Task[Step]) error{
		"success": func(ctx context.Context, _ *ddbtrack.Task[Step]) error { return pause(ctx) },
		"failure": func(ctx context.Context, _ *ddbtrack.Task[Step]) error { _ = pause(ctx); return errors.New("no") },
		"release": func(ctx context.Context, _ *ddbtrack.Task[Step]) error { _ = pause(ctx); return ddbtrack.ErrRelease },
		"panic":   func(ctx context.Context, _ *ddbtrack.Task[Step]) error { _ = pause(ctx); panic("boom") },
		"lease lost": func(ctx context.Context, task *ddbtrack.Task[Step]) error {
			clk.Advance(time.Minute)
			require.NoError(t, b.Start(context.Background(), task.ID, ok))
			<-ctx.Done()
			return nil
		},
	}
	for name, fn := range cases {
		require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: name}))
		var opts ddbtrack.StartOptions
		if name == "lease lost" {
			opts.Lease = 30 * time.Millisecond // A beat must notice the takeover.
		}
		func() {
			defer func() { _ = recover() }()
			_ = tr.StartWith(ctx, name, opts, fn)
		}()
		require.Zero(t, heartbeatsAfterExit(), "a heartbeat outlived Start (%s)", name)
	}
	require.ErrorIs(t, tr.Start(ctx, "success", ok), ddbtrack.ErrTaskSucceeded)
	require.Zero(t, heartbeatsAfterExit())
	// A heartbeat starts its goroutine only when its first renewal is due,
	// so one that Start failed to stop would show only then, by renewing.
	before := counted.Counts()
	time.Sleep(cfg.Lease/3 + 200*time.Millisecond)
	require.Equal(t, before, counted.Counts(), "a request was sent after Start returned")
}

// heartbeatsAfterExit counts heartbeat goroutines once those that have
// finished have had time to exit. Start waits for the heartbeat to close
// its done channel, but the goroutine is still on the stack for a moment
// after that, long enough for a loaded CI machine to see it. A leaked
// heartbeat renews every beat (a second here) until its lease is lost, so
// a quarter of a second of grace cannot hide one.
func heartbeatsAfterExit() int {
	deadline := time.Now().Add(250 * time.Millisecond)
	for {
		n := heartbeats()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// heartbeats counts the goroutines running a lease heartbeat.
func heartbeats() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Count(string(buf), ").beat.func")
}
