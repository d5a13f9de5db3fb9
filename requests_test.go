package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
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

// requestRow is what one step of a task's life sent, and what it may send.
type requestRow struct {
	Step string
	Got  reqcount.Counts
	Want reqcount.Counts
	// NA says why the step could not be measured on this server.
	NA string
}

func (r requestRow) ok() bool { return r.NA != "" || r.Got.String() == r.Want.String() }

// The request budget. A task's normal life is three writes and no read:
// create, claim, outcome. A refusal costs the refused write, plus one read
// only where the server does not return the refusing item.
var (
	onePut       = reqcount.Counts{reqcount.PutItem: 1}
	oneUpdate    = reqcount.Counts{reqcount.UpdateItem: 1}
	updateAndGet = reqcount.Counts{reqcount.UpdateItem: 1, reqcount.GetItem: 1}
)

// measureRequests takes one task of each kind through its life on a fresh
// tracker and returns what each step sent. prefix keeps task IDs apart when
// it runs more than once on one table.
func measureRequests(tb testing.TB, cfg ddbtrack.Config[Step], clk *clock, prefix string) []requestRow {
	tb.Helper()
	ctx := context.Background()
	server := ddbtracktest.Client(tb)
	rc := reqcount.New(server)
	tr, err := ddbtrack.New(rc, cfg)
	require.NoError(tb, err)
	var rows []requestRow
	measure := func(step string, want reqcount.Counts, f func()) {
		before := rc.Counts()
		f()
		rows = append(rows, requestRow{Step: step, Got: rc.Counts().Sub(before), Want: want})
	}
	// startSplit runs Start and splits its requests into the claim's and
	// the outcome's, at the moment fn runs.
	startSplit := func(rc *reqcount.Client, tr *ddbtrack.Tracker[Step], id string, fnErr error) (claim, outcome reqcount.Counts, err error) {
		before := rc.Counts()
		var during reqcount.Counts
		err = tr.Start(ctx, id, func(context.Context, *ddbtrack.Task[Step]) error {
			during = rc.Counts()
			return fnErr
		})
		return during.Sub(before), rc.Counts().Sub(during), err
	}

	ok, failed, locked := prefix+"ok", prefix+"failed", prefix+"locked"
	measure("create", onePut, func() { require.NoError(tb, tr.Create(ctx, ddbtrack.NewTask{ID: ok, Data: payload{Version: 1}})) })
	require.NoError(tb, tr.Create(ctx, ddbtrack.NewTask{ID: failed, Data: payload{Version: 1}}))
	require.NoError(tb, tr.Create(ctx, ddbtrack.NewTask{ID: locked, Data: payload{Version: 1}}))

	claim, outcome, err := startSplit(rc, tr, ok, nil)
	require.NoError(tb, err)
	rows = append(rows,
		requestRow{Step: "claim", Got: claim, Want: oneUpdate},
		requestRow{Step: "success", Got: outcome, Want: oneUpdate})

	boom := errors.New("boom")
	_, outcome, err = startSplit(rc, tr, failed, boom)
	require.ErrorIs(tb, err, boom)
	rows = append(rows, requestRow{Step: "failure", Got: outcome, Want: oneUpdate})

	// Refusals: a claim of a succeeded task, with and without the server
	// returning the refusing item.
	refused := func(step string, drop bool) {
		if !drop && !returnsRefusedItem(tb, cfg.Table, keyOf(cfg.Job, ok)) {
			rows = append(rows, requestRow{Step: step, Want: oneUpdate, NA: serverKind() + " does not return the refusing item; run with DDBTRACK_SERVER=moto"})
			return
		}
		rc.DropRefusedItem = drop
		defer func() { rc.DropRefusedItem = false }()
		want := oneUpdate
		if drop {
			want = updateAndGet
		}
		measure(step, want, func() { require.ErrorIs(tb, tr.Start(ctx, ok, okFn), ddbtrack.ErrTaskSucceeded) })
	}
	refused("refused claim, item returned", false)
	refused("refused claim, item not returned", true)

	// A claim of a task that is not due yet: refused as any other claim.
	notDue := prefix + "later"
	require.NoError(tb, tr.Create(ctx, ddbtrack.NewTask{ID: notDue, DueAt: clk.Now().Add(time.Hour)}))
	measure("refused claim, not due yet", outcomeRefusal(tb, cfg.Table, keyOf(cfg.Job, ok)), func() {
		require.ErrorIs(tb, tr.Start(ctx, notDue, okFn), ddbtrack.ErrTaskNotDue)
	})

	// Cancels: of a task no worker holds, one write; of a running task,
	// the refused write that finds it running and the request.
	measure("cancel, not running", oneUpdate, func() { require.NoError(tb, tr.Cancel(ctx, notDue, "not needed")) })
	running := prefix + "running"
	require.NoError(tb, tr.Create(ctx, ddbtrack.NewTask{ID: running}))
	cancelRunning := outcomeRefusal(tb, cfg.Table, keyOf(cfg.Job, ok)).Add(oneUpdate)
	err = tr.Start(ctx, running, func(context.Context, *ddbtrack.Task[Step]) error {
		measure("cancel, running", cancelRunning, func() { require.NoError(tb, tr.Cancel(ctx, running, "not needed")) })
		return nil
	})
	require.ErrorIs(tb, err, ddbtrack.ErrCancelled, "the cancel reached DynamoDB before the success")

	// A takeover: the first worker's lease expires while it runs; a second
	// worker claims the task, and the first worker's late result is refused.
	rc2 := reqcount.New(server)
	cfg2 := cfg
	cfg2.Owner = "second-worker"
	tr2, err := ddbtrack.New(rc2, cfg2)
	require.NoError(tb, err)
	var takeover, lateBefore reqcount.Counts
	err = tr.Start(ctx, locked, func(context.Context, *ddbtrack.Task[Step]) error {
		clk.Advance(tr.Config().Lease + time.Second)
		var err error
		takeover, _, err = startSplit(rc2, tr2, locked, nil)
		require.NoError(tb, err)
		lateBefore = rc.Counts()
		return nil
	})
	require.ErrorIs(tb, err, ddbtrack.ErrLeaseLost)
	rows = append(rows,
		requestRow{Step: "claim of an expired lease", Got: takeover, Want: oneUpdate},
		requestRow{Step: "late outcome, lease lost", Got: rc.Counts().Sub(lateBefore), Want: outcomeRefusal(tb, cfg.Table, keyOf(cfg.Job, ok))})

	// A heartbeat: with a short lease, Start renews it every Lease/3 while
	// fn runs. fn returns once a renewal has completed, well before the
	// next is due: returning while one is in flight makes Start cancel it,
	// and dynalite 4.0.0 dies when a client aborts a request (it rethrows
	// the socket's ECONNRESET). The count is per renewal.
	hb := prefix + "heartbeat"
	done := &completions{Client: rc}
	trHB, err := ddbtrack.New(done, cfg)
	require.NoError(tb, err)
	require.NoError(tb, trHB.Create(ctx, ddbtrack.NewTask{ID: hb}))
	var beats reqcount.Counts
	err = trHB.StartWith(ctx, hb, ddbtrack.StartOptions{Lease: 600 * time.Millisecond}, func(context.Context, *ddbtrack.Task[Step]) error {
		before, n := rc.Counts(), done.updates.Load()
		deadline := time.Now().Add(10 * time.Second)
		for done.updates.Load() == n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		beats = rc.Counts().Sub(before)
		return nil
	})
	require.NoError(tb, err)
	rows = append(rows, requestRow{Step: "heartbeat (per renewal)", Got: perRenewal(beats), Want: oneUpdate})

	// A success with writes added by the function: the success and the
	// writes go as one transaction, in place of the success's UpdateItem.
	// The task with no writes above shows that a transaction is only
	// sent when there are writes to commit.
	const txStep = "success with 2 writes added (one transaction)"
	oneTx := reqcount.Counts{reqcount.TransactWriteItems: 1}
	if serverKind() == "dynalite" {
		rows = append(rows, requestRow{Step: txStep, Want: oneTx, NA: "dynalite has no transactions; run with DDBTRACK_SERVER=moto"})
		return rows
	}
	accounts := accountsTable(tb, server)
	tx := prefix + "transaction"
	require.NoError(tb, tr.Create(ctx, ddbtrack.NewTask{ID: tx}))
	before := rc.Counts()
	var during reqcount.Counts
	err = tr.Start(ctx, tx, func(_ context.Context, task *ddbtrack.Task[Step]) error {
		during = rc.Counts()
		return task.AddWrites(addTo(accounts, tx+"-from", -1), addTo(accounts, tx+"-to", 1))
	})
	require.NoError(tb, err)
	rows = append(rows,
		requestRow{Step: "claim, before a transaction", Got: during.Sub(before), Want: oneUpdate},
		requestRow{Step: txStep, Got: rc.Counts().Sub(during), Want: oneTx})
	return rows
}

// completions counts UpdateItem calls that have returned, where reqcount
// counts them as they start.
type completions struct {
	ddbtrack.Client
	updates atomic.Int64
}

func (c *completions) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	defer c.updates.Add(1)
	return c.Client.UpdateItem(ctx, in, optFns...)
}

// perRenewal divides the requests seen while fn ran by the number of
// renewals among them, which may be more than one on a slow machine.
func perRenewal(c reqcount.Counts) reqcount.Counts {
	n := c[reqcount.UpdateItem]
	if n == 0 {
		return c
	}
	out := reqcount.Counts{}
	for op, v := range c {
		out[op] = v / n
		if v%n != 0 {
			return c // Not a whole number per renewal: show the raw counts.
		}
	}
	return out
}

func okFn(context.Context, *ddbtrack.Task[Step]) error { return nil }

func keyOf(job, id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: job + "#" + id}}
}

// outcomeRefusal is what a refused outcome write may cost on this server.
func outcomeRefusal(tb testing.TB, table string, key map[string]types.AttributeValue) reqcount.Counts {
	if returnsRefusedItem(tb, table, key) {
		return oneUpdate
	}
	return updateAndGet
}

// returnsRefusedItem asks the server whether it returns the item that
// refuses a conditional write (ReturnValuesOnConditionCheckFailure), by
// making a write that the existing item refuses.
func returnsRefusedItem(tb testing.TB, table string, key map[string]types.AttributeValue) bool {
	tb.Helper()
	_, err := ddbtracktest.Client(tb).UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName:                           aws.String(table),
		Key:                                 key,
		UpdateExpression:                    aws.String("SET #probe = :probe"),
		ConditionExpression:                 aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames:            map[string]string{"#probe": "probe", "#pk": "pk"},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":probe": &types.AttributeValueMemberN{Value: "1"}},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	require.ErrorAs(tb, err, &ccf, "the probe must be refused by the existing task")
	return len(ccf.Item) > 0
}

func requestTable(rows []requestRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| step | requests (%s) | budget |\n| --- | --- | --- |\n", serverKind())
	for _, r := range rows {
		got := r.Got.String()
		if r.NA != "" {
			got = "not measured: " + r.NA
		} else if !r.ok() {
			got += " **over budget**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.Step, got, r.Want)
	}
	return b.String()
}

// TestRequestsPerLifecycle holds each step of a task's life to its request
// budget, so that `make test` catches a change that adds a request.
func TestRequestsPerLifecycle(t *testing.T) {
	t.Parallel()
	cfg, clk := clockedConfig(t)
	newTracker(t, cfg)
	rows := measureRequests(t, cfg, clk, "")
	t.Log("\n" + requestTable(rows))
	for _, r := range rows {
		if r.NA == "" {
			require.Equal(t, r.Want.String(), r.Got.String(), "requests sent by step %q", r.Step)
		}
	}
}

// BenchmarkRequests measures the same steps as TestRequestsPerLifecycle,
// b.N times, reports the normal path's requests per task, and fails if any
// step goes over its budget.
func BenchmarkRequests(b *testing.B) {
	cfg, clk := clockedConfig(b)
	newTracker(b, cfg)
	var rows []requestRow
	for i := range b.N {
		rows = measureRequests(b, cfg, clk, fmt.Sprintf("%d-", i))
		for _, r := range rows {
			if !r.ok() {
				b.Fatalf("step %q sent %s; its budget is %s\n%s", r.Step, r.Got, r.Want, requestTable(rows))
			}
		}
	}
	normal := reqcount.Counts{}
	for _, r := range rows[:3] { // create, claim, success
		for op, n := range r.Got {
			normal[op] += n
		}
	}
	b.ReportMetric(float64(normal.Writes()), "writes/task")
	b.ReportMetric(float64(normal.Reads()), "reads/task")
	b.Log("\n" + requestTable(rows))
}
