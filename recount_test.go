package ddbtrack_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// recountRig is a job whose shared counts a viewer refreshes, checked at
// every refresh against a fresh count.
type recountRig struct {
	t       *testing.T
	clk     *clock
	cfg     ddbtrack.Config[Step]
	tr      *ddbtrack.Tracker[Step] // the job's worker and operator, which counts afresh
	viewer  *ddbtrack.Tracker[Step] // shares its counts, through counter
	counter *reqcount.Client
	ids     []string // the job's tasks, all Pending at the start
}

func newRecountRig(t *testing.T, tasks int, retention time.Duration) *recountRig {
	cfg, clk := clockedConfig(t)
	cfg.Retention = retention
	// One shard, so that a status's newest task, which bounds its base,
	// is the status's: each shard has its own base and newest task.
	cfg.Shards = 1
	cfg.Logger = quietLogger() // dynalite has no time to live, which CreateTable warns of.
	r := &recountRig{t: t, clk: clk, cfg: cfg, tr: newTracker(t, cfg), counter: reqcount.New(ddbtracktest.Client(t))}
	r.ids = pendingTasks(t, r.tr, tasks)
	vcfg := cfg
	vcfg.CountMaxAge = 10 * time.Second
	var err error
	r.viewer, err = ddbtrack.New(r.counter, vcfg)
	require.NoError(t, err)
	return r
}

// refresh moves the clock past CountMaxAge, refreshes the shared counts,
// checks them, and returns how many tasks the refresh's count queries read.
func (r *recountRig) refresh(msg string) int64 {
	r.t.Helper()
	r.clk.Advance(11 * time.Second)
	before := r.counter.CountedItems()
	c, err := r.viewer.Count(context.Background())
	require.NoError(r.t, err)
	require.Equal(r.t, r.clk.Now(), c.AsOf, "refreshed: %s", msg)
	require.Equal(r.t, stats(r.t, r.tr), c.ByStatus, "the shared counts are right: %s", msg)
	return r.counter.CountedItems() - before
}

func (r *recountRig) succeed(ids ...string) {
	r.t.Helper()
	for _, id := range ids {
		require.NoError(r.t, r.tr.Start(context.Background(), id, ok))
	}
}

// ignore fails tasks for good.
func (r *recountRig) ignore(ids ...string) {
	r.t.Helper()
	for _, id := range ids {
		err := r.tr.StartWith(context.Background(), id, ddbtrack.StartOptions{MaxAttempts: 1},
			func(context.Context, *ddbtrack.Task[Step]) error { return errors.New("broken") })
		require.Error(r.t, err)
		require.Equal(r.t, Ignore, get(r.t, r.tr, id).Status)
	}
}

// settle finishes most of the tasks, ten minutes before the rest of them,
// and refreshes the counts twice, so that the first ones are in the bases.
// It leaves 20 Pending, 31 Succeeded (30 in the base) and 6 Ignored (5 in
// the base), and returns how many tasks the second refresh read.
func (r *recountRig) settle() int64 {
	r.t.Helper()
	r.succeed(r.ids[:30]...)
	r.ignore(r.ids[30:35]...)
	r.clk.Advance(10 * time.Minute)
	r.succeed(r.ids[35])
	r.ignore(r.ids[36])
	r.refresh("first")
	return r.refresh("second")
}

// TestRecountReadsOnlyNewlyFinishedTasks: a refresh of the shared counts
// reads every unfinished task, but only the finished tasks that are not
// yet in the bases the last refresh left; every hour it counts all.
func TestRecountReadsOnlyNewlyFinishedTasks(t *testing.T) {
	t.Parallel()
	r := newRecountRig(t, 60, 0)
	r.succeed(r.ids[:30]...)
	require.EqualValues(t, 60, r.refresh("first"), "the first refresh counts every task")

	// Finished tasks enter a base once a later one finished countMargin
	// (5 minutes) after them; until then they are read at every refresh.
	r.clk.Advance(10 * time.Minute)
	r.succeed(r.ids[30:35]...)
	require.EqualValues(t, 60, r.refresh("the 30 move into the base"), "the 30 are counted once more, into the base")
	require.EqualValues(t, 25+5, r.refresh("from the base"), "the 30 are not read again")

	r.ignore(r.ids[35:40]...)
	require.EqualValues(t, 20+5+5, r.refresh("new Ignored tasks"))

	r.clk.Advance(time.Hour)
	require.EqualValues(t, 60, r.refresh("an hour on"), "every hour, a full count")
	require.EqualValues(t, 20+5+5, r.refresh("after the full count"))
}

// TestRecountAfterRemovals: an operator's removal of tasks from a finished
// status makes the next refresh count in full, and the one after that uses
// the new bases.
func TestRecountAfterRemovals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, remove := range map[string]func(r *recountRig) error{
		"Reset a succeeded task": func(r *recountRig) error { return r.tr.Reset(ctx, r.ids[0]) },
		"Reset an ignored task":  func(r *recountRig) error { return r.tr.Reset(ctx, r.ids[30]) },
		"Delete":                 func(r *recountRig) error { return r.tr.Delete(ctx, r.ids[1]) },
		"Reset by an operator whose clock is an hour behind": func(r *recountRig) error {
			cfg := r.cfg
			cfg.Now = func() time.Time { return r.clk.Now().Add(-time.Hour) }
			op, err := ddbtrack.New(ddbtracktest.Client(t), cfg)
			require.NoError(t, err)
			return op.Reset(ctx, r.ids[2])
		},
		// Requeue and DeleteByStatus empty a status: a task that finishes
		// afterwards keeps it from looking new.
		"Requeue": func(r *recountRig) error {
			_, err := r.tr.Requeue(ctx, ddbtrack.RequeueOptions[Step]{})
			r.ignore(r.ids[40])
			return err
		},
		"DeleteByStatus": func(r *recountRig) error {
			_, err := r.tr.DeleteByStatus(ctx, Success)
			r.succeed(r.ids[40])
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRecountRig(t, 57, 0)
			require.EqualValues(t, 20+1+1, r.settle(), "the older finished tasks are in the bases")
			require.NoError(t, remove(r))
			r.refresh("after the removal")
			again := r.refresh("the next one")
			c := stats(t, r.tr)
			require.LessOrEqual(t, again, c[Todo]+c[InProgress]+c[Failed]+2,
				"the next refresh reads the unfinished tasks, and of the finished ones only the two late ones")
		})
	}
}

// TestRecountPipeline: a pipeline's next step that claims tasks from this
// step's Succeeded, with Start alone, makes the refresh count Succeeded in
// full.
func TestRecountPipeline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRecountRig(t, 57, 0)
	require.EqualValues(t, 20+1+1, r.settle())

	cfg2 := r.cfg
	cfg2.Pending, cfg2.Running, cfg2.Failed, cfg2.Succeeded, cfg2.Ignored = 100, 103, 106, 109, 110
	cfg2.Startable = []Step{Success}
	step2, err := ddbtrack.New(ddbtracktest.Client(t), cfg2)
	require.NoError(t, err)
	require.NoError(t, step2.Start(ctx, r.ids[0], ok))
	require.NoError(t, step2.Start(ctx, r.ids[1], ok))

	r.refresh("step 2 took two tasks")
	r.refresh("once more")
	require.EqualValues(t, 29, count(t, r.tr, Success))
}

// TestRecountMixedClocks: workers on a test's fake clock, months behind
// the clock of the viewer that refreshes the counts. The bases trail the
// newest finished task as well as the viewer's clock, so the workers' new
// tasks are counted.
func TestRecountMixedClocks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	tr := newTracker(t, cfg)
	ids := pendingTasks(t, tr, 40)
	vcfg := cfg
	vcfg.Now = nil // The real clock.
	vcfg.CountMaxAge = time.Millisecond
	viewer, err := ddbtrack.New(ddbtracktest.Client(t), vcfg)
	require.NoError(t, err)
	require.Greater(t, time.Since(clk.Now()), time.Hour, "the fake clock is behind")

	check := func(msg string) {
		t.Helper()
		time.Sleep(2 * time.Millisecond)
		c, err := viewer.Count(ctx)
		require.NoError(t, err)
		require.Equal(t, stats(t, tr), c.ByStatus, msg)
	}
	for i, batch := range [][]string{ids[:20], ids[20:30], ids[30:35], ids[35:]} {
		for _, id := range batch {
			require.NoError(t, tr.Start(ctx, id, ok))
		}
		check("after batch " + string(rune('1'+i)))
		check("once more")
		clk.Advance(10 * time.Minute)
	}
}

// TestRecountWithTimeToLive: with time to live on, Succeeded tasks may
// vanish without a write of ddbtrack's, so a refresh counts Succeeded in
// full. dynalite has no time to live.
func TestRecountWithTimeToLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRecountRig(t, 57, time.Hour)
	client := ddbtracktest.Client(t)
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(r.cfg.Table)})
	require.NoError(t, err)
	if ttl.TimeToLiveDescription.TimeToLiveStatus == types.TimeToLiveStatusDisabled {
		t.Skipf("%s has no time to live", serverKind())
	}
	require.EqualValues(t, 20+31+1, r.settle(), "Succeeded is read in full, Ignored from its base")

	// What time to live does: delete an expired task behind ddbtrack's back.
	_, err = client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(r.cfg.Table), Key: keyOf(r.cfg.Job, r.ids[0])})
	require.NoError(t, err)
	r.refresh("a succeeded task expired")
}
