package ddbtrack_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// qBenchSizes are the job sizes the query benchmarks run at.
var qBenchSizes = []int{1_000, 10_000, 100_000}

// qBenchTables holds the tables the query benchmarks read, one per job
// size, loaded once per test binary and shared by BenchmarkQuery and
// BenchmarkStats: loading 100,000 tasks takes the better part of a minute,
// too long to repeat for every benchmark, size and -count. On a local
// server the tables go with the server when the binary ends.
var qBenchTables struct {
	mu     sync.Mutex
	loaded map[int]ddbtrack.Config[Step]
}

// qBenchJob returns the configuration of a table holding n tasks from
// qGenerate, under the default four shards, loading it on first use.
func qBenchJob(b *testing.B, n int) ddbtrack.Config[Step] {
	b.Helper()
	qBenchTables.mu.Lock()
	defer qBenchTables.mu.Unlock()
	if cfg, ok := qBenchTables.loaded[n]; ok {
		return cfg
	}
	clk := newClock()
	cfg := ddbtrack.Config[Step]{
		Table: fmt.Sprintf("BenchmarkQueryJob-%d-%08x", n, rand.Uint32()), Job: "bench-job",
		Pending: Todo, Running: InProgress, Failed: Failed, Succeeded: Success, Ignored: Ignore,
		Logger: quietLogger(), Now: clk.Now,
	}
	client := ddbtracktest.Client(b)
	tr, err := ddbtrack.New(client, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.CreateTable(context.Background()); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	qSeed(b, client, cfg.Table, cfg.Job, defaultShards, qGenerate(n, clk.Now()))
	b.Logf("loaded %d tasks in %v", n, time.Since(start).Round(time.Millisecond))
	if serverKind() == "external" {
		// A table left on a real service costs money: it goes with this
		// benchmark, and the next one loads its own.
		b.Cleanup(func() {
			_, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(cfg.Table)})
		})
		return cfg
	}
	if qBenchTables.loaded == nil {
		qBenchTables.loaded = map[int]ddbtrack.Config[Step]{}
	}
	qBenchTables.loaded[n] = cfg
	return cfg
}

// qBenchCounter is a Client that counts Query requests and the read
// capacity they consume, which it asks the server to report.
type qBenchCounter struct {
	ddbtrack.Client
	queries atomic.Int64
	rcu     atomic.Uint64 // Capacity units times 1,000, to add atomically.
}

func (c *qBenchCounter) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.queries.Add(1)
	withCapacity := *in
	withCapacity.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
	out, err := c.Client.Query(ctx, &withCapacity, opts...)
	if err == nil && out.ConsumedCapacity != nil {
		c.rcu.Add(uint64(math.Round(aws.ToFloat64(out.ConsumedCapacity.CapacityUnits) * 1000)))
	}
	return out, err
}

func (c *qBenchCounter) report(b *testing.B) {
	b.ReportMetric(float64(c.queries.Load())/float64(b.N), "requests/op")
	b.ReportMetric(float64(c.rcu.Load())/1000/float64(b.N), "RCU/op")
}

func (c *qBenchCounter) reset() {
	c.queries.Store(0)
	c.rcu.Store(0)
}

// BenchmarkQuery reads jobs of 1,000, 10,000 and 100,000 tasks (30% Pending,
// 10% Running, 20% Failed, 30% Succeeded, 10% Ignored, four shards) through
// Query:
//
//   - newest-100: the 100 most recent failures, a listing's first screen;
//   - filtered-100: the 100 oldest failed or ignored tasks whose error
//     mentions a timeout (about half of them), the filter applied by
//     DynamoDB after the read;
//   - all-failed: every failed task, 20% of the job.
//
// Reported per call: requests (counted through a wrapping Client), read
// capacity units as the server computes them, and tasks returned.
func BenchmarkQuery(b *testing.B) {
	ctx := context.Background()
	queries := []struct {
		name string
		opts ddbtrack.QueryOptions[Step]
	}{
		{"newest-100", ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed}, NewestFirst: true, Limit: 100}},
		{"filtered-100", ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed, Ignore}, Filter: expression.Name("last_error").Contains("timeout"), Limit: 100}},
		{"all-failed", ddbtrack.QueryOptions[Step]{Statuses: []Step{Failed}}},
	}
	for _, n := range qBenchSizes {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			cfg := qBenchJob(b, n)
			counter := &qBenchCounter{Client: ddbtracktest.Client(b)}
			tr, err := ddbtrack.New(counter, cfg)
			if err != nil {
				b.Fatal(err)
			}
			for _, q := range queries {
				b.Run(q.name, func(b *testing.B) {
					counter.reset()
					var tasks int
					for b.Loop() {
						for _, err := range tr.Query(ctx, q.opts) {
							if err != nil {
								b.Fatal(err)
							}
							tasks++
						}
					}
					counter.report(b)
					b.ReportMetric(float64(tasks)/float64(b.N), "tasks/op")
				})
			}
		})
	}
}

// BenchmarkStats counts every status of jobs of 1,000, 10,000 and 100,000
// tasks with Stats: Select=COUNT queries over five statuses and four shards.
// Reported per call: requests and read capacity units, which grow with the
// number of tasks because a COUNT query reads every item it counts.
func BenchmarkStats(b *testing.B) {
	ctx := context.Background()
	for _, n := range qBenchSizes {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			cfg := qBenchJob(b, n)
			counter := &qBenchCounter{Client: ddbtracktest.Client(b)}
			tr, err := ddbtrack.New(counter, cfg)
			if err != nil {
				b.Fatal(err)
			}
			var total int64
			for b.Loop() {
				counts, err := tr.Count(ctx)
				if err != nil {
					b.Fatal(err)
				}
				total = 0
				for _, c := range counts.ByStatus {
					total += c
				}
			}
			if total != int64(n) {
				b.Fatalf("Stats counted %d tasks, want %d", total, n)
			}
			counter.report(b)
		})
	}
}
