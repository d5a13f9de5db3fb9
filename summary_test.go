package ddbtrack_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// TestJobs lists a table's jobs from the status index: those whose
// trackers created the table, loaded tasks or processed them, but not a
// job whose tasks only Create made, which adds no write to a task's path.
func TestJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.Job = "import"
	importer := newTracker(t, cfg)
	for job, use := range map[string]func(*ddbtrack.Tracker[Step]) error{
		"resize": func(tr *ddbtrack.Tracker[Step]) error {
			_, err := tr.CreateMany(ctx, []ddbtrack.NewTask{{ID: "a"}})
			return err
		},
		"export": func(tr *ddbtrack.Tracker[Step]) error {
			_, err := tr.Process(ctx, ok, ddbtrack.ProcessOptions[Step]{})
			return err
		},
		"quiet": func(tr *ddbtrack.Tracker[Step]) error { return tr.Create(ctx, ddbtrack.NewTask{ID: "a"}) },
	} {
		jcfg := cfg
		jcfg.Job = job
		tr, err := ddbtrack.New(ddbtracktest.Client(t), jcfg)
		require.NoError(t, err)
		require.NoError(t, use(tr))
	}
	jobs, err := importer.Jobs(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"export", "import", "resize"}, jobs)
	require.Empty(t, qIDs(t, importer.Query(ctx, ddbtrack.QueryOptions[Step]{Unfinished: true})), "a job's own item is no task")
}

// TestSharedCounts: with CountMaxAge, however many trackers of a job ask
// for counts, the job is counted once per CountMaxAge; the others read the
// shared counts, with their age.
func TestSharedCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg, clk := clockedConfig(t)
	cfg.CountMaxAge = time.Minute
	tr := newTracker(t, cfg)
	pendingTasks(t, tr, 5)
	require.NoError(t, tr.Start(ctx, "task-0000", ok))

	counter := reqcount.New(ddbtracktest.Client(t))
	viewers := make([]*ddbtrack.Tracker[Step], 10)
	for i := range viewers {
		var err error
		viewers[i], err = ddbtrack.New(counter, cfg)
		require.NoError(t, err)
	}
	countAll := func() []ddbtrack.Counts[Step] {
		out := make([]ddbtrack.Counts[Step], len(viewers))
		var wg sync.WaitGroup
		for i, v := range viewers {
			wg.Go(func() {
				c, err := v.Count(ctx)
				require.NoError(t, err)
				out[i] = c
			})
		}
		wg.Wait()
		return out
	}
	// A query for each of the six partitions of Pending, Running and
	// Failed; for each of the four of Succeeded and Ignored, a read of its
	// newest task, and, for the one that has a task, two counts: up to the
	// bound the next refresh starts from, and after it (recount.go).
	require.EqualValues(t, 2, tr.Config().Shards)
	fullCount := 6 + 4 + 2

	before := counter.Counts()
	first := countAll()
	require.Equal(t, fullCount, counter.Counts().Sub(before)[reqcount.Query], "ten viewers, one count")
	for _, c := range first {
		require.Equal(t, map[Step]int64{Todo: 4, InProgress: 0, Failed: 0, Success: 1, Ignore: 0}, c.ByStatus)
		require.Equal(t, first[0].AsOf, c.AsOf, "every viewer sees the same count")
	}

	// Within CountMaxAge: no count at all, one read each.
	clk.Advance(30 * time.Second)
	before = counter.Counts()
	again := countAll()
	spent := counter.Counts().Sub(before)
	require.Zero(t, spent[reqcount.Query])
	require.Equal(t, len(viewers), spent[reqcount.GetItem])
	require.Equal(t, first[0].AsOf, again[0].AsOf, "the age shows: counted 30 s ago")

	// Past it: one refresh, whoever asks first. The succeeded task stays
	// after the bound, so the count up to it is not needed.
	clk.Advance(time.Minute)
	before = counter.Counts()
	countAll()
	require.Equal(t, fullCount-1, counter.Counts().Sub(before)[reqcount.Query])

	// A status outside the job's roles is counted afresh.
	n, err := viewers[0].Count(ctx, Step(42))
	require.NoError(t, err)
	require.Zero(t, n.ByStatus[Step(42)])
}

// heldCounts holds count queries (Select=COUNT) back until release is
// closed, and counts those held.
type heldCounts struct {
	ddbtrack.Client
	release chan struct{}
	held    atomic.Int32
}

func (c *heldCounts) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if in.Select == types.SelectCount {
		c.held.Add(1)
		select {
		case <-c.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.Client.Query(ctx, in, opts...)
}

// TestCountRefreshKeepsItsLease: a refresh that counts for longer than its
// one-minute lease renews it, so that the next caller does not take the
// refresh over and count the job a second time.
func TestCountRefreshKeepsItsLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newManualClock()
	cfg := config(t)
	cfg.Now = clk.Now
	cfg.CountMaxAge = 10 * time.Second
	pendingTasks(t, newTracker(t, cfg), 3)

	slow := &heldCounts{Client: ddbtracktest.Client(t), release: make(chan struct{})}
	first, err := ddbtrack.New(slow, cfg)
	require.NoError(t, err)
	ddbtrack.SetSchedClock(first, clk)
	counted := make(chan ddbtrack.Counts[Step], 1)
	go func() {
		c, err := first.Count(ctx)
		assert.NoError(t, err)
		counted <- c
	}()
	require.Eventually(t, func() bool { return slow.held.Load() > 0 }, 10*time.Second, time.Millisecond, "the count started")

	// Five minutes of the count, in renewals of a third of the lease.
	client := ddbtracktest.Client(t)
	for range 15 {
		require.Eventually(t, func() bool { _, set := clk.next(); return set }, 10*time.Second, time.Millisecond, "a renewal is due")
		at, _ := clk.next()
		clk.advanceTo(at)
		want := strconv.FormatInt(at.Add(time.Minute).UnixMilli(), 10)
		require.Eventually(t, func() bool { return jobAttr(t, client, cfg, "counting_until") == want }, 10*time.Second, time.Millisecond,
			"the lease runs a minute past each renewal")
	}

	// Another caller, which finds no counts yet and the refresh held,
	// waits for the first counts instead of counting.
	counter := reqcount.New(ddbtracktest.Client(t))
	second, err := ddbtrack.New(counter, cfg)
	require.NoError(t, err)
	waitCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = second.Count(waitCtx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Zero(t, counter.CountQueries(), "the refresh was not taken over")

	close(slow.release)
	require.Equal(t, int64(3), (<-counted).ByStatus[Todo])
	_, set := clk.next()
	require.False(t, set, "the renewals stopped with the refresh")
}

// jobAttr returns an attribute of the job's own item, as stored.
func jobAttr(t testing.TB, client ddbtrack.Client, cfg ddbtrack.Config[Step], name string) string {
	t.Helper()
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(cfg.Table),
		Key:            map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: cfg.Job}},
		ConsistentRead: aws.Bool(true),
	})
	require.NoError(t, err)
	if v, ok := out.Item[name].(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return ""
}
