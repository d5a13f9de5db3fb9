package ddbtrack_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// qTask is the ground truth of one task a query test stores.
type qTask struct {
	ID        string
	Status    Step
	Updated   int64 // updated_at, epoch milliseconds.
	Region    string
	Rows      int // output.rows; set only for succeeded tasks.
	LastError string
	LeaseExp  int64 // lease_expires_at of a running task.
}

var qStatuses = []Step{Todo, InProgress, Failed, Success, Ignore}

var qErrors = []string{"dial tcp 10.0.0.7:443: i/o timeout", "row 17: bad date", "context deadline exceeded (timeout after 30s)", "permission denied"}

// qGenerate returns n tasks with statuses, update times, data, output and
// errors drawn from a fixed seed. Update times fall in the three days
// before now, with about two tasks per millisecond value across the job,
// and a block of 300 failed tasks shares one millisecond, so that equal
// update times meet both across streams and within one stream's pages.
// Half the running tasks' leases have expired at now.
func qGenerate(n int, now time.Time) []qTask {
	r := rand.New(rand.NewPCG(42, uint64(n)))
	base := now.Add(-72 * time.Hour).UnixMilli()
	span := max(n/2, 1)
	tasks := make([]qTask, n)
	for i := range tasks {
		task := qTask{
			ID:      fmt.Sprintf("task-%06d", i),
			Updated: base + int64(r.IntN(span))*int64(72*time.Hour/time.Millisecond)/int64(span),
			Region:  []string{"eu", "us", "ap"}[r.IntN(3)],
		}
		switch p := r.IntN(100); {
		case p < 30:
			task.Status = Todo
		case p < 40:
			task.Status = InProgress
			task.LeaseExp = now.Add(time.Duration(r.IntN(120)-60) * time.Minute).UnixMilli()
		case p < 60:
			task.Status = Failed
		case p < 90:
			task.Status = Success
			task.Rows = r.IntN(50)
		default:
			task.Status = Ignore
		}
		if i < min(300, n/10) {
			task.Status, task.Updated = Failed, base+777
		}
		if task.Status == Failed || task.Status == Ignore {
			task.LastError = qErrors[r.IntN(len(qErrors))]
		}
		tasks[i] = task
	}
	return tasks
}

// qShard is FNV-1a of the task ID modulo the shard count, written out here
// rather than taken from the package, so that a wrong shard in the library
// shows up as a missing task.
func qShard(id string, shards int) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(shards))
}

// qItem encodes a task as ddbtrack stores it, by hand.
func qItem(job string, shards int, task qTask) map[string]types.AttributeValue {
	n := func(v int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	item := map[string]types.AttributeValue{
		"pk":          s(job + "#" + task.ID),
		"job":         s(job),
		"task_id":     s(task.ID),
		"status":      n(int64(task.Status)),
		"status_name": s(task.Status.String()),
		"status_key":  s(fmt.Sprintf("%s#%d#%d", job, task.Status, qShard(task.ID, shards))),
		"updated_at":  n(task.Updated),
		"due_at":      n(task.Updated),
		"order_key":   s(fmt.Sprintf("%015d#%s", task.Updated, task.ID)),
		"created_at":  n(task.Updated - 1000),
		"attempts":    n(0),
		"fence":       n(0),
		"data":        &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"region": s(task.Region), "n": n(int64(len(task.ID)))}},
	}
	switch task.Status {
	case Success:
		item["output"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"rows": n(int64(task.Rows))}}
		item["fence"] = n(1)
	case InProgress:
		item["lease_owner"], item["lease_token"], item["lease_expires_at"] = s("seed-worker"), s("seed-token-"+task.ID), n(task.LeaseExp)
		item["attempts"], item["fence"], item["started_at"] = n(1), n(1), n(task.Updated)
	case Failed, Ignore:
		item["last_error"] = s(task.LastError)
		item["attempts"], item["fence"] = n(1), n(1)
		item["errors"] = &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"attempt": n(1), "at": n(task.Updated), "message": s(task.LastError),
		}}}}
	}
	return item
}

// qSeed stores tasks with BatchWriteItem, 25 items per request and several
// requests at once: seeding through Create and Start would take minutes at
// 10,000 tasks and would make the ground truth depend on the code under
// test.
func qSeed(tb testing.TB, client *dynamodb.Client, table, job string, shards int, tasks []qTask) {
	tb.Helper()
	ctx := context.Background()
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 8)
		mu    sync.Mutex
		first error
	)
	for start := 0; start < len(tasks); start += 25 {
		batch := tasks[start:min(start+25, len(tasks))]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			reqs := make([]types.WriteRequest, len(batch))
			for i, task := range batch {
				reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: qItem(job, shards, task)}}
			}
			for attempt := 0; len(reqs) > 0; attempt++ {
				out, err := client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
				if err == nil && attempt > 20 {
					err = fmt.Errorf("%d items still unprocessed after %d attempts", len(out.UnprocessedItems[table]), attempt)
				}
				if err != nil {
					mu.Lock()
					first = cmp.Or(first, err)
					mu.Unlock()
					return
				}
				reqs = out.UnprocessedItems[table]
				if len(reqs) > 0 {
					time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	require.NoError(tb, first)
}

// qQuerySize is the number of tasks TestQueryGroundTruth stores: the full
// 10,000 on dynalite, fewer on moto. Moto answers about 100 requests per
// second and reads every item of the table for each query, so a query's
// cost there grows with the table; 1,000 tasks still spread every status
// over all eight shards and several pages.
func qQuerySize() int {
	if serverKind() == "moto" {
		return 1000
	}
	return 10000
}

// qExpect returns the IDs a query should return, in order, computed from the
// ground truth alone.
func qExpect(tasks []qTask, opts ddbtrack.QueryOptions[Step], keep func(qTask) bool) []string {
	var out []qTask
	for _, task := range tasks {
		if !slices.Contains(opts.Statuses, task.Status) {
			continue
		}
		if !opts.Since.IsZero() && time.UnixMilli(task.Updated).Before(opts.Since) {
			continue
		}
		if !opts.Until.IsZero() && !time.UnixMilli(task.Updated).Before(opts.Until) {
			continue
		}
		if keep != nil && !keep(task) {
			continue
		}
		out = append(out, task)
	}
	slices.SortFunc(out, func(a, b qTask) int {
		c := cmp.Or(cmp.Compare(a.Updated, b.Updated), cmp.Compare(a.ID, b.ID))
		if opts.NewestFirst {
			return -c
		}
		return c
	})
	if opts.Limit > 0 && len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	ids := make([]string, len(out))
	for i, task := range out {
		ids[i] = task.ID
	}
	return ids
}

// qIDs runs a query and returns the IDs it yields, in order.
func qIDs(t testing.TB, seq func(yield func(*ddbtrack.Task[Step], error) bool)) []string {
	t.Helper()
	ids, err := qIDsErr(seq)
	require.NoError(t, err)
	return ids
}

// qIDsErr returns the IDs a query yields, or its error.
func qIDsErr(seq func(yield func(*ddbtrack.Task[Step], error) bool)) ([]string, error) {
	ids := []string{}
	for task, err := range seq {
		if err != nil {
			return ids, err
		}
		ids = append(ids, task.ID)
	}
	return ids, nil
}

// qFixture is a table of this test holding tasks spread over every status
// and eight shards: most stored directly, a few driven through real
// transitions.
type qFixture struct {
	tr    *ddbtrack.Tracker[Step]
	clk   *clock
	tasks []qTask
}

func newQFixture(t *testing.T, n int) *qFixture {
	t.Helper()
	ctx := context.Background()
	clk := newClock()
	cfg := config(t)
	cfg.Now, cfg.Shards = clk.Now, 8
	tr := newTracker(t, cfg)
	tasks := qGenerate(n, clk.Now())
	qSeed(t, ddbtracktest.Client(t), cfg.Table, cfg.Job, 8, tasks)

	// A few tasks go through the tracker itself, so that what Create and
	// Start write is queried too, not only what the test wrote. Their truth
	// is what the test did to them; the clock stands still, so all of them
	// share one update time, across statuses and shards.
	const real = 30
	nts := make([]ddbtrack.NewTask, real)
	for i := range nts {
		nts[i] = ddbtrack.NewTask{ID: fmt.Sprintf("real-%02d", i), Data: map[string]any{"region": "eu"}}
	}
	_, err := tr.CreateMany(ctx, nts)
	require.NoError(t, err)
	for i, nt := range nts {
		truth := qTask{ID: nt.ID, Status: Todo, Updated: clk.Now().UnixMilli(), Region: "eu"}
		switch i % 3 {
		case 1:
			require.NoError(t, tr.Start(ctx, nt.ID, func(_ context.Context, task *ddbtrack.Task[Step]) error {
				return task.SetOutput(map[string]int{"rows": 49})
			}))
			truth.Status, truth.Rows = Success, 49
		case 2:
			require.Error(t, tr.Start(ctx, nt.ID, func(context.Context, *ddbtrack.Task[Step]) error {
				return errors.New("upstream timeout")
			}))
			truth.Status, truth.LastError = Failed, "upstream timeout"
		}
		tasks = append(tasks, truth)
	}
	return &qFixture{tr: tr, clk: clk, tasks: tasks}
}

// TestQueryGroundTruth stores 10,000 tasks (2,000 on moto) over five
// statuses and eight shards, and checks that every query returns exactly
// the tasks the ground truth says, in global order, whatever the page size,
// limit or filter, and that counts agree.
func TestQueryGroundTruth(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newQFixture(t, qQuerySize())
	now := f.clk.Now()
	mid := now.Add(-36 * time.Hour)
	// The sub-millisecond window is anchored on two failed tasks' update
	// times: Since half a millisecond after the first must exclude it, and
	// Until a microsecond after the second must include it.
	var failedTimes []int64
	for _, task := range f.tasks {
		if task.Status == Failed && task.Updated != f.tasks[0].Updated {
			failedTimes = append(failedTimes, task.Updated)
		}
	}
	slices.Sort(failedTimes)
	edgeSince := time.UnixMilli(failedTimes[len(failedTimes)/3]).Add(500 * time.Microsecond)
	edgeUntil := time.UnixMilli(failedTimes[2*len(failedTimes)/3]).Add(time.Microsecond)

	// byOne marks the cases whose pages are also walked one task at a time,
	// for the first pages only: every page re-reads the head of every
	// stream, so a full walk would cost a request per stream per task.
	cases := []struct {
		name  string
		opts  ddbtrack.QueryOptions[Step]
		keep  func(qTask) bool
		byOne bool
	}{
		{name: "every status oldest first", opts: ddbtrack.QueryOptions[Step]{Statuses: qStatuses}},
		{name: "every status newest first", opts: ddbtrack.QueryOptions[Step]{Statuses: qStatuses, NewestFirst: true, PageSize: 250}},
		{name: "failed in pages of 7", opts: ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed}, PageSize: 7}, byOne: true},
		{name: "failed newest first in pages of 7", opts: ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed}, PageSize: 7, NewestFirst: true}, byOne: true},
		{name: "statuses listed twice count once", opts: ddbtrack.QueryOptions[Step]{Statuses: []Step{Ignore, Todo, Ignore}}},
		{
			name: "window with sub-millisecond bounds",
			opts: ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed, Ignore}, Since: edgeSince, Until: edgeUntil},
		},
		{name: "since only newest first", opts: ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo, Success}, Since: mid, NewestFirst: true}},
		{name: "until only", opts: ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo, Success}, Until: mid}},
		{name: "empty window", opts: ddbtrack.QueryOptions[Step]{Statuses: qStatuses, Since: mid, Until: mid}},
		{name: "global limit", opts: ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo, Success}, Limit: 37, PageSize: 10}},
		{name: "global limit newest first", opts: ddbtrack.QueryOptions[Step]{Statuses: qStatuses, Limit: 250, NewestFirst: true}},
		{name: "limit larger than the result", opts: ddbtrack.QueryOptions[Step]{Statuses: []Step{Ignore}, Limit: 100000}},
		{
			name: "filter inside data with a limit",
			opts: ddbtrack.QueryOptions[Step]{Statuses: qStatuses, Filter: expression.Name("data.region").Equal(expression.Value("eu")), Limit: 500, PageSize: 50},
			keep: func(task qTask) bool { return task.Region == "eu" },
		},
		{
			name:  "filter on last_error",
			opts:  ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed, Ignore}, Filter: expression.Name("last_error").Contains("timeout")},
			keep:  func(task qTask) bool { return strings.Contains(task.LastError, "timeout") },
			byOne: true,
		},
		{
			name: "filter inside output newest first",
			opts: ddbtrack.QueryOptions[Step]{Statuses: []Step{Success}, NewestFirst: true, Filter: expression.Name("output.rows").GreaterThanEqual(expression.Value(45))},
			keep: func(task qTask) bool { return task.Rows >= 45 },
		},
		{
			name: "compound filter in a window",
			opts: ddbtrack.QueryOptions[Step]{
				Statuses: []Step{Failed, Ignore, Success}, Since: mid,
				Filter: expression.Name("data.region").In(expression.Value("eu"), expression.Value("ap")).
					And(expression.Name("last_error").Contains("timeout").Or(expression.Name("output.rows").LessThan(expression.Value(5)))),
			},
			keep: func(task qTask) bool {
				return (task.Region == "eu" || task.Region == "ap") &&
					(strings.Contains(task.LastError, "timeout") || (task.Status == Success && task.Rows < 5))
			},
		},
	}
	t.Run("Query", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				want := qExpect(f.tasks, c.opts, c.keep)
				require.Equal(t, want, qIDs(t, f.tr.Query(ctx, c.opts)))
			})
		}
	})

	t.Run("QueryPage", func(t *testing.T) {
		for _, c := range cases {
			for _, size := range []int{1, 1500} {
				if size == 1 && !c.byOne {
					continue
				}
				t.Run(fmt.Sprintf("%s/pages of %d", c.name, size), func(t *testing.T) {
					t.Parallel()
					// A page's Limit is its size; the query itself has none.
					opts := c.opts
					opts.Limit = 0
					want := qExpect(f.tasks, opts, c.keep)
					maxPages := len(want)/size + 1
					if size == 1 {
						// Small requests too, or each one-task page would
						// read a full page from every stream.
						maxPages, opts.PageSize = 25, min(cmp.Or(opts.PageSize, 10), 10)
						if serverKind() == "moto" {
							maxPages = 10
						}
						want = want[:min(len(want), maxPages)]
					}
					opts.Limit = size
					got, cursor := []string{}, ""
					for pages := 1; ; pages++ {
						page, err := f.tr.QueryPage(ctx, opts, cursor)
						require.NoError(t, err)
						for _, task := range page.Tasks {
							got = append(got, task.ID)
						}
						if page.Cursor == "" || pages == maxPages {
							require.Equal(t, want, got)
							if size > 1 {
								require.Empty(t, page.Cursor, "the last page says it is the last")
								require.Equal(t, max(1, (len(want)+size-1)/size), pages, "no empty page at the end")
							}
							break
						}
						require.Len(t, page.Tasks, size, "only the last page may be short")
						cursor = page.Cursor
						require.NotContains(t, cursor, "=", "a cursor is URL-safe")
						require.NotContains(t, cursor, "+", "a cursor is URL-safe")
						require.NotContains(t, cursor, "/", "a cursor is URL-safe")
					}
				})
			}
		}
	})

	t.Run("Unfinished", func(t *testing.T) {
		t.Parallel()
		want := qExpect(f.tasks, ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo, Failed, InProgress}}, func(task qTask) bool {
			return task.Status != InProgress || task.LeaseExp < now.UnixMilli()
		})
		got := qIDs(t, f.tr.Query(ctx, ddbtrack.QueryOptions[Step]{Unfinished: true}))
		require.Equal(t, want, got, "pending, failed and expired running tasks")

		var oe *ddbtrack.OptionError
		_, err := qIDsErr(f.tr.Query(ctx, ddbtrack.QueryOptions[Step]{Unfinished: true, Statuses: []Step{Success}}))
		require.ErrorAs(t, err, &oe, "Unfinished chooses its own statuses")
		require.Equal(t, "QueryOptions.Unfinished", oe.Field)

		opts := ddbtrack.QueryOptions[Step]{Unfinished: true, NewestFirst: true, Limit: 77, Filter: expression.Name("data.region").Equal(expression.Value("us"))}
		want = qExpect(f.tasks, ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo, Failed, InProgress}, NewestFirst: true, Limit: 77}, func(task qTask) bool {
			return task.Region == "us" && (task.Status != InProgress || task.LeaseExp < now.UnixMilli())
		})
		require.Equal(t, want, qIDs(t, f.tr.Query(ctx, opts)))
	})

	t.Run("Count", func(t *testing.T) {
		t.Parallel()
		truth := map[Step]int64{}
		for _, s := range qStatuses {
			truth[s] = 0
		}
		for _, task := range f.tasks {
			truth[task.Status]++
		}
		require.Equal(t, truth, stats(t, f.tr))
		for _, s := range qStatuses {
			require.Equal(t, truth[s], count(t, f.tr, s), "Count(%v)", s)
		}
		require.Zero(t, count(t, f.tr, Step(42)), "a status nobody uses counts zero")
	})
}

// qCounter is a Client that counts the Query requests sent through it.
type qCounter struct {
	ddbtrack.Client
	queries atomic.Int64
}

func (c *qCounter) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.queries.Add(1)
	return c.Client.Query(ctx, in, opts...)
}

// TestQueryCostDoesNotGrowWithEqualTimes: tasks due in the same
// millisecond, as CreateMany and frozen clocks make them, are ordered by
// ID within it, so a query with a limit reads one page per stream however
// many of them share the time; it once read a whole run of equal times,
// 76 requests for Limit 5 over 440 such tasks.
func TestQueryCostDoesNotGrowWithEqualTimes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	newTracker(t, cfg)
	var queries []int64
	for _, n := range []int{40, 440} {
		cfg.Job = fmt.Sprintf("equal-%d", n)
		tasks := make([]qTask, n)
		for i := range tasks {
			tasks[i] = qTask{ID: fmt.Sprintf("t-%03d", i), Status: []Step{Todo, Failed}[i%2], Updated: 1_700_000_000_000}
		}
		qSeed(t, ddbtracktest.Client(t), cfg.Table, cfg.Job, defaultShards, tasks)
		counter := &qCounter{Client: ddbtracktest.Client(t)}
		tr, err := ddbtrack.New(counter, cfg)
		require.NoError(t, err)
		ids := qIDs(t, tr.Query(ctx, ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo, Failed}, Limit: 5}))
		require.Equal(t, []string{"t-000", "t-001", "t-002", "t-003", "t-004"}, ids)
		queries = append(queries, counter.queries.Load())
	}
	require.Equal(t, queries[0], queries[1], "requests for 40 and for 440 tasks due in one millisecond")
	require.LessOrEqual(t, queries[1], int64(2*defaultShards), "one page per stream")
}

// TestQueryStopsWhenTheLoopDoes: a query reads a stream's next page only
// when the merge needs it, so breaking out of the loop, or reaching the
// limit, sends nothing more.
func TestQueryStopsWhenTheLoopDoes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	newTracker(t, cfg)
	// The first page of each stream is all the merge needs to start.
	tasks := make([]qTask, 400)
	for i := range tasks {
		tasks[i] = qTask{ID: fmt.Sprintf("t-%03d", i), Status: []Step{Todo, Failed}[i%2], Updated: 1_700_000_000_000 + int64(i)*1000}
	}
	qSeed(t, ddbtracktest.Client(t), cfg.Table, cfg.Job, defaultShards, tasks)
	counter := &qCounter{Client: ddbtracktest.Client(t)}
	tr, err := ddbtrack.New(counter, cfg)
	require.NoError(t, err)
	streams := int64(2 * defaultShards)
	opts := ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo, Failed}, PageSize: 5}

	seq := tr.Query(ctx, opts)
	require.Zero(t, counter.queries.Load(), "nothing is read until the loop starts")
	var got []string
	for task, err := range seq {
		require.NoError(t, err)
		got = append(got, task.ID)
		if len(got) == 3 {
			break
		}
	}
	require.Equal(t, []string{"t-000", "t-001", "t-002"}, got)
	require.Equal(t, streams, counter.queries.Load(), "one page per stream, and no more, before the break")
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, streams, counter.queries.Load(), "nothing is read after the break")

	counter.queries.Store(0)
	opts.Limit = 3
	require.Equal(t, got, qIDs(t, tr.Query(ctx, opts)))
	require.Equal(t, streams, counter.queries.Load(), "a limit stops the reads as a break does")

	counter.queries.Store(0)
	opts.Limit = 0
	require.Len(t, qIDs(t, tr.Query(ctx, opts)), len(tasks))
	require.GreaterOrEqual(t, counter.queries.Load(), int64(len(tasks)/5), "the whole result needs a request per page")

	counter.queries.Store(0)
	opts.Limit = 10
	page, err := tr.QueryPage(ctx, opts, "")
	require.NoError(t, err)
	require.Len(t, page.Tasks, 10)
	require.LessOrEqual(t, counter.queries.Load(), 2*streams, "a page reads what it shows, and a little more")

	// When one stream supplies the whole limit, one request is enough. A
	// tracker with one shard reads only the partition of shard 0 of the
	// four the tasks were stored under.
	one := cfg
	one.Shards = 1
	single, err := ddbtrack.New(counter, one)
	require.NoError(t, err)
	var shard0 []string
	for _, task := range tasks {
		if task.Status == Todo && qShard(task.ID, defaultShards) == 0 {
			shard0 = append(shard0, task.ID)
		}
	}
	require.Greater(t, len(shard0), 5)
	counter.queries.Store(0)
	require.Equal(t, shard0[:5], qIDs(t, single.Query(ctx, ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo}, Limit: 5, PageSize: 5})))
	require.Equal(t, int64(1), counter.queries.Load(), "a limit one stream fills costs one request")
}

func TestQueryRejectsBadOptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	newTracker(t, cfg)
	counter := &qCounter{Client: ddbtracktest.Client(t)}
	tr, err := ddbtrack.New(counter, cfg)
	require.NoError(t, err)
	since := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)

	cases := []struct {
		name string
		opts ddbtrack.QueryOptions[Step]
		want string
	}{
		{"no statuses", ddbtrack.QueryOptions[Step]{}, "QueryOptions.Statuses is empty: list at least one status"},
		{"negative limit", ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed}, Limit: -1}, "QueryOptions.Limit is -1"},
		{"negative page size", ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed}, PageSize: -5}, "QueryOptions.PageSize is -5"},
		{"until before since", ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed}, Since: since, Until: since.Add(-time.Hour)}, "is before Since"},
		{"filter that does not build", ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed}, Filter: expression.Name("").Equal(expression.Value(1))}, "QueryOptions.Filter cannot be built"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seqs := []func(func(*ddbtrack.Task[Step], error) bool){tr.Query(ctx, c.opts)}
			if c.name != "no statuses" { // Unfinished chooses its own statuses.
				unfinished := c.opts
				unfinished.Statuses, unfinished.Unfinished = nil, true
				seqs = append(seqs, tr.Query(ctx, unfinished))
			}
			for _, seq := range seqs {
				n := 0
				for task, err := range seq {
					require.Nil(t, task)
					require.ErrorIs(t, err, ddbtrack.ErrInvalidOption)
					require.ErrorContains(t, err, c.want)
					n++
				}
				require.Equal(t, 1, n, "the error is the only element")
			}
			c.opts.Limit = max(c.opts.Limit, 1)
			if c.name == "negative limit" {
				c.opts.Limit = -1
			}
			_, err := tr.QueryPage(ctx, c.opts, "")
			require.ErrorIs(t, err, ddbtrack.ErrInvalidOption)
			require.ErrorContains(t, err, c.want)
		})
	}
	_, err = tr.QueryPage(ctx, ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed}}, "")
	require.ErrorContains(t, err, "QueryOptions.Limit is 0: QueryPage returns Limit tasks per page")
	require.Zero(t, counter.queries.Load(), "bad options send no request")

	// Cursors: garbage, and one from another query.
	for i := range 3 {
		require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: fmt.Sprintf("t-%d", i)}))
	}
	opts := ddbtrack.QueryOptions[Step]{Statuses: []Step{Todo}, Limit: 1}
	page, err := tr.QueryPage(ctx, opts, "")
	require.NoError(t, err)
	require.NotEmpty(t, page.Cursor)
	for _, bad := range []string{"not a cursor!", "e30", page.Cursor[:len(page.Cursor)-3]} {
		_, err = tr.QueryPage(ctx, opts, bad)
		require.ErrorIs(t, err, ddbtrack.ErrInvalidOption, "cursor %q", bad)
		require.ErrorContains(t, err, "pass the Cursor of the previous Page unchanged")
	}
	for _, other := range []ddbtrack.QueryOptions[Step]{
		{Statuses: []Step{Failed}, Limit: 1},
		{Statuses: []Step{Todo}, Limit: 1, NewestFirst: true},
		{Statuses: []Step{Todo}, Limit: 1, Since: since},
		{Statuses: []Step{Todo}, Limit: 1, Filter: expression.Name("last_error").Contains("x")},
	} {
		_, err = tr.QueryPage(ctx, other, page.Cursor)
		require.ErrorIs(t, err, ddbtrack.ErrInvalidOption)
		require.ErrorContains(t, err, "cursor belongs to a query with other options")
	}
	opts.Limit, opts.PageSize = 5, 2
	page, err = tr.QueryPage(ctx, opts, page.Cursor)
	require.NoError(t, err, "the page size and limit may change from page to page")
	require.Len(t, page.Tasks, 2)
	require.Empty(t, page.Cursor)
}

// TestShardOfTaskIDIsStable pins, through what the tracker stores, the
// shard each task ID lands in among eight: the same in every process, as
// the index depends on it. The vectors are FNV-1a (32-bit) modulo 8,
// computed outside Go.
func TestShardOfTaskIDIsStable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.Shards = 8
	tr := newTracker(t, cfg)
	for id, shard := range map[string]int{"t-1": 1, "t-2": 0, "task-000042": 5} {
		require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: id}))
		out, err := ddbtracktest.Client(t).GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(cfg.Table),
			Key:       keyOf(cfg.Job, id),
		})
		require.NoError(t, err)
		require.Equal(t, &types.AttributeValueMemberS{Value: fmt.Sprintf("%s#%d#%d", cfg.Job, Todo, shard)}, out.Item["status_key"], "task %s", id)
		require.Equal(t, shard, qShard(id, 8), "the test's own FNV-1a agrees")
	}
}
