package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// TestRequeue moves stored tasks back to Pending by status, time window
// and filter, and checks each result against the ground truth.
func TestRequeue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	tr := newTracker(t, cfg)
	// Moto reads every item of the table for each query, so it gets a
	// smaller job; 400 tasks still fill several batches of 100 moves.
	n := 1000
	if serverKind() == "moto" {
		n = 400
	}
	tasks := qGenerate(n, clk.Now())
	qSeed(t, ddbtracktest.Client(t), cfg.Table, cfg.Job, tr.Config().Shards, tasks)
	clk.Advance(time.Minute)
	truth := map[string]qTask{}
	for _, task := range tasks {
		truth[task.ID] = task
	}
	// moved lists the tasks each step expects to move, by the ground truth.
	moved := func(statuses []Step, keep func(qTask) bool) []string {
		return qExpect(tasks, ddbtrack.QueryOptions[Step]{Statuses: statuses}, keep)
	}
	isTimeout := func(task qTask) bool { return strings.Contains(task.LastError, "timeout") }

	// A dry run counts and changes nothing.
	timeouts := moved([]Step{Failed, Ignore}, isTimeout)
	before := stats(t, tr)
	res, err := tr.Requeue(ctx, ddbtrack.RequeueOptions[Step]{DryRun: true, Filter: expression.Name("last_error").Contains("timeout")})
	require.NoError(t, err)
	require.Equal(t, ddbtrack.RequeueResult{Matched: len(timeouts)}, res)
	after := stats(t, tr)
	require.Equal(t, before, after)

	// The real run moves exactly those, and reports progress per batch.
	var progress []ddbtrack.RequeueResult
	res, err = tr.Requeue(ctx, ddbtrack.RequeueOptions[Step]{
		Filter:   expression.Name("last_error").Contains("timeout"),
		Progress: func(r ddbtrack.RequeueResult) { progress = append(progress, r) },
	})
	require.NoError(t, err)
	require.Equal(t, ddbtrack.RequeueResult{Matched: len(timeouts), Moved: len(timeouts)}, res)
	require.Len(t, progress, (len(timeouts)+99)/100)
	require.Equal(t, res, progress[len(progress)-1])
	for _, id := range timeouts {
		task := get(t, tr, id)
		require.Equal(t, Todo, task.Status, id)
		require.Zero(t, task.Attempts)
		require.Empty(t, task.LastError)
		require.Len(t, task.Errors, 1, "the history is kept")
		require.Equal(t, clk.Now(), task.UpdatedAt)
	}
	requeued := qIDs(t, tr.Query(ctx, ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo}, Since: clk.Now()}))
	require.ElementsMatch(t, timeouts, requeued)
	for _, s := range []Step{Failed, Ignore} {
		n := count(t, tr, s)
		require.Equal(t, before[s]-int64(len(moved([]Step{s}, isTimeout))), n, "only matching %v tasks moved", s)
	}

	// Running it again finds nothing: the moved tasks no longer match.
	res, err = tr.Requeue(ctx, ddbtrack.RequeueOptions[Step]{Filter: expression.Name("last_error").Contains("timeout")})
	require.NoError(t, err)
	require.Equal(t, ddbtrack.RequeueResult{}, res)

	// A time window on one status.
	from, to := clk.Now().Add(-60*time.Hour), clk.Now().Add(-30*time.Hour)
	inWindow := func(task qTask) bool {
		return !isTimeout(task) && task.Updated >= from.UnixMilli() && task.Updated < to.UnixMilli()
	}
	want := moved([]Step{Ignore}, inWindow)
	res, err = tr.Requeue(ctx, ddbtrack.RequeueOptions[Step]{Statuses: []Step{Ignore}, Since: from, Until: to})
	require.NoError(t, err)
	require.Equal(t, ddbtrack.RequeueResult{Matched: len(want), Moved: len(want)}, res)
	for _, id := range want {
		require.Equal(t, Todo, get(t, tr, id).Status)
	}

	// Running tasks: only those whose lease has expired are moved.
	expired := moved([]Step{InProgress}, func(task qTask) bool { return task.LeaseExp < clk.Now().UnixMilli() })
	res, err = tr.Requeue(ctx, ddbtrack.RequeueOptions[Step]{Statuses: []Step{InProgress}})
	require.NoError(t, err)
	require.Equal(t, ddbtrack.RequeueResult{Matched: len(expired), Moved: len(expired)}, res)
	running := count(t, tr, InProgress)
	require.Equal(t, before[InProgress]-int64(len(expired)), running)
	for _, id := range expired {
		task := get(t, tr, id)
		require.Empty(t, task.LeaseOwner)
		require.False(t, locked(task, clk.Now()))
	}

	_, err = tr.Requeue(ctx, ddbtrack.RequeueOptions[Step]{Statuses: []Step{Failed, Todo}})
	require.ErrorIs(t, err, ddbtrack.ErrInvalidOption)
	require.ErrorContains(t, err, "RequeueOptions.Statuses contains Pending (s00_todo)")
	_, err = tr.Requeue(ctx, ddbtrack.RequeueOptions[Step]{Since: clk.Now(), Until: clk.Now().Add(-time.Hour)})
	require.ErrorContains(t, err, "RequeueOptions.Until")
}

// rqHook is a Client that can run a function in place of a given task's
// next UpdateItem; the function decides when to send the write.
type rqHook struct {
	ddbtrack.Client
	mu     sync.Mutex
	before map[string]func(send func() error) error // By pk.
}

func (h *rqHook) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	pk := in.Key["pk"].(*types.AttributeValueMemberS).Value
	h.mu.Lock()
	hook := h.before[pk]
	delete(h.before, pk)
	h.mu.Unlock()
	if hook == nil {
		return h.Client.UpdateItem(ctx, in, opts...)
	}
	var out *dynamodb.UpdateItemOutput
	err := hook(func() error {
		var err error
		out, err = h.Client.UpdateItem(ctx, in, opts...)
		return err
	})
	return out, err
}

// TestRequeueSkipsTasksClaimedMeanwhile puts a worker between Requeue's
// read of a task and its write: the write must leave the task to the
// worker, whether the worker still holds it or has already failed it again
// within the same millisecond.
func TestRequeueSkipsTasksClaimedMeanwhile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t) // The clock stands still: every write has the same time.
	cfg.MaxAttempts = 5
	tr := newTracker(t, cfg)
	for _, id := range []string{"held", "refailed", "idle"} {
		require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: id}))
		require.Error(t, tr.Start(ctx, id, func(context.Context, *ddbtrack.Task[Step]) error { return errors.New("timeout") }))
	}
	w := worker(t, cfg, "worker")
	hook := &rqHook{Client: ddbtracktest.Client(t), before: map[string]func(func() error) error{}}
	// Requeue takes a task that changed in the millisecond it starts as
	// changed before it, and would not look at these tasks' updates, so its
	// clock is a millisecond ahead of the workers' standing one: what
	// leaves them alone is the condition on each task's fence.
	rcfg := cfg
	rcfg.Now = func() time.Time { return clk.Now().Add(time.Millisecond) }
	requeuer, err := ddbtrack.New(hook, rcfg)
	require.NoError(t, err)

	var heldErr, refailedErr error
	var heldRuns, refailedRuns atomic.Int32
	hook.before[cfg.Job+"#held"] = func(send func() error) error {
		// The worker claims the task and is running it when Requeue's write
		// arrives.
		var sendErr error
		heldErr = w.Start(ctx, "held", func(ctx context.Context, task *ddbtrack.Task[Step]) error {
			heldRuns.Add(1)
			sendErr = send()
			return nil
		})
		return sendErr
	}
	hook.before[cfg.Job+"#refailed"] = func(send func() error) error {
		// The worker claims the task and fails it again, all in the
		// millisecond Requeue read it in: only the fence tells.
		refailedErr = w.Start(ctx, "refailed", func(context.Context, *ddbtrack.Task[Step]) error {
			refailedRuns.Add(1)
			return errors.New("timeout again")
		})
		return send()
	}

	res, err := requeuer.Requeue(ctx, ddbtrack.RequeueOptions[Step]{})
	require.NoError(t, err)
	require.Equal(t, ddbtrack.RequeueResult{Matched: 3, Moved: 1, Skipped: 2}, res)
	require.NoError(t, heldErr, "the worker kept its lease and recorded its result")
	require.EqualError(t, refailedErr, "timeout again")
	require.Equal(t, int32(1), heldRuns.Load())
	require.Equal(t, int32(1), refailedRuns.Load())

	require.Equal(t, Success, get(t, tr, "held").Status)
	refailed := get(t, tr, "refailed")
	require.Equal(t, Failed, refailed.Status)
	require.Equal(t, 2, refailed.Attempts, "the second failure stands; the attempt count was not reset")
	require.Equal(t, Todo, get(t, tr, "idle").Status)
}

// TestRequeueWithWorkersRacing runs Requeue in a loop while workers pick
// tasks from Unfinished and claim, fail and succeed them. A task moved from
// under the worker holding it would show up in the worker's function as a
// task no longer Running under its lease, and as ErrLeaseLost when the
// worker records its result; neither may happen, and every task must end
// in a settled state.
func TestRequeueWithWorkersRacing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.Lease = time.Minute
	tr := newTracker(t, cfg)
	// Moto serves about 100 requests a second, so it gets fewer tasks and
	// a calmer requeuer.
	n, workers, pause := 100, 3, 20*time.Millisecond
	var client ddbtrack.Client = ddbtracktest.Client(t)
	if serverKind() == "moto" {
		n, pause = 30, 200*time.Millisecond
	}
	newWorker := func(owner string) *ddbtrack.Tracker[Step] {
		c := cfg
		c.Owner = owner
		w, err := ddbtrack.New(client, c)
		require.NoError(t, err)
		return w
	}
	nts := make([]ddbtrack.NewTask, n)
	for i := range nts {
		nts[i] = ddbtrack.NewTask{ID: fmt.Sprintf("task-%03d", i)}
	}
	_, err := tr.CreateMany(ctx, nts)
	require.NoError(t, err)

	var (
		runs, holdViolations, leaseLost atomic.Int64
		unexpected                      = make(chan error, 100)
		stop                            = make(chan struct{})
		wg                              sync.WaitGroup
	)
	report := func(err error) {
		select {
		case unexpected <- err:
		default:
		}
	}
	for wi := range workers {
		owner := fmt.Sprintf("w%d", wi)
		w := newWorker(owner)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Each worker takes a few unfinished tasks from one end or
				// the other, in its own order, as a worker pool would.
				var ids []string
				for task, err := range w.Query(ctx, ddbtrack.QueryOptions[Step]{Unfinished: true, Limit: 10, NewestFirst: rand.IntN(2) == 1}) {
					if err != nil {
						report(err)
						return
					}
					ids = append(ids, task.ID)
				}
				rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
				if len(ids) == 0 {
					time.Sleep(pause)
				}
				for _, id := range ids {
					err := w.Start(ctx, id, func(ctx context.Context, task *ddbtrack.Task[Step]) error {
						runs.Add(1)
						time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
						now, err := w.Get(ctx, task.ID)
						if err != nil {
							return err
						}
						if now.Status != InProgress || now.LeaseOwner != owner || now.Fence != task.Fence {
							holdViolations.Add(1)
							report(fmt.Errorf("worker %s holds %s (fence %d, attempt %d) but finds it %v, owner %q, fence %d, attempts %d, updated %s",
								owner, task.ID, task.Fence, task.Attempts, now.Status, now.LeaseOwner, now.Fence, now.Attempts, now.UpdatedAt.Format(time.StampMilli)))
						}
						if rand.IntN(2) == 0 {
							return errors.New("transient timeout")
						}
						return nil
					})
					switch {
					case err == nil, err.Error() == "transient timeout",
						errors.Is(err, ddbtrack.ErrTaskLocked), errors.Is(err, ddbtrack.ErrTaskSucceeded), errors.Is(err, ddbtrack.ErrTaskIgnored):
					case errors.Is(err, ddbtrack.ErrLeaseLost):
						leaseLost.Add(1)
					default:
						report(err)
					}
				}
			}
		})
	}
	var total ddbtrack.RequeueResult
	requeuer := newWorker("requeuer")
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			res, err := requeuer.Requeue(ctx, ddbtrack.RequeueOptions[Step]{})
			if err != nil {
				report(err)
				return
			}
			total.Matched += res.Matched
			total.Moved += res.Moved
			total.Skipped += res.Skipped
			time.Sleep(pause) // Leave the server to the workers for a moment.
		}
	})
	// Half the runs fail, and one task in eight fails three times in a row
	// and is Ignored until the requeuer moves it back, so the race goes on
	// until every task has succeeded. The deadline only bounds a slow
	// machine.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if count(t, tr, Success) == int64(n) {
			break
		}
	}
	close(stop)
	wg.Wait()
	close(unexpected)
	var errs []error
	for err := range unexpected {
		errs = append(errs, err)
	}
	require.NoError(t, errors.Join(errs...))
	require.Zero(t, holdViolations.Load(), "a task was changed under the worker holding it")
	require.Zero(t, leaseLost.Load(), "a worker lost its lease: something moved its task")
	require.Positive(t, total.Moved, "the requeuer should have had work while the workers ran")
	require.Equal(t, total.Matched, total.Moved+total.Skipped)
	t.Logf("%d runs of %d tasks; requeue totals %+v", runs.Load(), n, total)

	st := stats(t, tr)
	var sum int64
	for _, c := range st {
		sum += c
	}
	require.Equal(t, int64(n), sum, "every task is counted once: %v", st)
	require.Zero(t, st[InProgress], "no task is left running")
	for _, nt := range nts {
		task := get(t, tr, nt.ID)
		require.Empty(t, task.LeaseOwner, "task %s", nt.ID)
		require.Contains(t, []Step{Todo, Failed, Success, Ignore}, task.Status, "task %s", nt.ID)
		require.LessOrEqual(t, task.Attempts, tr.Config().MaxAttempts, "task %s", nt.ID)
	}
}

// TestDeleteByStatus deletes by status through the index, and leaves a
// task a worker is running in place, counted.
func TestDeleteByStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	tr := newTracker(t, cfg)
	tasks := qGenerate(600, clk.Now())
	qSeed(t, ddbtracktest.Client(t), cfg.Table, cfg.Job, tr.Config().Shards, tasks)
	truth := stats(t, tr)

	n, err := tr.DeleteByStatus(ctx, Success, Ignore)
	require.NoError(t, err)
	require.Equal(t, int(truth[Success]+truth[Ignore]), n)
	require.Equal(t, map[Step]int64{Todo: truth[Todo], InProgress: truth[InProgress], Failed: truth[Failed], Success: 0, Ignore: 0}, stats(t, tr))

	// Running tasks under unexpired leases stay, and are reported.
	live := 0
	for _, task := range tasks {
		if task.Status == InProgress && task.LeaseExp > clk.Now().UnixMilli() {
			live++
		}
	}
	require.Positive(t, live)
	n, err = tr.DeleteByStatus(ctx, InProgress)
	require.Equal(t, int(truth[InProgress])-live, n)
	require.ErrorIs(t, err, ddbtrack.ErrTaskLocked)
	require.ErrorContains(t, err, fmt.Sprintf("delete by status left %d tasks", live))
	require.Equal(t, int64(live), count(t, tr, InProgress))

	// The same through a real worker: a task deleted from under its worker
	// would make the worker's result fail with ErrLeaseLost.
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "real"}))
	require.NoError(t, tr.Start(ctx, "real", func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
		_, err := tr.DeleteByStatus(ctx, InProgress)
		require.ErrorIs(t, err, ddbtrack.ErrTaskLocked)
		require.ErrorContains(t, err, fmt.Sprintf("delete by status left %d tasks", live+1))
		return nil
	}))
	require.Equal(t, Success, get(t, tr, "real").Status)

	_, err = tr.DeleteByStatus(ctx)
	require.ErrorIs(t, err, ddbtrack.ErrInvalidOption)
	require.ErrorContains(t, err, "statuses is empty")
}
