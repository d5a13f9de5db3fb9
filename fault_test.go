package ddbtrack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
	"github.com/ddbtrack/ddbtrack/internal/dev/faultproxy"
)

// faultClient returns a client for endpoint whose retries suit a test: a
// few attempts with short pauses, and no client-side retry quota, which a
// run full of injected faults would use up and then refuse every retry.
func faultClient(t testing.TB, endpoint string) *dynamodb.Client {
	t.Helper()
	c, err := ddblocal.NewClient(context.Background(), endpoint)
	require.NoError(t, err)
	return dynamodb.New(c.Options(), func(o *dynamodb.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 5
			so.MaxBackoff = 50 * time.Millisecond
			so.RateLimiter = ratelimit.None
		})
	})
}

// newProxy starts a fault proxy in front of the test server.
func newProxy(t testing.TB, seed uint64) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(serverEndpoint(t), seed)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// isRenewal picks out lease renewals among UpdateItem calls: they set the
// lease expiry and nothing else.
func isRenewal(_ string, body []byte) bool {
	return bytes.Contains(body, []byte(`"UpdateExpression":"SET #lease_expires_at = :lease_expires_at"`))
}

// run is one execution of fn, as the function itself saw it.
type run struct {
	owner      string
	attempt    int
	fence      int64
	start, end time.Time
	failed     bool
}

// runLog records every run of every task.
type runLog struct {
	mu   sync.Mutex
	runs map[string][]run
}

func (l *runLog) add(id string, r run) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runs == nil {
		l.runs = map[string][]run{}
	}
	l.runs[id] = append(l.runs[id], r)
}

// failsOn decides, the same way every time, whether an attempt of a task
// fails: about one attempt in five.
func failsOn(id string, attempt int) bool {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", id, attempt)
	return h.Sum32()%5 == 0
}

// TestProcessUnderFaults runs three worker pools, each through a proxy that
// loses responses after the write, throttles, answers 500, cuts
// connections and delays, and checks the invariants that must hold anyway:
// no task runs on two workers at overlapping times, every task ends
// Succeeded or Ignored with its history recorded, attempts are counted
// correctly, and no result is lost.
func TestProcessUnderFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.Lease = 2 * time.Second
	cfg.ErrorHistory = 50
	cfg.MaxAttempts = 3
	tr := newTracker(t, cfg)
	n := scaled(120)
	ids := pendingTasks(t, tr, n)

	proxy := newProxy(t, 42)
	proxy.Set(
		faultproxy.Rule{Op: "UpdateItem", Fault: faultproxy.Drop, Probability: 0.06},
		faultproxy.Rule{Op: "UpdateItem", Fault: faultproxy.Throttle, Probability: 0.05},
		faultproxy.Rule{Op: "Query", Fault: faultproxy.ServerError, Probability: 0.05},
		faultproxy.Rule{Op: "Query", Fault: faultproxy.Throttle, Probability: 0.03},
		faultproxy.Rule{Op: "GetItem", Fault: faultproxy.Cut, Probability: 0.05},
		faultproxy.Rule{Fault: faultproxy.Delay, Delay: 20 * time.Millisecond, Probability: 0.05},
	)

	var log runLog
	var errs sync.Map
	var wg sync.WaitGroup
	for i := range 3 {
		owner := fmt.Sprintf("pool-%d", i)
		wcfg := cfg
		wcfg.Owner = owner
		wcfg.OnEvent = func(ctx context.Context, e ddbtrack.Event[Step]) context.Context {
			if e.Kind == ddbtrack.EventError {
				errs.Store(e.Err.Error(), true)
			}
			return ctx
		}
		w, err := ddbtrack.New(faultClient(t, proxy.URL), wcfg)
		require.NoError(t, err)
		wg.Go(func() {
			res, err := w.Process(ctx, func(_ context.Context, task *ddbtrack.Task[Step]) error {
				r := run{owner: owner, attempt: task.Attempts, fence: task.Fence, start: time.Now()}
				time.Sleep(time.Duration(task.Fence%3) * 5 * time.Millisecond)
				r.failed = failsOn(task.ID, task.Attempts)
				r.end = time.Now()
				log.add(task.ID, r)
				if r.failed {
					return fmt.Errorf("attempt %d failed", task.Attempts)
				}
				return task.SetOutput(task.Fence)
			}, ddbtrack.ProcessOptions[Step]{
				Concurrency:  4,
				PollInterval: 50 * time.Millisecond,
				MaxBackoff:   200 * time.Millisecond,
			})
			require.NoError(t, err)
			t.Logf("%s: %+v", owner, res)
		})
	}
	wg.Wait()
	t.Logf("faults injected: %v", proxy.Injected())
	require.NotZero(t, proxy.Injected()[faultproxy.Drop], "the run must have met ambiguous writes")

	statuses := map[Step]int{}
	for _, id := range ids {
		task := get(t, tr, id)
		runs := log.runs[id]
		statuses[task.Status]++
		require.Contains(t, []Step{Success, Ignore}, task.Status, "%s ended %s", id, task.Status)
		require.Empty(t, task.LeaseOwner, id)
		require.NotEmpty(t, runs, "%s never ran", id)

		// No overlap, and each run a later claim with a later attempt.
		sort.Slice(runs, func(i, j int) bool { return runs[i].start.Before(runs[j].start) })
		for i := 1; i < len(runs); i++ {
			require.False(t, runs[i].start.Before(runs[i-1].end), "%s ran on %s and %s at overlapping times", id, runs[i-1].owner, runs[i].owner)
			require.Greater(t, runs[i].fence, runs[i-1].fence, id)
			require.Greater(t, runs[i].attempt, runs[i-1].attempt, id)
		}
		require.LessOrEqual(t, int64(len(runs)), task.Fence, "%s: every run had a claim of its own", id)

		// The history holds every failed run, with its attempt number;
		// anything else in it is an attempt whose worker lost touch.
		var failedAttempts []int
		for _, r := range runs {
			if r.failed {
				failedAttempts = append(failedAttempts, r.attempt)
			}
		}
		var recorded []int
		for _, e := range task.Errors {
			if e.Message == fmt.Sprintf("attempt %d failed", e.Attempt) {
				recorded = append(recorded, e.Attempt)
			} else {
				require.Contains(t, e.Message, "abandoned", "%s: unexpected history entry", id)
			}
		}
		require.Equal(t, failedAttempts, recorded, "%s: failures recorded", id)

		last := runs[len(runs)-1]
		switch task.Status {
		case Success:
			require.False(t, last.failed, id)
			require.Zero(t, task.Attempts, "%s: a success resets the count", id)
			var fence int64
			require.NoError(t, task.UnmarshalOutput(&fence))
			require.Equal(t, last.fence, fence, "%s: the output is the last run's", id)
		case Ignore:
			require.GreaterOrEqual(t, task.Attempts, cfg.MaxAttempts, id)
			require.NotEmpty(t, task.LastError, id)
		}
	}
	t.Logf("final statuses: %v", statuses)
	errs.Range(func(k, _ any) bool {
		require.NotContains(t, k, "attempt", "an error from fn reached OnError: %v", k)
		return true
	})
}

// TestAmbiguousWrites: every write of an attempt has its response lost
// once, after the server applied it. The claim, each renewal, the outcome
// and a release are each recognised as done, and fn runs once.
func TestAmbiguousWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.Lease = shortLease(300 * time.Millisecond)
	tr := newTracker(t, cfg)
	proxy := newProxy(t, 1)
	w, err := ddbtrack.New(faultClient(t, proxy.URL), cfg)
	require.NoError(t, err)

	cases := []struct {
		name string
		fn   func(context.Context, *ddbtrack.Task[Step]) error
		want Step
	}{
		{"success", func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
			time.Sleep(cfg.Lease) // Long enough for renewals.
			return nil
		}, Success},
		{"failure", func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
			time.Sleep(cfg.Lease)
			return errors.New("no")
		}, Failed},
		{"release", func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
			time.Sleep(cfg.Lease)
			return ddbtrack.ErrRelease
		}, Todo},
	}
	for _, c := range cases {
		require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: c.name}))
		// Every UpdateItem loses its first response: claim, renewals, and
		// the outcome; the SDK's retry then meets the write already done.
		proxy.Set(faultproxy.Rule{Op: "UpdateItem", Fault: faultproxy.Drop, Probability: 0.5})
		runs := 0
		err := w.Start(ctx, c.name, func(ctx context.Context, task *ddbtrack.Task[Step]) error {
			runs++
			return c.fn(ctx, task)
		})
		proxy.Set()
		require.NotErrorIs(t, err, ddbtrack.ErrLeaseLost, c.name)
		require.NotErrorIs(t, err, ddbtrack.ErrTaskLocked, c.name)
		require.Equal(t, 1, runs, c.name)
		task := get(t, tr, c.name)
		require.Equal(t, c.want, task.Status, "%s: %v", c.name, err)
		require.Equal(t, int64(1), task.Fence, c.name)
		require.Empty(t, task.LeaseOwner, c.name)
	}
	require.NotZero(t, proxy.Injected()[faultproxy.Drop])
}

// TestHeartbeatSurvivesLostRenewals: renewals whose responses are lost are
// retried and accepted, so a task that runs three times its lease keeps it.
// Time is the injected clock's, moved on by a third of the lease each time
// a renewal has completed: a slow server or a loaded machine then delays
// the test, but cannot make a renewal late by the lease's clock, so what is
// tested is only how lost responses are handled.
func TestHeartbeatSurvivesLostRenewals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	// A renewal must land within the two thirds of the lease left when it
	// is sent, in real time: a dropped answer costs the SDK's retry, which
	// took over 200 ms on dynalite with two test suites running at once.
	cfg.Lease = shortLease(time.Second)
	tr := newTracker(t, cfg)
	proxy := newProxy(t, 3)
	done := &completions{Client: faultClient(t, proxy.URL)}
	w, err := ddbtrack.New(done, cfg)
	require.NoError(t, err)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))

	proxy.Set(faultproxy.Rule{Op: "UpdateItem", Match: isRenewal, Fault: faultproxy.Drop, Probability: 0.5})
	err = w.Start(ctx, "t", func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
		claimed := done.updates.Load()
		for beat := int64(1); beat <= 9; beat++ {
			for done.updates.Load() < claimed+beat {
				select {
				case <-ctx.Done():
					return context.Cause(ctx)
				case <-time.After(5 * time.Millisecond):
				}
			}
			clk.Advance(cfg.Lease / 3)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotZero(t, proxy.Injected()[faultproxy.Drop], "some renewals lost their responses")
	require.Equal(t, Success, get(t, tr, "t").Status)
}

// TestBlockedHeartbeatLosesLease: with every renewal throttled, a task
// that runs three times its lease loses it: fn's context is cancelled with
// ErrLeaseLost when the lease runs out, another worker takes the task
// over, and the late result is refused.
func TestBlockedHeartbeatLosesLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.Lease = 600 * time.Millisecond
	tr := newTracker(t, cfg)
	proxy := newProxy(t, 4)
	acfg := cfg
	acfg.Owner = "worker-a"
	a, err := ddbtrack.New(faultClient(t, proxy.URL), acfg)
	require.NoError(t, err)
	b := worker(t, cfg, "worker-b")
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))

	proxy.Set(faultproxy.Rule{Op: "UpdateItem", Match: isRenewal, Fault: faultproxy.Throttle})
	var cause error
	err = a.Start(ctx, "t", func(ctx context.Context, task *ddbtrack.Task[Step]) error {
		select {
		case <-ctx.Done():
			cause = context.Cause(ctx)
		case <-time.After(30 * time.Second):
			t.Fatal("fn's context was not cancelled when the lease ran out")
		}
		// B takes the task over once the lease has expired.
		require.Eventually(t, func() bool {
			return b.Start(context.Background(), "t", func(_ context.Context, bt *ddbtrack.Task[Step]) error {
				return bt.SetOutput("from b")
			}) == nil
		}, 30*time.Second, 50*time.Millisecond)
		// A ignores the cancellation and finishes late.
		return task.SetOutput("from a")
	})
	require.ErrorIs(t, cause, ddbtrack.ErrLeaseLost)
	require.ErrorIs(t, err, ddbtrack.ErrLeaseLost, "the late result is refused")
	require.NotZero(t, proxy.Injected()[faultproxy.Throttle])

	task := get(t, tr, "t")
	require.Equal(t, Success, task.Status)
	var out string
	require.NoError(t, task.UnmarshalOutput(&out))
	require.Equal(t, "from b", out)
	require.Equal(t, int64(2), task.Fence)
}

// TestServerRestartMidRun stops the server in the middle of a batch run
// and starts it again on the same data. The workers report errors, back
// off rather than spin, and finish the job once the server is back.
//
// The workers reach the server through a proxy that cuts every request
// while the server is down, and the server is stopped only once no request
// is inside it: dynalite writes an item and its index entries in separate
// steps, so stopping it in the middle of a write can lose an index entry
// for good, which real DynamoDB never does.
func TestServerRestartMidRun(t *testing.T) {
	t.Parallel()
	if serverKind() != "dynalite" {
		t.Skipf("needs dynalite, which keeps its data on disk across a restart; the server here is %s", serverKind())
	}
	ctx := context.Background()
	srv, err := ddblocal.Start(ctx, ddblocal.Options{Path: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	proxy, err := faultproxy.New(srv.Endpoint, 5)
	require.NoError(t, err)
	t.Cleanup(func() { _ = proxy.Close() })
	client := faultClient(t, proxy.URL)

	var mu sync.Mutex
	var outageErrors int
	down := false
	cfg := config(t)
	cfg.Lease = time.Second
	// Writes that must land are tried again through the outage, with a
	// warning each time; reads that fail are reported as EventError.
	warnings := &warnCounter{}
	cfg.Logger = slog.New(warnings)
	cfg.OnEvent = func(ctx context.Context, e ddbtrack.Event[Step]) context.Context {
		if e.Kind == ddbtrack.EventError {
			mu.Lock()
			defer mu.Unlock()
			if down {
				outageErrors++
			}
		}
		return ctx
	}
	tr, err := ddbtrack.New(client, cfg)
	require.NoError(t, err)
	require.NoError(t, tr.CreateTable(ctx))
	n := 150
	pendingTasks(t, tr, n)
	runs := 0
	stopped := make(chan struct{})
	type result struct {
		res ddbtrack.ProcessResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := tr.Process(ctx, func(context.Context, *ddbtrack.Task[Step]) error {
			mu.Lock()
			runs++
			if runs == n/3 {
				close(stopped)
			}
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
			return nil
		}, ddbtrack.ProcessOptions[Step]{
			Concurrency:  4,
			PollInterval: 50 * time.Millisecond,
			MaxBackoff:   500 * time.Millisecond,
		})
		done <- result{res, err}
	}()

	<-stopped
	mu.Lock()
	down = true
	mu.Unlock()
	warnings.on.Store(true)
	proxy.Set(faultproxy.Rule{Fault: faultproxy.Cut})
	require.NoError(t, proxy.WaitIdle(ctx))
	require.NoError(t, srv.Stop())
	const outage = 2 * time.Second
	time.Sleep(outage)
	mu.Lock()
	during := outageErrors + int(warnings.n.Load())
	down = false
	mu.Unlock()
	warnings.on.Store(false)
	require.NoError(t, srv.Restart(ctx))
	proxy.Set()

	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the pool did not finish after the server came back")
	}
	require.NoError(t, r.err)
	t.Logf("%+v; %d errors and warnings reported during the %v outage", r.res, during, outage)
	require.Positive(t, during, "the outage was reported")
	// Backing off from 100ms, the feeder and four workers report a few
	// errors a second; spinning would report thousands.
	require.Less(t, during, 100, "the pool spun during the outage")
	for i := range n {
		task := get(t, tr, fmt.Sprintf("task-%04d", i))
		require.Equal(t, Success, task.Status, task.ID)
	}
}

// TestProcessGivesUpAfterMaxOutage: a Batch run against a server that
// fails every request ends with ErrUnavailable, wrapping the server's
// error, instead of backing off forever; nothing is lost, and a run after
// the outage finishes the job.
func TestProcessGivesUpAfterMaxOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	proxy := newProxy(t, 9)
	cfg := config(t)
	var errs atomic.Int32
	cfg.OnEvent = func(ctx context.Context, e ddbtrack.Event[Step]) context.Context {
		if e.Kind == ddbtrack.EventError {
			errs.Add(1)
		}
		return ctx
	}
	tr, err := ddbtrack.New(faultClient(t, proxy.URL), cfg)
	require.NoError(t, err)
	require.NoError(t, tr.CreateTable(ctx))
	ids := pendingTasks(t, tr, 5)

	proxy.Set(faultproxy.Rule{Fault: faultproxy.ServerError})
	const maxOutage = time.Second
	began := time.Now()
	// The deadline turns a pool that would back off forever into a failure.
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	res, err := tr.Process(pctx, ok, ddbtrack.ProcessOptions[Step]{
		MaxBackoff: 200 * time.Millisecond,
		MaxOutage:  maxOutage,
	})
	took := time.Since(began)
	require.ErrorIs(t, err, ddbtrack.ErrUnavailable)
	var ise *types.InternalServerError
	require.ErrorAs(t, err, &ise, "the last error is wrapped")
	require.ErrorContains(t, err, "ProcessOptions.MaxOutage (1s)")
	require.GreaterOrEqual(t, took, maxOutage)
	require.Less(t, took, 30*time.Second)
	require.Zero(t, res.Claimed)
	require.Positive(t, errs.Load())

	proxy.Set()
	res, err = tr.Process(ctx, ok, ddbtrack.ProcessOptions[Step]{})
	require.NoError(t, err)
	require.Equal(t, len(ids), res.Succeeded)
}
