package ddbtrack_test

import (
	"context"
	"sync"
	"testing"
	"time"

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
