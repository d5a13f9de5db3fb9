package opsfixture

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// Scale describes a big job that SeedScale writes: how many tasks of each
// status it holds, and the causes of its failures.
type Scale struct {
	// Now is the time the job is seeded as of: every task changed status
	// in the three days before it, and the stuck tasks' leases ran out
	// before it.
	Now time.Time
	// ByStatus is the number of tasks in each status.
	ByStatus map[Status]int
	// Stuck is how many of the Running tasks have an expired lease.
	Stuck int
	// ByCause is how many Failed tasks each of ScaleCauses has.
	ByCause []int
}

// Total returns the number of tasks in the job.
func (s Scale) Total() int {
	n := 0
	for _, c := range s.ByStatus {
		n += c
	}
	return n
}

// ScaleCause is one cause of the failures SeedScale writes: the text that
// every failure of that cause contains, and a message with the details
// that vary, which the errors view masks.
type ScaleCause struct {
	// Contains is a fixed part of every message, to filter the cause by.
	Contains string
	// Share is the cause's share of the failures, in percent.
	Share int
	// Message returns the message of the cause's ith failure.
	Message func(i int) string
}

// ScaleCauses are the six causes of SeedScale's failures, the most common
// first: a handful, as in a real bad night, so that the errors view groups
// the failures onto one screen, and a rare one, which a filtered listing
// has to read every failed task to find.
var ScaleCauses = []ScaleCause{
	{"i/o timeout", 40, func(i int) string { return fmt.Sprintf("dial tcp 10.0.%d.%d:443: i/o timeout", i%7, i%250+1) }},
	{"503 Service Unavailable", 25, func(i int) string {
		return fmt.Sprintf("upstream returned 503 Service Unavailable for batch %d (request id %08x-%04x)", i, i*2654435761, i%65536)
	}},
	{"bad date", 15, func(i int) string { return fmt.Sprintf("row %d: bad date \"2025-13-%02d\"", i%5000, i%28+1) }},
	{"context deadline exceeded", 10, func(i int) string {
		return fmt.Sprintf("context deadline exceeded (timeout after %ds)", 30+i%3*15)
	}},
	{"schema mismatch", 8, func(int) string { return "schema mismatch: column \"amount\" is text, want numeric" }},
	{"permission denied", 2, func(i int) string { return fmt.Sprintf("open s3://imports/2025/%05d.csv: permission denied", i) }},
}

// scaleRunning is how many tasks SeedScale leaves Running: 8 pools of 16
// workers. scaleStuck of them have a lease that ran out.
const (
	scaleRunning = 128
	scaleStuck   = 8
)

// SeedScale writes a job of n tasks into table, for the fixture's Job and
// enum, under the default two shards, as of now: 2% Failed (2,000 of
// 100,000) over the six ScaleCauses, 0.5% Ignored, 128 Running of which 8
// are stuck, 30% Pending and the rest Succeeded, their status changes
// spread evenly over the three days before now.
//
// It writes the items with BatchWriteItem, 25 per request and 8 requests
// at once, in the format the library stores (lock.go's createWrite, claim
// and outcome writes): going through Create and Start would take an hour
// at 100,000 tasks. It writes no job item, so the job has no shared
// counts yet; the tracker that created the table has registered the job.
func SeedScale(tb testing.TB, client *dynamodb.Client, table string, n int, now time.Time) Scale {
	tb.Helper()
	sc := Scale{Now: now, ByStatus: map[Status]int{}, Stuck: scaleStuck, ByCause: make([]int, len(ScaleCauses))}
	failed, ignored := n/50, n/200
	running := min(scaleRunning, n/100)
	pending := n * 30 / 100
	succeeded := n - failed - ignored - running - pending
	if succeeded < 0 || running < scaleStuck {
		tb.Fatalf("opsfixture: SeedScale needs at least 1,000 tasks, got %d", n)
	}

	// The statuses are laid out in runs, and each status's tasks spaced
	// evenly over the three days, so that every hour of the chart's
	// windows holds some of each.
	var plan []Status
	for _, run := range []struct {
		s Status
		n int
	}{{Failed, failed}, {Ignored, ignored}, {Running, running}, {Pending, pending}, {Succeeded, succeeded}} {
		for range run.n {
			plan = append(plan, run.s)
		}
		sc.ByStatus[run.s] = run.n
	}
	ofStatus := map[Status]int{}
	items := make([]map[string]types.AttributeValue, len(plan))
	for i, s := range plan {
		k := ofStatus[s]
		ofStatus[s]++
		var cause int
		if s == Failed {
			cause = causeOf(k)
			sc.ByCause[cause]++
		}
		items[i] = scaleItem(i, s, k, sc.ByStatus[s], cause, now)
	}
	batchWrite(tb, client, table, items)
	return sc
}

// causeOf returns the cause of the kth failure, by the causes' shares,
// interleaved so that every hour has failures of each cause.
func causeOf(k int) int {
	pos := k % 100
	for c, cause := range ScaleCauses {
		if pos < cause.Share {
			return c
		}
		pos -= cause.Share
	}
	return 0
}

// scaleItem returns the stored item of the task with index i, the kth of n
// in status s, as of now.
func scaleItem(i int, s Status, k, n int, cause int, now time.Time) map[string]types.AttributeValue {
	num := func(v int64) types.AttributeValue {
		return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
	}
	str := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	id := fmt.Sprintf("import-%07d", i)
	// The kth task of its status changed status at changed: evenly
	// spread over the three days before now, the last a minute before.
	// In milliseconds: k times the span in nanoseconds overflows an int64
	// from k = 35,585 on.
	const span = 72 * time.Hour
	changed := now.Add(-time.Minute-span).UnixMilli() + int64(k)*span.Milliseconds()/int64(n)
	created := changed - int64(time.Hour/time.Millisecond)
	due := changed
	item := map[string]types.AttributeValue{
		"pk":           str(keys.Task(Job, id)),
		"job":          str(Job),
		"task_id":      str(id),
		"attempts":     num(0),
		"fence":        num(0),
		"created_at":   num(created),
		"updated_at":   num(changed),
		"create_token": str(fmt.Sprintf("%016x", i)),
		"data": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"file":   str(fmt.Sprintf("s3://imports/2025/01/%02d/part-%05d.csv", i%28+1, i)),
			"region": str([]string{"eu-west-1", "us-east-1", "ap-south-1"}[i%3]),
			"rows":   num(int64(1000 + i%9000)),
		}},
	}
	history := func(attempts int, msg string) {
		records := make([]types.AttributeValue, attempts)
		fences := make([]string, attempts)
		for a := range attempts {
			at := changed - int64(attempts-1-a)*int64(time.Minute/time.Millisecond)
			records[a] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"attempt": num(int64(a + 1)), "fence": num(int64(a + 1)), "at": num(at), "message": str(msg),
			}}
			fences[a] = strconv.Itoa(a + 1)
		}
		item["errors"] = &types.AttributeValueMemberL{Value: records}
		item["outcomes"] = &types.AttributeValueMemberNS{Value: fences}
		item["last_error"] = str(msg)
		item["attempts"], item["fence"] = num(int64(attempts)), num(int64(attempts))
		item["started_at"] = num(changed - 2000)
	}
	switch s {
	case Running:
		// A running task is due when its lease runs out: a live one within
		// the lease from now, a stuck one before now.
		due = now.Add(time.Duration(k+1) * Lease / time.Duration(n)).UnixMilli()
		if k < scaleStuck {
			due = now.Add(-time.Duration(k+1) * 5 * time.Minute).UnixMilli()
		}
		item["lease_owner"] = str(fmt.Sprintf("pool-%d:worker-%02d", k%8, k/8))
		item["lease_token"] = str(fmt.Sprintf("token-%016x", i))
		item["lease_expires_at"] = num(due)
		item["claimed_from"], item["claimed_due"] = num(int64(Pending)), num(created)
		item["abandoned_owner"], item["abandoned_until"] = str(""), num(0)
		item["started_at"], item["updated_at"] = num(due-Lease.Milliseconds()), num(due-Lease.Milliseconds())
		item["attempts"], item["fence"] = num(1), num(1)
	case Succeeded:
		item["started_at"], item["succeeded_at"] = num(changed-2000), num(changed)
		item["output"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"imported": num(int64(1000 + i%9000))}}
		item["outcomes"] = &types.AttributeValueMemberNS{Value: []string{"1"}}
		item["fence"] = num(1)
		item["expires_at"] = num(time.UnixMilli(changed).Add(Retention).Unix())
	case Failed:
		history(1+k%2, ScaleCauses[cause].Message(k))
	case Ignored:
		history(3, fmt.Sprintf("validate %s: checksum mismatch", id))
	}
	item["status"] = num(int64(s))
	item["status_name"] = str(s.String())
	item["status_key"] = str(keys.Status(Job, int(s), keys.Shard(id, 2)))
	item["due_at"] = num(due)
	item["order_key"] = str(keys.Order(due, id))
	return item
}

// batchWrite stores items with BatchWriteItem, 25 per request and 8
// requests at once, retrying what the server leaves unprocessed.
func batchWrite(tb testing.TB, client *dynamodb.Client, table string, items []map[string]types.AttributeValue) {
	tb.Helper()
	ctx := context.Background()
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 8)
		mu    sync.Mutex
		first error
	)
	for start := 0; start < len(items); start += 25 {
		batch := items[start:min(start+25, len(items))]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			reqs := make([]types.WriteRequest, len(batch))
			for i, item := range batch {
				reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}
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
	if first != nil {
		tb.Fatalf("opsfixture: seed %s: %v", table, first)
	}
}
