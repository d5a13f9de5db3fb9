package ddbtrack_test

// TestLedger moves money between accounts in a second table, one transfer
// per task, through Process under faults: lost answers, throttling, and a
// worker paused past its lease so that another takes its task over. With
// the transfers added to the success (Task.AddWrites), the balances come
// out exact. With the same writes sent by the function itself, the run
// shows the double applications that at-least-once execution allows.
//
//	go test -run '^TestLedger$' -v .                            # 200 tasks, also in make test
//	DDBTRACK_SERVER=moto go test -run '^TestLedger$' -v . -args -ledger.tasks=1000
//
// dynalite has no transactions, so there only the plain half runs.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/dev/faultproxy"
)

var ledgerTasks = flag.Int("ledger.tasks", 200, "transfers in TestLedger; the issue's full run is 1000")

// transfer is a ledger task's data: move Amount from From to To.
type transfer struct {
	From, To string
	Amount   int
}

// The transfers take money from source accounts and give it to sink
// accounts, never the other way, so that an extra application of a debit
// and one of a credit cannot cancel out in one account's balance.
const ledgerAccounts = 10

func ledgerTransfer(i int) transfer {
	return transfer{
		From:   fmt.Sprintf("src-%02d", i%ledgerAccounts),
		To:     fmt.Sprintf("dst-%02d", (i/ledgerAccounts)%ledgerAccounts),
		Amount: 1 + i%50,
	}
}

// ledgerWrites are a transfer's writes: the debit, the credit, and a
// journal entry for the task. Each account counts the writes applied to
// it (ops) and the journal counts how often the task's transfer was
// applied and which attempt's fence applied it last, so that the test can
// tell each extra application from the table alone.
func ledgerWrites(table, taskID string, fence int64, tr transfer) []types.TransactWriteItem {
	leg := func(account string, amount int) types.TransactWriteItem {
		return types.TransactWriteItem{Update: &types.Update{
			TableName:        aws.String(table),
			Key:              idKey(account),
			UpdateExpression: aws.String("ADD balance :amount, ops :one"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":amount": &types.AttributeValueMemberN{Value: strconv.Itoa(amount)},
				":one":    &types.AttributeValueMemberN{Value: "1"},
			},
		}}
	}
	journal := types.TransactWriteItem{Update: &types.Update{
		TableName:        aws.String(table),
		Key:              idKey("journal#" + taskID),
		UpdateExpression: aws.String("ADD applied :one SET fence = :fence, amount = :amount"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one":    &types.AttributeValueMemberN{Value: "1"},
			":fence":  &types.AttributeValueMemberN{Value: strconv.FormatInt(fence, 10)},
			":amount": &types.AttributeValueMemberN{Value: strconv.Itoa(tr.Amount)},
		},
	}}
	return []types.TransactWriteItem{leg(tr.From, -tr.Amount), leg(tr.To, tr.Amount), journal}
}

// applyPlain sends a transfer's writes one by one, as a function that
// does its own writes would.
func applyPlain(ctx context.Context, client *dynamodb.Client, writes []types.TransactWriteItem) error {
	for _, w := range writes {
		u := w.Update
		_, err := client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression,
			ExpressionAttributeValues: u.ExpressionAttributeValues,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// ledgerResult is what one ledger run found in the tables.
type ledgerResult struct {
	tasks, pauses, takenOver, leaseLost int
	// runs counts the function's runs, and failed the attempts recorded
	// as failures, such as a plain write that failed when its lease was
	// lost by the heartbeat's clock.
	runs, failed int
	injected     map[faultproxy.Fault]int
	// extraWrites counts applications of writes beyond one per write of
	// every task: debits, credits and journal entries.
	extraWrites int
	// doubled counts tasks whose transfer was applied more than once, by
	// their journal.
	doubled int
	// moneyOff is the sum over accounts of how far each balance is from
	// what the tasks add up to.
	moneyOff int
	// disagree counts tasks whose record is not Succeeded, or whose
	// journal shows another attempt's fence than the recorded success's.
	disagree int
}

func (r ledgerResult) String() string {
	return fmt.Sprintf("%d tasks, %d runs, %d failed attempts, %d pauses (%d taken over, %d attempts lost their lease), faults %v: "+
		"%d extra write applications, %d tasks applied more than once, balances off by %d in all, %d task records disagree",
		r.tasks, r.runs, r.failed, r.pauses, r.takenOver, r.leaseLost, r.injected, r.extraWrites, r.doubled, r.moneyOff, r.disagree)
}

// TestLedger runs its two halves one after the other, not in parallel:
// on moto, which serves one request at a time, each half would slow the
// other down enough to cost leases, and the two counts would no longer
// come from the same conditions.
func TestLedger(t *testing.T) {
	t.Parallel()
	n := *ledgerTasks
	t.Run("plain writes", func(t *testing.T) {
		res := runLedger(t, n, false)
		t.Logf("without transactions (%s): %s", serverKind(), res)
		// The paused workers' transfers were applied a second time by the
		// workers that took their tasks over: at least once means that.
		require.Positive(t, res.takenOver)
		require.GreaterOrEqual(t, res.doubled, res.takenOver, "every takeover of a paused worker's task applied its transfer again")
	})
	t.Run("transactional", func(t *testing.T) {
		requireTransactions(t)
		res := runLedger(t, n, true)
		t.Logf("with AddWrites (%s): %s", serverKind(), res)
		require.Positive(t, res.takenOver, "the run must have met a takeover of a paused worker's task")
		require.Positive(t, res.injected[faultproxy.Drop])
		require.Positive(t, res.injected[faultproxy.Throttle])
		require.Zero(t, res.extraWrites)
		require.Zero(t, res.doubled)
		require.Zero(t, res.moneyOff)
		require.Zero(t, res.disagree)
	})
}

// runLedger runs n transfers through three Process pools under faults,
// with transactional success or with plain writes from the function, and
// reports what the tables show. One pool pauses now and then in the
// middle of a task, after its writes and before its result, for longer
// than the lease, with its heartbeat stopped as a paused process's would
// be; it resumes once another worker has taken the task over and
// succeeded.
func runLedger(t *testing.T, n int, transactional bool) ledgerResult {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cfg := config(t)
	cfg.Job = "ledger"
	cfg.Lease = 2 * time.Second
	// Plain writes that fail after the SDK's retries fail the attempt,
	// which is retried; no task may give up in this test.
	cfg.MaxAttempts = 20
	tr := newTracker(t, cfg)
	r := newRig(t, 11)
	accounts := accountsTable(t, r.clean(t))

	tasks := make([]ddbtrack.NewTask, n)
	want := map[string]int{}
	wantOps := map[string]int{}
	for i := range tasks {
		x := ledgerTransfer(i)
		tasks[i] = ddbtrack.NewTask{ID: fmt.Sprintf("t-%04d", i), Data: x}
		want[x.From] -= x.Amount
		want[x.To] += x.Amount
		wantOps[x.From]++
		wantOps[x.To]++
	}
	created, err := tr.CreateMany(ctx, tasks)
	require.NoError(t, err)
	require.Len(t, created.Created, n)

	// A paused worker's renewals do not reach DynamoDB: its heartbeat is
	// stopped with it.
	var paused sync.Map // task ID -> true
	pausedRenewal := func(op string, body []byte) bool {
		if !isRenewal(op, body) {
			return false
		}
		found := false
		paused.Range(func(id, _ any) bool {
			found = bytes.Contains(body, []byte(`"S":"`+cfg.Job+"#"+id.(string)+`"`))
			return !found
		})
		return found
	}
	r.proxy.Set(
		faultproxy.Rule{Op: "UpdateItem", Match: pausedRenewal, Fault: faultproxy.Cut},
		faultproxy.Rule{Op: "TransactWriteItems", Fault: faultproxy.Drop, Probability: 0.05},
		faultproxy.Rule{Op: "TransactWriteItems", Fault: faultproxy.Throttle, Probability: 0.05},
		faultproxy.Rule{Op: "UpdateItem", Fault: faultproxy.Drop, Probability: 0.02},
		faultproxy.Rule{Op: "UpdateItem", Fault: faultproxy.Throttle, Probability: 0.03},
		faultproxy.Rule{Op: "Query", Fault: faultproxy.Throttle, Probability: 0.03},
	)

	maxPauses := max(n/100, 2)
	var pauses, takenOver, claims, leaseLost, runs, failed atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		owner := fmt.Sprintf("pool-%d", i)
		client := r.faulty(t)
		wcfg := cfg
		wcfg.Owner = owner
		wcfg.OnEvent = func(ctx context.Context, e ddbtrack.Event[Step]) context.Context {
			switch e.Kind {
			case ddbtrack.EventLeaseLost:
				leaseLost.Add(1)
			case ddbtrack.EventFailed, ddbtrack.EventIgnored:
				failed.Add(1)
			}
			return ctx
		}
		w, err := ddbtrack.New(client, wcfg)
		require.NoError(t, err)
		pauser := i == 0
		fn := func(ctx context.Context, task *ddbtrack.Task[Step]) error {
			runs.Add(1)
			var x transfer
			if err := task.UnmarshalData(&x); err != nil {
				return err
			}
			writes := ledgerWrites(accounts, task.ID, task.Fence, x)
			if transactional {
				if err := task.AddWrites(writes...); err != nil {
					return err
				}
			} else if err := applyPlain(ctx, client, writes); err != nil {
				return err
			}
			if err := task.SetOutput(x.Amount); err != nil {
				return err
			}
			if pauser && task.Attempts == 1 && claims.Add(1)%20 == 5 && pauses.Add(1) <= int32(maxPauses) {
				// The process stops here, past its lease. Whatever its
				// context says, it goes on when it wakes up, as a
				// paused process does: it cannot have seen the loss.
				paused.Store(task.ID, true)
				defer paused.Delete(task.ID)
				if waitForTakeover(tr, task.ID, task.Fence, time.Minute) {
					takenOver.Add(1)
				}
			}
			return nil
		}
		wg.Go(func() {
			_, errs[i] = w.Process(ctx, fn, ddbtrack.ProcessOptions[Step]{
				Concurrency:  4,
				PollInterval: 50 * time.Millisecond,
				MaxBackoff:   200 * time.Millisecond,
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "pool-%d", i)
	}

	res := ledgerResult{tasks: n, pauses: min(int(pauses.Load()), maxPauses), takenOver: int(takenOver.Load()),
		leaseLost: int(leaseLost.Load()), runs: int(runs.Load()), failed: int(failed.Load()), injected: r.proxy.Injected()}
	items := scanAll(t, r.clean(t), accounts)
	for account, b := range want {
		item := items[account]
		res.moneyOff += abs(attrInt(t, item, "balance") - b)
		res.extraWrites += attrInt(t, item, "ops") - wantOps[account]
	}
	for _, nt := range tasks {
		task := get(t, tr, nt.ID)
		journal := items["journal#"+nt.ID]
		applied := attrInt(t, journal, "applied")
		res.extraWrites += max(applied-1, 0)
		if applied > 1 {
			res.doubled++
		}
		var out int
		if task.Status != Success || task.UnmarshalOutput(&out) != nil || out != nt.Data.(transfer).Amount ||
			applied == 0 || int64(attrInt(t, journal, "fence")) != task.Fence {
			res.disagree++
		}
	}
	return res
}

// waitForTakeover waits until another attempt (a later fence) has
// succeeded at the task, and reports whether one did within limit.
func waitForTakeover(tr *ddbtrack.Tracker[Step], id string, fence int64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		task, err := tr.Get(context.Background(), id)
		if err == nil && task.Fence > fence && task.Status == Success {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// scanAll reads every item of a table, by its "id".
func scanAll(t testing.TB, client *dynamodb.Client, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	items := map[string]map[string]types.AttributeValue{}
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		require.NoError(t, err)
		for _, item := range page.Items {
			items[item["id"].(*types.AttributeValueMemberS).Value] = item
		}
	}
	return items
}

// attrInt reads a number attribute, 0 if the item or attribute is missing.
func attrInt(t testing.TB, item map[string]types.AttributeValue, name string) int {
	t.Helper()
	n, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0
	}
	v, err := strconv.Atoi(n.Value)
	require.NoError(t, err)
	return v
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
