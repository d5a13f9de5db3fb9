package ddbtrack_test

// Lost-response tests for issue 9, points 1 to 5. Each places one fault
// with the fault proxy at the moment that matters, on whichever server the
// suite runs against, and checks what the caller is told and what the table
// holds. The library calls they make that plan.md changes go through
// libcalls_test.go; the proxy and clients come from faultrig_test.go.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/dev/faultproxy"
)

// TestLostOutcomeThenClaimed (issue 9, point 1): worker A's failure or
// release is written, its response is lost, and worker B claims the task
// before A's retry reaches the server. A's write landed, so Start must
// return fn's error alone, and Process must count the outcome A recorded,
// not a lost lease.
func TestLostOutcomeThenClaimed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		fnErr error
		pool  bool
	}{
		{"failure via Start", errors.New("attempt failed"), false},
		{"failure via Process", errors.New("attempt failed"), true},
		{"release via Start", fmt.Errorf("not ready yet: %w", ddbtrack.ErrRelease), false},
		{"release via Process", fmt.Errorf("not ready yet: %w", ddbtrack.ErrRelease), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := config(t)
			tr := newTracker(t, cfg)
			require.NoError(t, createTask(ctx, tr, "t"))
			rg := newRig(t, 11)
			a := trackerOn(t, rg.faulty(t), cfg, "worker-a")
			b := trackerOn(t, rg.clean(t), cfg, "worker-b")

			// B runs its whole attempt inside the proxy, after A's lost
			// response and before A's retry is forwarded. The proxy holds
			// only A's requests meanwhile; B's go around it.
			var stolen atomic.Bool
			steal := sync.OnceFunc(func() {
				err := b.Start(ctx, "t", ok)
				if err != nil {
					t.Errorf("worker B could not claim the task after A's write had landed: %v", err)
					return
				}
				stolen.Store(true)
			})
			rg.proxy.Set(
				faultproxy.Rule{Match: isOutcome, Fault: faultproxy.Drop, Count: 1},
				faultproxy.Rule{Match: func(op string, body []byte) bool {
					if isOutcome(op, body) {
						steal()
					}
					return false // Forward the retry untouched.
				}},
			)
			runs := 0
			fn := func(context.Context, *ddbtrack.Task[Step]) error {
				runs++
				return c.fnErr
			}

			var startErr error
			var counts poolCounts
			var mu sync.Mutex
			kinds := map[string]int{}
			if c.pool {
				var err error
				counts, err = runPool(ctx, a, fn, poolOptions{Concurrency: 1, PollInterval: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
					func(ev poolEvent) {
						mu.Lock()
						defer mu.Unlock()
						kinds[ev.Kind]++
					})
				require.NoError(t, err)
			} else {
				startErr = a.Start(ctx, "t", fn)
			}

			require.Equal(t, 1, runs)
			require.True(t, stolen.Load(), "the scenario did not happen: A sent no second outcome write after the lost response, so B never claimed in between")
			task := get(t, tr, "t")
			require.Equal(t, Success, task.Status, "B's attempt")
			require.Equal(t, int64(2), task.Fence, "A's claim and B's")
			if errors.Is(c.fnErr, ddbtrack.ErrRelease) {
				require.Empty(t, task.Errors, "a release records nothing")
			} else {
				require.Len(t, task.Errors, 1, "A's failure landed before B claimed, so B's success keeps it")
				require.Equal(t, c.fnErr.Error(), task.Errors[0].Message)
			}

			if !c.pool {
				require.Falsef(t, isLeaseLost(startErr),
					"A's outcome was recorded before B claimed the task, yet Start reported a lost lease: %v", startErr)
				require.Equal(t, c.fnErr, startErr, "Start must return fn's error alone")
				return
			}
			mu.Lock()
			defer mu.Unlock()
			require.Zerof(t, counts.LeaseLost,
				"A's outcome was recorded before B claimed the task, yet Process counted a lost lease: counts %+v, hook calls %v", counts, kinds)
			require.Zero(t, kinds[evLeaseLost], "hook calls %v", kinds)
			if errors.Is(c.fnErr, ddbtrack.ErrRelease) {
				require.Equal(t, 1, counts.Released, "counts %+v", counts)
			} else {
				require.Equal(t, 1, counts.Failed, "counts %+v", counts)
				require.Equal(t, 1, kinds[evFailed], "hook calls %v", kinds)
			}
		})
	}
}

// TestLostCreateAndDeleteResponses (issue 9, point 2): Create, CreateMany
// and Delete whose own write landed but whose response was lost report
// success, as Reset, Requeue and DeleteByStatus do. The SDK's retry then
// meets the call's own write; a second call still sees the task as it is.
func TestLostCreateAndDeleteResponses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(t *testing.T) (*ddbtrack.Tracker[Step], *ddbtrack.Tracker[Step], *faultproxy.Proxy) {
		cfg := config(t)
		tr := newTracker(t, cfg)
		rg := newRig(t, 21)
		return tr, trackerOn(t, rg.faulty(t), cfg, "loader"), rg.proxy
	}

	t.Run("Create", func(t *testing.T) {
		t.Parallel()
		tr, w, proxy := setup(t)
		proxy.Set(faultproxy.Rule{Op: "PutItem", Fault: faultproxy.Drop, Count: 1})
		err := createTask(ctx, w, "t")
		require.Equal(t, 1, proxy.Injected()[faultproxy.Drop])
		require.NoError(t, err, "this call created the task; only its response was lost")
		require.Equal(t, Todo, get(t, tr, "t").Status)
		require.ErrorIs(t, createTask(ctx, w, "t"), ddbtrack.ErrTaskExists, "a second Create finds the task")
	})

	t.Run("CreateMany", func(t *testing.T) {
		t.Parallel()
		tr, w, proxy := setup(t)
		ids := []string{"a", "b", "c", "d", "e"}
		proxy.Set(faultproxy.Rule{Op: "PutItem", Match: forTask("c", nil), Fault: faultproxy.Drop, Count: 1})
		created, existing, err := createMany(ctx, w, ids)
		require.NoError(t, err)
		require.Equal(t, 1, proxy.Injected()[faultproxy.Drop])
		require.Emptyf(t, existing, "this call created every task; only the response for c was lost (created %v)", created)
		require.ElementsMatch(t, ids, created)
		require.Equal(t, Todo, get(t, tr, "c").Status)
		created, existing, err = createMany(ctx, w, ids)
		require.NoError(t, err)
		require.Empty(t, created, "a second CreateMany finds every task")
		require.ElementsMatch(t, ids, existing)
	})

	t.Run("Delete", func(t *testing.T) {
		t.Parallel()
		tr, w, proxy := setup(t)
		require.NoError(t, createTask(ctx, tr, "t"))
		proxy.Set(faultproxy.Rule{Op: "DeleteItem", Fault: faultproxy.Drop, Count: 1})
		err := w.Delete(ctx, "t")
		require.Equal(t, 1, proxy.Injected()[faultproxy.Drop])
		require.NoError(t, err, "this call deleted the task; only its response was lost")
		_, err = tr.Get(ctx, "t")
		require.ErrorIs(t, err, ddbtrack.ErrTaskNotFound)
		require.ErrorIs(t, w.Delete(ctx, "t"), ddbtrack.ErrTaskNotFound, "a second Delete finds no task")
	})
}

// TestOutcomeOutlastsShortOutage (issue 9, point 3): FinishTimeout bounds
// the outcome write, so an outage shorter than it must not lose the
// outcome; and the lease must stay alive until the outcome is written, or
// another worker may take over a task whose result is on its way.
func TestOutcomeOutlastsShortOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("total outage", func(t *testing.T) {
		t.Parallel()
		cfg := config(t)
		cfg.FinishTimeout = 4 * time.Second
		// A quarter of FinishTimeout leaves the retries plenty of room
		// after the outage, and a lease twice as long as FinishTimeout
		// cannot run out during it, renewed or not.
		outage := cfg.FinishTimeout / 4
		cfg.Lease = 2 * cfg.FinishTimeout
		tr := newTracker(t, cfg)
		require.NoError(t, createTask(ctx, tr, "t"))
		rg := newRig(t, 31)
		a := trackerOn(t, rg.faulty(t), cfg, "worker-a")

		// The first outcome write starts the outage: from then on every
		// request is cut, until the outage is over.
		var until atomic.Int64
		rg.proxy.Set(faultproxy.Rule{Fault: faultproxy.Cut, Match: func(op string, body []byte) bool {
			if until.Load() == 0 && isOutcome(op, body) {
				until.Store(time.Now().Add(outage).UnixNano())
			}
			return time.Now().UnixNano() < until.Load()
		}})
		runs := 0
		err := a.Start(ctx, "t", func(_ context.Context, task *ddbtrack.Task[Step]) error {
			runs++
			return task.SetOutput("done")
		})
		require.NotZero(t, rg.proxy.Injected()[faultproxy.Cut], "the outage happened")
		require.NoErrorf(t, err, "an outage of %v, shorter than FinishTimeout (%v), began at the outcome write; the write must be retried until it lands",
			outage, cfg.FinishTimeout)
		task := get(t, tr, "t")
		require.Equal(t, Success, task.Status)
		require.Equal(t, int64(1), task.Fence)
		require.Equal(t, 1, runs)
	})

	t.Run("slow outcome write keeps its lease", func(t *testing.T) {
		t.Parallel()
		cfg := config(t)
		// Long enough that renewals every Lease/3 keep it on a loaded
		// machine.
		cfg.Lease = 4 * time.Second
		cfg.FinishTimeout = 3 * cfg.Lease
		tr := newTracker(t, cfg)
		require.NoError(t, createTask(ctx, tr, "t"))
		rg := newRig(t, 32)
		a := trackerOn(t, rg.faulty(t), cfg, "worker-a")
		b := trackerOn(t, rg.clean(t), cfg, "worker-b")

		// The first two outcome writes hang for three quarters of the
		// lease each before their connection is cut, unseen by the server,
		// so the outcome lands after one and a half leases. Renewals pass.
		hang := 3 * cfg.Lease / 4
		rg.proxy.Set(faultproxy.Rule{Match: isOutcome, Fault: faultproxy.Hang, Delay: hang, Count: 2})

		// Meanwhile B tries to claim the task ten times a lease.
		var bRan atomic.Bool
		// When A's fn returned and when B's claim landed, in Unix
		// nanoseconds.
		var returned, claimed atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(cfg.Lease / 10)
			defer tick.Stop()
			for !bRan.Load() {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				_ = b.Start(ctx, "t", func(context.Context, *ddbtrack.Task[Step]) error {
					claimed.Store(time.Now().UnixNano())
					bRan.Store(true)
					return nil
				})
			}
		})
		err := a.Start(ctx, "t", func(_ context.Context, task *ddbtrack.Task[Step]) error {
			returned.Store(time.Now().UnixNano())
			return nil
		})
		close(stop)
		wg.Wait()
		require.Equal(t, 2, rg.proxy.Injected()[faultproxy.Hang], "both outcome writes were held")
		require.Falsef(t, bRan.Load(),
			"worker B claimed the task while A's outcome write was still being retried, %v after A's fn returned: nothing renewed A's lease of %v meanwhile (Start returned %v)",
			time.Duration(claimed.Load()-returned.Load()).Round(time.Millisecond), cfg.Lease, err)
		require.NoError(t, err)
		task := get(t, tr, "t")
		require.Equal(t, Success, task.Status)
		require.Equal(t, int64(1), task.Fence)
	})
}

// TestLostTakeoverClaimKeepsAbandonedEntry (issue 9, point 4): a claim
// that takes over a dead worker's expired lease writes "abandoned" into the
// history for the dead attempt, even when the claim's response was lost and
// the claim was recognised by its own token on the retry.
func TestLostTakeoverClaimKeepsAbandonedEntry(t *testing.T) {
	t.Parallel()
	for _, lost := range []bool{false, true} {
		name := "claim response delivered"
		if lost {
			name = "claim response lost"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg, clk := clockedConfig(t)
			cfg.Lease = time.Minute
			tr := newTracker(t, cfg)
			require.NoError(t, createTask(ctx, tr, "t"))

			// The first worker claims the task and dies before it writes
			// anything more: runtime.Goexit ends fn's goroutine, so Start
			// records nothing and its lease stays until it expires.
			dead := worker(t, cfg, "worker-dead")
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = dead.Start(ctx, "t", func(context.Context, *ddbtrack.Task[Step]) error {
					runtime.Goexit()
					return nil
				})
			}()
			<-done
			require.Equal(t, InProgress, get(t, tr, "t").Status)
			clk.Advance(cfg.Lease + time.Second)

			rg := newRig(t, 41)
			a := trackerOn(t, rg.faulty(t), cfg, "worker-a")
			if lost {
				rg.proxy.Set(faultproxy.Rule{Match: isClaim, Fault: faultproxy.Drop, Count: 1})
			}
			require.NoError(t, a.Start(ctx, "t", ok))
			if lost {
				require.Equal(t, 1, rg.proxy.Injected()[faultproxy.Drop], "the claim's response was lost")
			}

			task := get(t, tr, "t")
			require.Equal(t, Success, task.Status)
			require.Equal(t, int64(2), task.Fence, "the dead claim and the takeover")
			require.Lenf(t, task.Errors, 1, "the history must keep the dead worker's attempt as abandoned; it holds %+v", task.Errors)
			require.Equal(t, 1, task.Errors[0].Attempt)
			require.True(t, isAbandonedEntry(task.Errors[0].Message), task.Errors[0].Message)
			require.Contains(t, task.Errors[0].Message, "worker-dead")
		})
	}
}

// TestClaimRecognisedButReadFails (issue 9, point 5): a claim lands, its
// response is lost, and the SDK's retry is refused by the claim itself.
// Where the server does not send the item with the refusal (dynalite),
// ddbtrack reads it to see whose claim refused it, and here that read fails
// every time. Start must not leave the task Running under its own lease
// without running fn: it runs fn, or it releases the claim.
func TestClaimRecognisedButReadFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	// Long enough that a claim left behind is still held when the test
	// looks.
	cfg.Lease = time.Minute
	tr := newTracker(t, cfg)
	require.NoError(t, createTask(ctx, tr, "t"))
	rg := newRig(t, 51)
	a := trackerOn(t, rg.faulty(t), cfg, "worker-a")
	rg.proxy.Set(
		faultproxy.Rule{Match: isClaim, Fault: faultproxy.Drop, Count: 1},
		faultproxy.Rule{Op: "GetItem", Fault: faultproxy.Cut, Count: rigAttempts},
	)
	runs := 0
	err := a.Start(ctx, "t", func(context.Context, *ddbtrack.Task[Step]) error {
		runs++
		return nil
	})
	require.Equal(t, 1, rg.proxy.Injected()[faultproxy.Drop], "the claim's response was lost")
	if rg.proxy.Injected()[faultproxy.Cut] == 0 {
		t.Logf("%s sent the item with the refusal, so no read was needed", serverKind())
	}

	task := get(t, tr, "t")
	if err == nil {
		require.Equal(t, 1, runs)
		require.Equal(t, Success, task.Status)
		return
	}
	require.Zero(t, runs, "Start failed, so fn must not have run: %v", err)
	held := task.Status == InProgress && task.LeaseOwner == "worker-a"
	require.Falsef(t, held, "Start returned %q, yet its own claim holds the task Running until %s, and fn never ran",
		err, task.LeaseExpiresAt.Format(time.RFC3339))
}

// settleRun runs one task "t" through a Batch Process of one worker on a
// tracker whose requests pass the rig's proxy, with a 300 ms
// FinishTimeout and the given lease, which a run that left the task
// Running would wait out. faults sets the proxy's rules once the task
// exists. It checks that the task ran once, succeeded, and that the run
// ended well within the lease.
func settleRun(t *testing.T, seed uint64, lease time.Duration, faults func(*faultproxy.Proxy)) {
	t.Helper()
	ctx := context.Background()
	cfg := config(t)
	cfg.Lease = lease
	cfg.FinishTimeout = 300 * time.Millisecond
	tr := newTracker(t, cfg)
	require.NoError(t, createTask(ctx, tr, "t"))
	rg := newRig(t, seed)
	a := trackerOn(t, rg.faulty(t), cfg, "worker-a")
	faults(rg.proxy)
	var runs atomic.Int32
	began := time.Now()
	res, err := a.Process(ctx, func(context.Context, *ddbtrack.Task[Step]) error {
		runs.Add(1)
		return nil
	}, ddbtrack.ProcessOptions[Step]{Concurrency: 1, PollInterval: 100 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, int32(1), runs.Load(), "the task ran once: %+v", res)
	require.Equal(t, Success, get(t, tr, "t").Status)
	require.Equal(t, 1, res.Succeeded)
	require.Less(t, time.Since(began), lease/2, "the run did not wait for the lease: %+v", res)
	t.Logf("%s: %+v in %v, faults %v", serverKind(), res, time.Since(began).Round(time.Millisecond), rg.proxy.Injected())
}

// TestProcessSettlesUnansweredClaim: a pool whose claim was applied but
// never answered, and whose reads of the task then failed for longer than
// FinishTimeout, does not leave the task Running, run by nobody, until its
// lease expires: it settles the claim once reads succeed again, releases
// the task, and runs it.
func TestProcessSettlesUnansweredClaim(t *testing.T) {
	t.Parallel()
	settleRun(t, 52, time.Minute, func(p *faultproxy.Proxy) {
		p.Set(
			faultproxy.Rule{Match: isClaim, Fault: faultproxy.Drop, Count: 1},
			faultproxy.Rule{Op: "GetItem", Fault: faultproxy.Cut, Count: 6 * rigAttempts},
		)
	})
}

// TestProcessSettlesUnansweredOutcome: a pool whose outcome write got no
// answer for longer than FinishTimeout goes on trying it once DynamoDB
// answers again, within the lease: the result is recorded, not lost with
// the task left Running until another worker takes it over and runs it
// again.
func TestProcessSettlesUnansweredOutcome(t *testing.T) {
	t.Parallel()
	settleRun(t, 53, time.Minute, func(p *faultproxy.Proxy) {
		p.Set(faultproxy.Rule{Match: isOutcome, Fault: faultproxy.Cut, Count: 8 * rigAttempts})
	})
}

// TestProcessSettlesLateClaim: a claim that the server applies only after
// the worker gave up on it (here, a second after a 300 ms FinishTimeout)
// is still settled: the worker looks again while the task could still
// take the claim, finds it there, and releases the task, instead of
// leaving it Running, run by nobody, for its whole lease.
func TestProcessSettlesLateClaim(t *testing.T) {
	t.Parallel()
	settleRun(t, 54, 2*time.Minute, func(p *faultproxy.Proxy) {
		// The pool's reads of the index fail for a while after the claim,
		// so that it cannot claim the task afresh before the late claim
		// lands.
		var claimed atomic.Bool
		p.Set(
			faultproxy.Rule{Match: func(op string, body []byte) bool {
				return isClaim(op, body) && !claimed.Swap(true)
			}, Fault: faultproxy.Late, Delay: time.Second},
			faultproxy.Rule{Op: "Query", Match: func(string, []byte) bool { return claimed.Load() }, Fault: faultproxy.Cut, Count: 4 * rigAttempts},
		)
	})
}
