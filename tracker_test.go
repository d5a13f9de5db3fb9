package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

type payload struct {
	Version int `dynamodbav:"version"`
}

// TestSeedFlow replays the seed notebook as assertions: a success, a
// failure, three failures to ignored, the refusal that follows, and a reset.
func TestSeedFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	tr := newTracker(t, cfg)

	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t-1", Data: payload{Version: 1}}))
	before := get(t, tr, "t-1")
	require.Equal(t, Todo, before.Status)
	require.False(t, locked(before, clk.Now()))

	// Success: the data and output set inside fn are stored with the success.
	err := tr.Start(ctx, "t-1", func(ctx context.Context, task *ddbtrack.Task[Step]) error {
		require.Equal(t, InProgress, task.Status)
		require.Equal(t, "s03_in_progress", task.StatusName)
		require.Equal(t, 1, task.Attempts)
		require.Equal(t, int64(1), task.Fence)
		during := get(t, tr, "t-1")
		require.Equal(t, InProgress, during.Status)
		require.True(t, locked(during, clk.Now()))
		require.Equal(t, cfg.Table != "", during.LeaseOwner != "")
		var p payload
		require.NoError(t, task.UnmarshalData(&p))
		require.Equal(t, 1, p.Version)
		require.NoError(t, task.SetData(payload{Version: 2}))
		return task.SetOutput(map[string]string{"result": "done"})
	})
	require.NoError(t, err)
	after := get(t, tr, "t-1")
	require.Equal(t, Success, after.Status)
	require.Equal(t, "s09_success", after.StatusName)
	require.False(t, locked(after, clk.Now()))
	require.Empty(t, after.LeaseOwner)
	require.Equal(t, 0, after.Attempts)
	require.Equal(t, clk.Now(), after.SucceededAt)
	var p payload
	require.NoError(t, after.UnmarshalData(&p))
	require.Equal(t, 2, p.Version)
	var out map[string]string
	require.NoError(t, after.UnmarshalOutput(&out))
	require.Equal(t, "done", out["result"])

	// A succeeded task is not run again.
	err = tr.Start(ctx, "t-1", ok)
	require.ErrorIs(t, err, ddbtrack.ErrTaskSucceeded)

	// Failure: the error is recorded, the data is left as it was.
	require.NoError(t, tr.Reset(ctx, "t-1"))
	boom := errors.New("something went wrong")
	err = tr.Start(ctx, "t-1", func(ctx context.Context, task *ddbtrack.Task[Step]) error {
		require.NoError(t, task.SetData(payload{Version: 3}))
		return boom
	})
	require.Same(t, boom, err, "Start must return fn's error unchanged")
	failed := get(t, tr, "t-1")
	require.Equal(t, Failed, failed.Status)
	require.Equal(t, 1, failed.Attempts)
	require.Equal(t, "something went wrong", failed.LastError)
	require.Len(t, failed.Errors, 1)
	require.Equal(t, ddbtrack.ErrorRecord{Attempt: 1, Fence: 2, At: clk.Now(), Message: "something went wrong"}, failed.Errors[0])
	require.NoError(t, failed.UnmarshalData(&p))
	require.Equal(t, 2, p.Version, "a failed attempt must not store its data")

	// Two more failures make three in a row: the task is ignored.
	for attempt := 2; attempt <= 3; attempt++ {
		err = tr.Start(ctx, "t-1", func(context.Context, *ddbtrack.Task[Step]) error { return fmt.Errorf("failure %d", attempt) })
		require.EqualError(t, err, fmt.Sprintf("failure %d", attempt))
	}
	ignored := get(t, tr, "t-1")
	require.Equal(t, Ignore, ignored.Status)
	require.Equal(t, 3, ignored.Attempts)
	require.Len(t, ignored.Errors, 3)

	// A fourth start is refused, and fn does not run.
	err = tr.Start(ctx, "t-1", func(context.Context, *ddbtrack.Task[Step]) error {
		t.Fatal("fn ran on an ignored task")
		return nil
	})
	require.ErrorIs(t, err, ddbtrack.ErrTaskIgnored)
	var te *ddbtrack.TaskError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "s10_ignore", te.StatusName)
	require.Equal(t, 3, te.Attempts)
	var ccf *types.ConditionalCheckFailedException
	require.ErrorAs(t, err, &ccf, "a refusal unwraps to the SDK's cause")

	// Reset makes it startable again with a fresh count.
	require.NoError(t, tr.Reset(ctx, "t-1"))
	reset := get(t, tr, "t-1")
	require.Equal(t, Todo, reset.Status)
	require.Equal(t, 0, reset.Attempts)
	require.NoError(t, tr.Start(ctx, "t-1", ok))
}

// TestContentionOneTask: sixteen workers race for one task. Exactly one
// runs it; the others are refused as locked while it runs.
func TestContentionOneTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "hot"}))

	const workers = 16
	var runs, locked atomic.Int32
	refusedAll := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		w := worker(t, cfg, fmt.Sprintf("w%d", i))
		wg.Go(func() {
			err := w.Start(ctx, "hot", func(context.Context, *ddbtrack.Task[Step]) error {
				runs.Add(1)
				// Hold the lease until every other worker has been refused,
				// so that none of them can see the task already succeeded.
				select {
				case <-refusedAll:
				case <-time.After(30 * time.Second):
					t.Error("other workers were not refused in time")
				}
				return nil
			})
			if errors.Is(err, ddbtrack.ErrTaskLocked) {
				if locked.Add(1) == workers-1 {
					close(refusedAll)
				}
				return
			}
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, int32(1), runs.Load())
	require.Equal(t, int32(workers-1), locked.Load())
	require.Equal(t, Success, get(t, tr, "hot").Status)
}

// TestManyTasksManyWorkers: eight workers each try every one of 2,000
// tasks (300 on moto), in their own order. Every task runs exactly once.
func TestManyTasksManyWorkers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	tr := newTracker(t, cfg)
	const workers = 8
	n := 2000
	if serverKind() == "moto" {
		// moto answers about a hundred requests a second here (and the
		// test client serialises them, see ddbtest), so 2,000 tasks raced
		// by 8 workers would take minutes. 300 still make every worker
		// race for every task.
		n = 300
	}
	tasks := make([]ddbtrack.NewTask, n)
	for i := range tasks {
		tasks[i] = ddbtrack.NewTask{ID: fmt.Sprintf("task-%04d", i), Data: payload{Version: i}}
	}
	res, err := tr.CreateMany(ctx, tasks)
	require.NoError(t, err)
	require.Len(t, res.Created, n)

	runs := make([]atomic.Int32, n)
	var wg sync.WaitGroup
	for w := range workers {
		tw := worker(t, cfg, fmt.Sprintf("w%d", w))
		order := rand.Perm(n)
		wg.Go(func() {
			for _, i := range order {
				err := tw.Start(ctx, tasks[i].ID, func(_ context.Context, task *ddbtrack.Task[Step]) error {
					runs[i].Add(1)
					return task.SetOutput(task.ID)
				})
				if err != nil && !errors.Is(err, ddbtrack.ErrTaskLocked) && !errors.Is(err, ddbtrack.ErrTaskSucceeded) {
					t.Errorf("task %s: %v", tasks[i].ID, err)
				}
			}
		})
	}
	wg.Wait()

	var mu sync.Mutex
	statuses := map[Step]int{}
	var check sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range tasks {
		require.Equal(t, int32(1), runs[i].Load(), "task %s ran %d times", tasks[i].ID, runs[i].Load())
		sem <- struct{}{}
		check.Go(func() {
			defer func() { <-sem }()
			task, err := tr.Get(ctx, tasks[i].ID)
			if !assertNoError(t, err) {
				return
			}
			mu.Lock()
			statuses[task.Status]++
			mu.Unlock()
		})
	}
	check.Wait()
	require.Equal(t, map[Step]int{Success: n}, statuses)
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}

// TestLeaseExpiryTakeover: a worker's lease expires while it runs; a second
// worker takes the task over and records its result; the first worker's
// late result is refused and changes nothing.
func TestLeaseExpiryTakeover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	cfg.Lease = time.Minute
	tr := newTracker(t, cfg)
	a, b := worker(t, cfg, "worker-a"), worker(t, cfg, "worker-b")
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t", Data: payload{Version: 1}}))

	err := a.Start(ctx, "t", func(ctx context.Context, task *ddbtrack.Task[Step]) error {
		// While the lease holds, the other worker is refused.
		err := b.Start(ctx, "t", ok)
		var te *ddbtrack.TaskError
		require.ErrorAs(t, err, &te)
		require.ErrorIs(t, err, ddbtrack.ErrTaskLocked)
		require.Equal(t, "worker-a", te.LeaseOwner)
		require.Equal(t, clk.Now().Add(time.Minute), te.LeaseExpiresAt)

		// A hangs past its lease; B takes over and succeeds.
		clk.Advance(time.Minute + time.Millisecond)
		require.NoError(t, b.Start(ctx, "t", func(_ context.Context, bt *ddbtrack.Task[Step]) error {
			require.Equal(t, 2, bt.Attempts, "the abandoned attempt counts")
			require.Equal(t, task.Fence+1, bt.Fence)
			require.NoError(t, bt.SetData(payload{Version: 2}))
			return bt.SetOutput("from b")
		}))

		require.NoError(t, task.SetData(payload{Version: 99}))
		return task.SetOutput("from a")
	})
	require.ErrorIs(t, err, ddbtrack.ErrLeaseLost)

	final := get(t, tr, "t")
	require.Equal(t, Success, final.Status)
	var out string
	require.NoError(t, final.UnmarshalOutput(&out))
	require.Equal(t, "from b", out, "the stale worker must not overwrite the new owner's result")
	var p payload
	require.NoError(t, final.UnmarshalData(&p))
	require.Equal(t, 2, p.Version)
	require.Len(t, final.Errors, 1, "the takeover records what became of the abandoned attempt")
	require.Contains(t, final.Errors[0].Message, "lease of worker worker-a expired")

	// A stale failure is refused the same way, and fn's error still comes back.
	require.NoError(t, tr.Reset(ctx, "t"))
	boom := errors.New("boom")
	err = a.Start(ctx, "t", func(ctx context.Context, task *ddbtrack.Task[Step]) error {
		clk.Advance(2 * time.Minute)
		require.NoError(t, b.Start(ctx, "t", ok))
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, err, ddbtrack.ErrLeaseLost)
	require.Equal(t, Success, get(t, tr, "t").Status)
}

// TestCrashLoopIsIgnored: a task whose workers die without recording a
// result is ignored after MaxAttempts such attempts, without running again.
// Each "dead" worker is one that hangs past its lease; the next worker takes
// the task over from inside it, so the takeovers nest.
func TestCrashLoopIsIgnored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	cfg.Lease = time.Minute
	cfg.MaxAttempts = 3
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "poison"}))

	var runs int
	var hang func(depth int) error
	hang = func(depth int) error {
		w := worker(t, cfg, fmt.Sprintf("w%d", depth))
		return w.Start(ctx, "poison", func(context.Context, *ddbtrack.Task[Step]) error {
			runs++
			clk.Advance(2 * time.Minute)
			err := hang(depth + 1)
			if depth == cfg.MaxAttempts {
				// The worker after the third dead one refuses to run it.
				require.ErrorIs(t, err, ddbtrack.ErrTaskIgnored)
			} else {
				require.ErrorIs(t, err, ddbtrack.ErrLeaseLost)
			}
			return nil
		})
	}
	require.ErrorIs(t, hang(1), ddbtrack.ErrLeaseLost)
	require.Equal(t, cfg.MaxAttempts, runs)

	task := get(t, tr, "poison")
	require.Equal(t, Ignore, task.Status)
	require.Empty(t, task.LeaseOwner)
	require.Len(t, task.Errors, 2, "the abandoned attempt and the refusal to run again")
	require.Contains(t, task.Errors[0].Message, "lease of worker w3 expired")
	require.Equal(t, "not run: the previous 3 attempts ended without a result (limit 3)", task.LastError)
}

// TestRetriesAndReset: MaxAttempts failures lead to Ignored; a success
// resets the count; Reset makes an ignored task startable.
func TestRetriesAndReset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.MaxAttempts = 2
	tr := newTracker(t, cfg)
	fail := func(context.Context, *ddbtrack.Task[Step]) error { return errors.New("no") }
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))

	require.Error(t, tr.Start(ctx, "t", fail))
	require.Equal(t, 1, get(t, tr, "t").Attempts)
	require.NoError(t, tr.Start(ctx, "t", ok))
	require.Equal(t, 0, get(t, tr, "t").Attempts, "a success resets the count")

	require.NoError(t, tr.Reset(ctx, "t"))
	require.Error(t, tr.Start(ctx, "t", fail))
	require.Equal(t, Failed, get(t, tr, "t").Status)
	require.Error(t, tr.Start(ctx, "t", fail))
	require.Equal(t, Ignore, get(t, tr, "t").Status)
	require.ErrorIs(t, tr.Start(ctx, "t", ok), ddbtrack.ErrTaskIgnored)

	require.NoError(t, tr.Reset(ctx, "t"))
	require.NoError(t, tr.Start(ctx, "t", ok))
	require.Equal(t, Success, get(t, tr, "t").Status)
}

// TestResetRefusesLockedTask: Reset must not pull a task from under the
// worker that holds it.
func TestResetRefusesLockedTask(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))
	require.NoError(t, tr.Start(ctx, "t", func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
		err := tr.Reset(ctx, "t")
		require.ErrorIs(t, err, ddbtrack.ErrTaskLocked)
		return nil
	}))
	require.Equal(t, Success, get(t, tr, "t").Status)
	require.ErrorIs(t, tr.Reset(ctx, "missing"), ddbtrack.ErrTaskNotFound)
}

func TestCreateNeverOverwrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t", Data: payload{Version: 1}}))
	err := tr.Create(ctx, ddbtrack.NewTask{ID: "t", Data: payload{Version: 2}})
	require.ErrorIs(t, err, ddbtrack.ErrTaskExists)
	var p payload
	require.NoError(t, get(t, tr, "t").UnmarshalData(&p))
	require.Equal(t, 1, p.Version)

	res, err := tr.CreateMany(ctx, []ddbtrack.NewTask{{ID: "t", Data: payload{Version: 3}}, {ID: "u"}})
	require.NoError(t, err)
	require.Equal(t, []string{"u"}, res.Created)
	require.Equal(t, []string{"t"}, res.Existing)
	require.NoError(t, get(t, tr, "t").UnmarshalData(&p))
	require.Equal(t, 1, p.Version)
}

func TestGetAndDeleteMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	_, err := tr.Get(ctx, "nope")
	require.ErrorIs(t, err, ddbtrack.ErrTaskNotFound)
	require.ErrorIs(t, tr.Start(ctx, "nope", ok), ddbtrack.ErrTaskNotFound)
	require.ErrorIs(t, tr.Delete(ctx, "nope"), ddbtrack.ErrTaskNotFound)

	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))
	require.NoError(t, tr.Delete(ctx, "t"))
	_, err = tr.Get(ctx, "t")
	require.ErrorIs(t, err, ddbtrack.ErrTaskNotFound)
}

// TestPanicIsRecordedAndReraised: a panic is a failure with its stack, and
// Start panics again with the same value.
func TestPanicIsRecordedAndReraised(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))
	require.PanicsWithValue(t, "kaboom", func() {
		_ = tr.Start(ctx, "t", func(context.Context, *ddbtrack.Task[Step]) error { panic("kaboom") })
	})
	task := get(t, tr, "t")
	require.Equal(t, Failed, task.Status)
	require.Equal(t, "panic: kaboom", task.LastError)
	require.Len(t, task.Errors, 1)
	require.Contains(t, task.Errors[0].Stack, "TestPanicIsRecordedAndReraised")
}

// TestCancelledContextStillRecords: a caller that gives up mid-task does
// not leave the task Running.
func TestCancelledContextStillRecords(t *testing.T) {
	t.Parallel()
	tr := newTracker(t, config(t))
	require.NoError(t, tr.Create(context.Background(), ddbtrack.NewTask{ID: "t"}))
	ctx, cancel := context.WithCancel(context.Background())
	err := tr.Start(ctx, "t", func(ctx context.Context, _ *ddbtrack.Task[Step]) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
	task := get(t, tr, "t")
	require.Equal(t, Failed, task.Status)
	require.Empty(t, task.LeaseOwner)
	require.Equal(t, "context canceled", task.LastError)
}

func TestErrorHistoryIsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.MaxAttempts = 100
	cfg.ErrorHistory = 3
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))
	for i := 1; i <= 7; i++ {
		err := tr.Start(ctx, "t", func(context.Context, *ddbtrack.Task[Step]) error {
			return fmt.Errorf("failure %d: %s", i, strings.Repeat("x", 5000))
		})
		require.Error(t, err)
	}
	task := get(t, tr, "t")
	require.Equal(t, 7, task.Attempts)
	require.Len(t, task.Errors, 3)
	for i, e := range task.Errors {
		require.Equal(t, 5+i, e.Attempt)
		require.True(t, strings.HasPrefix(e.Message, fmt.Sprintf("failure %d: ", 5+i)))
		require.LessOrEqual(t, len(e.Message), 2048, "messages are truncated")
		require.True(t, strings.HasSuffix(e.Message, "(truncated)"))
	}
}

// TestExtraStartableStatus: step 2 of a pipeline starts from step 1's
// succeeded status.
func TestExtraStartableStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	step1 := newTracker(t, cfg)
	require.NoError(t, step1.Create(ctx, ddbtrack.NewTask{ID: "t"}))
	require.NoError(t, step1.Start(ctx, "t", ok))

	// Step 2 has its own roles and treats step 1's Success as a start.
	cfg2 := cfg
	cfg2.Pending, cfg2.Running, cfg2.Failed, cfg2.Succeeded, cfg2.Ignored = 100, 103, 106, 109, 110
	step2, err := ddbtrack.New(ddbtracktest.Client(t), cfg2)
	require.NoError(t, err)
	require.ErrorIs(t, step2.Start(ctx, "t", ok), ddbtrack.ErrTaskNotReady)

	cfg2.Startable = []Step{Success}
	step2, err = ddbtrack.New(ddbtracktest.Client(t), cfg2)
	require.NoError(t, err)
	require.NoError(t, step2.Start(ctx, "t", ok))
	require.Equal(t, Step(109), get(t, step1, "t").Status)
}

func TestCreateTableChecksSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	tr := newTracker(t, cfg)
	require.NoError(t, tr.CreateTable(ctx), "an existing table with the right schema is fine")

	other := config(t)
	client := ddbtracktest.Client(t)
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            &other.Table,
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: strPtr("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: strPtr("id"), KeyType: types.KeyTypeHash}},
	})
	require.NoError(t, err)
	tr2, err := ddbtrack.New(client, other)
	require.NoError(t, err)
	err = tr2.CreateTable(ctx)
	require.ErrorIs(t, err, ddbtrack.ErrTableSchema)
	require.ErrorContains(t, err, "its key is id:S:HASH, not pk:S:HASH")
}

func strPtr(s string) *string { return &s }

// TestGoexitInFnStopsHeartbeat: an fn that never returns normally (here
// runtime.Goexit, as t.FailNow does) must not leave its heartbeat renewing
// a dead attempt's lease; the task has to become claimable again.
func TestGoexitInFnStopsHeartbeat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.Lease = 300 * time.Millisecond
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t"}))

	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_ = tr.Start(ctx, "t", func(context.Context, *ddbtrack.Task[Step]) error {
			runtime.Goexit()
			return nil
		})
	}()
	<-exited
	// Three lease lengths: a live heartbeat would have renewed it by now.
	time.Sleep(3 * cfg.Lease)
	task := get(t, tr, "t")
	require.False(t, locked(task, time.Now()), "lease still renewed after fn's goroutine exited")
	require.NoError(t, worker(t, cfg, "rescuer").Start(ctx, "t", ok))
}
