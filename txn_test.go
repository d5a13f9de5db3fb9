package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/dev/faultproxy"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// The tests of Task.AddWrites write to a second table of the test's own,
// besides the tracker's: a task's writes to other tables are what
// transactional success is for.

// requireTransactions skips a test on a server without TransactWriteItems.
// Only dynalite lacks them; TestAddWritesWithoutTransactions checks the
// error it gives there.
func requireTransactions(t testing.TB) {
	t.Helper()
	if serverKind() == "dynalite" {
		t.Skip("dynalite has no transactions (TransactWriteItems); run with DDBTRACK_SERVER=moto")
	}
}

// accountsTable creates a table keyed by a string "id", for a task's own
// writes, and returns its name. The test kit deletes it when the test ends.
func accountsTable(t testing.TB, client *dynamodb.Client) string {
	t.Helper()
	ctx := context.Background()
	name := ddbtracktest.Table(t)
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
	})
	require.NoError(t, err)
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, time.Second
	})
	require.NoError(t, w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute))
	return name
}

func idKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}}
}

// addTo is a write that adds n to the balance of account id.
func addTo(table, id string, n int) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                 aws.String(table),
		Key:                       idKey(id),
		UpdateExpression:          aws.String("ADD balance :n"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":n": &types.AttributeValueMemberN{Value: strconv.Itoa(n)}},
	}}
}

// putItem is a write that stores item id with a payload of size bytes.
func putItem(table, id string, size int) types.TransactWriteItem {
	return types.TransactWriteItem{Put: &types.Put{
		TableName: aws.String(table),
		Item: map[string]types.AttributeValue{
			"id":      &types.AttributeValueMemberS{Value: id},
			"payload": &types.AttributeValueMemberS{Value: strings.Repeat("x", size)},
		},
	}}
}

// balance reads account id's balance, 0 if it has none, and whether the
// item exists.
func balance(t testing.TB, client *dynamodb.Client, table, id string) (int, bool) {
	t.Helper()
	out, err := client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(table), Key: idKey(id), ConsistentRead: aws.Bool(true),
	})
	require.NoError(t, err)
	if out.Item == nil {
		return 0, false
	}
	n, ok := out.Item["balance"].(*types.AttributeValueMemberN)
	if !ok {
		return 0, true
	}
	v, err := strconv.Atoi(n.Value)
	require.NoError(t, err)
	return v, true
}

// countingTracker returns a tracker on cfg's table whose requests are
// counted, for tests that must show that no transaction was sent.
func countingTracker(t testing.TB, cfg ddbtrack.Config[Step]) (*ddbtrack.Tracker[Step], *reqcount.Client) {
	t.Helper()
	newTracker(t, cfg)
	rc := reqcount.New(ddbtracktest.Client(t))
	tr, err := ddbtrack.New(rc, cfg)
	require.NoError(t, err)
	return tr, rc
}

// TestAddWritesLimits: writes that break a limit of DynamoDB's
// transactions fail the attempt with an error naming the limit, before any
// transaction is sent, even when the function ignores AddWrites' error.
// The limits are checked without the server's help, so the test runs on
// every server.
func TestAddWritesLimits(t *testing.T) {
	t.Parallel()
	client := ddbtracktest.Client(t)
	cfg := config(t)
	cfg.MaxAttempts = 5
	tr, rc := countingTracker(t, cfg)
	accounts := accountsTable(t, client)
	// The tasks are named after the cases, so that a case can write to
	// its own task's item.
	slug := func(name string) string { return strings.ReplaceAll(name, " ", "-") }

	many := func(n int) []types.TransactWriteItem {
		ws := make([]types.TransactWriteItem, n)
		for i := range ws {
			ws[i] = addTo(accounts, fmt.Sprintf("acct-%d", i), 1)
		}
		return ws
	}
	// Eleven items of 390 KB each: every one under DynamoDB's 400 KB item
	// limit, together over the 4 MB of a transaction.
	large := make([]types.TransactWriteItem, 11)
	for i := range large {
		large[i] = putItem(accounts, fmt.Sprintf("big-%d", i), 390_000)
	}
	cases := []struct {
		name   string
		writes []types.TransactWriteItem
		want   string
		// late says the limit shows only when the commit learns the
		// table's key schema: AddWrites itself cannot see it.
		late bool
	}{
		{name: "99 writes fit", writes: many(99)},
		{name: "too many writes", writes: many(100), want: "100 writes added, over the limit of 99"},
		{name: "over 4 MB", writes: large, want: "over DynamoDB's 4 MB limit on a transaction"},
		{name: "two updates of one item", writes: []types.TransactWriteItem{addTo(accounts, "a", 1), addTo(accounts, "b", 1), addTo(accounts, "a", 2)},
			want: "writes 0 and 2 are on the same item"},
		{name: "an update and a delete of one item", writes: []types.TransactWriteItem{addTo(accounts, "a", 1),
			{Delete: &types.Delete{TableName: aws.String(accounts), Key: idKey("a")}}}, want: "writes 0 and 1 are on the same item"},
		{name: "two puts of one item", writes: []types.TransactWriteItem{putItem(accounts, "a", 1), putItem(accounts, "a", 2)},
			want: "writes 0 and 1 are on the same item", late: true},
		{name: "a put and an update of one item", writes: []types.TransactWriteItem{putItem(accounts, "a", 1), addTo(accounts, "a", 2)},
			want: "writes 0 and 1 are on the same item", late: true},
		{name: "the task's own item", writes: []types.TransactWriteItem{{Update: &types.Update{
			TableName: aws.String(cfg.Table), Key: keyOf(cfg.Job, slug("the task's own item")), UpdateExpression: aws.String("SET extra = :x"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":x": &types.AttributeValueMemberS{Value: "x"}},
		}}}, want: "write 0 is on the task's own item"},
		{name: "a put of the task's own item", writes: []types.TransactWriteItem{{Put: &types.Put{
			TableName: aws.String(cfg.Table), Item: keyOf(cfg.Job, slug("a put of the task's own item")),
		}}}, want: "write 0 is on the task's own item"},
		{name: "two operations in one write", writes: []types.TransactWriteItem{{
			Put:    putItem(accounts, "a", 1).Put,
			Delete: &types.Delete{TableName: aws.String(accounts), Key: idKey("b")},
		}}, want: "write 0: a TransactWriteItem needs exactly one of Put, Update, Delete and ConditionCheck"},
		{name: "no table", writes: []types.TransactWriteItem{{Delete: &types.Delete{Key: idKey("a")}}}, want: "write 0: it has no TableName"},
	}
	for _, c := range cases {
		id := slug(c.name)
		require.NoError(t, tr.Create(context.Background(), ddbtrack.NewTask{ID: id}), c.name)
		before := rc.Counts()
		var addErr error
		err := tr.Start(context.Background(), id, func(_ context.Context, task *ddbtrack.Task[Step]) error {
			addErr = task.AddWrites(c.writes...)
			return nil // The function ignores the error on purpose: the commit must not.
		})
		sent := rc.Counts().Sub(before)
		if c.want == "" {
			if serverKind() == "dynalite" {
				require.ErrorIs(t, err, ddbtrack.ErrTransaction, c.name)
				continue
			}
			require.NoError(t, addErr, c.name)
			require.NoError(t, err, c.name)
			require.Equal(t, 1, sent[reqcount.TransactWriteItems], c.name)
			b, _ := balance(t, client, accounts, "acct-98")
			require.Equal(t, 1, b, c.name)
			continue
		}
		if c.late {
			require.NoError(t, addErr, "%s: AddWrites cannot know a Put's key before it reads the table's schema", c.name)
		} else {
			require.ErrorIs(t, addErr, ddbtrack.ErrTransaction, c.name)
			require.ErrorContains(t, addErr, c.want, c.name)
		}
		require.ErrorIs(t, err, ddbtrack.ErrTransaction, c.name)
		require.ErrorContains(t, err, c.want, c.name)
		require.Zero(t, sent[reqcount.TransactWriteItems], "%s: nothing may be sent: %s", c.name, sent)
		task := get(t, tr, id)
		require.Equal(t, Failed, task.Status, c.name)
		require.Contains(t, task.LastError, c.want, c.name)
		require.Equal(t, 1, task.Attempts, c.name)
	}
	// The duplicate Puts were caught with one DescribeTable of the
	// accounts table, read once for the process.
	require.Equal(t, 1, rc.Counts()[reqcount.DescribeTable])
}

// TestAddWritesCommit: a success commits the function's writes with the
// task's record, in one TransactWriteItems whose client request token is
// unique to the attempt; a failure drops them.
func TestAddWritesCommit(t *testing.T) {
	t.Parallel()
	requireTransactions(t)
	ctx := context.Background()
	client := ddbtracktest.Client(t)
	cfg := config(t)
	_, rc := countingTracker(t, cfg)
	accounts := accountsTable(t, client)
	// The tracker's requests are counted, and its transactions' tokens
	// recorded, in that order.
	tokens := &tokenLog{Client: rc}
	tr, err := ddbtrack.New(tokens, cfg)
	require.NoError(t, err)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "move"}))

	// A failed attempt sends nothing but its failure.
	boom := errors.New("boom")
	before := rc.Counts()
	err = tr.Start(ctx, "move", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		require.NoError(t, task.AddWrites(addTo(accounts, "alice", -30), addTo(accounts, "bob", 30)))
		return boom
	})
	require.ErrorIs(t, err, boom)
	require.Equal(t, "UpdateItem=2", rc.Counts().Sub(before).String(), "a claim and a failure")
	_, exists := balance(t, client, accounts, "alice")
	require.False(t, exists, "a failed attempt's writes are dropped")

	before = rc.Counts()
	err = tr.Start(ctx, "move", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		require.NoError(t, task.AddWrites(addTo(accounts, "alice", -30)))
		require.NoError(t, task.AddWrites(addTo(accounts, "bob", 30)))
		return task.SetOutput("moved")
	})
	require.NoError(t, err)
	require.Equal(t, "TransactWriteItems=1 UpdateItem=1", rc.Counts().Sub(before).String(), "a claim and one transaction")
	a, _ := balance(t, client, accounts, "alice")
	b, _ := balance(t, client, accounts, "bob")
	require.Equal(t, []int{-30, 30}, []int{a, b})
	task := get(t, tr, "move")
	require.Equal(t, Success, task.Status)
	var out string
	require.NoError(t, task.UnmarshalOutput(&out))
	require.Equal(t, "moved", out)

	// The token is unique to the attempt, and fits DynamoDB's 36
	// characters.
	require.NoError(t, tr.Reset(ctx, "move"))
	require.NoError(t, tr.Start(ctx, "move", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		return task.AddWrites(addTo(accounts, "carol", 1))
	}))
	seen := tokens.list()
	require.Len(t, seen, 2)
	require.NotEqual(t, seen[0], seen[1])
	for _, tok := range seen {
		require.NotEmpty(t, tok)
		require.LessOrEqual(t, len(tok), 36)
	}
}

// tokenLog records the client request token of every transaction.
type tokenLog struct {
	ddbtrack.Client
	mu     sync.Mutex
	tokens []string
}

func (l *tokenLog) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	l.mu.Lock()
	l.tokens = append(l.tokens, aws.ToString(in.ClientRequestToken))
	l.mu.Unlock()
	return l.Client.TransactWriteItems(ctx, in, optFns...)
}

func (l *tokenLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tokens...)
}

// TestAddWritesConditionFails: a condition of the function's own writes
// that fails cancels the whole transaction. The attempt is recorded as a
// failure with DynamoDB's reason for the write, none of its writes apply,
// and the task is retried under the normal policy.
func TestAddWritesConditionFails(t *testing.T) {
	t.Parallel()
	requireTransactions(t)
	ctx := context.Background()
	client := ddbtracktest.Client(t)
	cfg := config(t)
	cfg.MaxAttempts = 3
	tr := newTracker(t, cfg)
	accounts := accountsTable(t, client)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "pay"}))

	// Alice may not go below zero; she has nothing yet.
	withdraw := func(task *ddbtrack.Task[Step]) error {
		debit := addTo(accounts, "alice", -30)
		debit.Update.ConditionExpression = aws.String("balance >= :min")
		debit.Update.ExpressionAttributeValues[":min"] = &types.AttributeValueMemberN{Value: "30"}
		return task.AddWrites(addTo(accounts, "bob", 30), debit)
	}
	err := tr.Start(ctx, "pay", func(_ context.Context, task *ddbtrack.Task[Step]) error { return withdraw(task) })
	require.ErrorIs(t, err, ddbtrack.ErrTransaction)
	require.ErrorContains(t, err, "write 1: ConditionalCheckFailed")
	task := get(t, tr, "pay")
	require.Equal(t, Failed, task.Status)
	require.Equal(t, 1, task.Attempts)
	require.Contains(t, task.LastError, "write 1: ConditionalCheckFailed")
	require.Len(t, task.Errors, 1)
	_, exists := balance(t, client, accounts, "bob")
	require.False(t, exists, "no write of a cancelled transaction applies")

	// The next attempt, once alice has the money, commits.
	_, err = client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(accounts), Item: map[string]types.AttributeValue{
		"id": &types.AttributeValueMemberS{Value: "alice"}, "balance": &types.AttributeValueMemberN{Value: "50"},
	}})
	require.NoError(t, err)
	require.NoError(t, tr.Start(ctx, "pay", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		require.Equal(t, 2, task.Attempts)
		return withdraw(task)
	}))
	a, _ := balance(t, client, accounts, "alice")
	b, _ := balance(t, client, accounts, "bob")
	require.Equal(t, []int{20, 30}, []int{a, b})
	require.Equal(t, Success, get(t, tr, "pay").Status)
}

// TestAddWritesToMissingTable: a write to a table that does not exist is
// refused by DynamoDB as a whole request, not per item. The attempt is
// still recorded as a failure that says why, rather than left Running.
func TestAddWritesToMissingTable(t *testing.T) {
	t.Parallel()
	requireTransactions(t)
	ctx := context.Background()
	cfg := config(t)
	tr := newTracker(t, cfg)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "lost"}))
	err := tr.Start(ctx, "lost", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		return task.AddWrites(addTo(cfg.Table+"-missing", "alice", 1))
	})
	require.ErrorIs(t, err, ddbtrack.ErrTransaction)
	var missing *types.ResourceNotFoundException
	require.ErrorAs(t, err, &missing)
	task := get(t, tr, "lost")
	require.Equal(t, Failed, task.Status)
	require.Contains(t, task.LastError, "ResourceNotFoundException")
	require.Empty(t, task.LeaseOwner)
}

// TestAddWritesLeaseLost: a worker whose lease was taken over while its
// function ran commits nothing: neither its success nor its writes, and
// Start's error matches ErrLeaseLost.
func TestAddWritesLeaseLost(t *testing.T) {
	t.Parallel()
	requireTransactions(t)
	ctx := context.Background()
	client := ddbtracktest.Client(t)
	cfg, clk := clockedConfig(t)
	tr := newTracker(t, cfg)
	other := worker(t, cfg, "other")
	accounts := accountsTable(t, client)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "move"}))

	err := tr.Start(ctx, "move", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		require.NoError(t, task.AddWrites(addTo(accounts, "alice", -30), addTo(accounts, "bob", 30)))
		// The worker stalls past its lease, and another takes the task
		// over and moves the money itself.
		clk.Advance(tr.Config().Lease + time.Second)
		require.NoError(t, other.Start(ctx, "move", func(_ context.Context, task *ddbtrack.Task[Step]) error {
			return task.AddWrites(addTo(accounts, "alice", -30), addTo(accounts, "bob", 30))
		}))
		return nil
	})
	require.ErrorIs(t, err, ddbtrack.ErrLeaseLost)
	var canceled *types.TransactionCanceledException
	require.ErrorAs(t, err, &canceled, "the refusal came from the transaction")
	a, _ := balance(t, client, accounts, "alice")
	b, _ := balance(t, client, accounts, "bob")
	require.Equal(t, []int{-30, 30}, []int{a, b}, "the money moved once")
	task := get(t, tr, "move")
	require.Equal(t, Success, task.Status)
	require.Equal(t, int64(2), task.Fence)
}

// TestAddWritesCancelled: a cancel that reaches DynamoDB before the commit
// wins: the task ends Ignored as cancelled, and none of the writes apply.
func TestAddWritesCancelled(t *testing.T) {
	t.Parallel()
	requireTransactions(t)
	ctx := context.Background()
	client := ddbtracktest.Client(t)
	cfg := config(t)
	tr := newTracker(t, cfg)
	accounts := accountsTable(t, client)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "move"}))

	err := tr.Start(ctx, "move", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		require.NoError(t, task.AddWrites(addTo(accounts, "alice", -30), addTo(accounts, "bob", 30)))
		require.NoError(t, tr.Cancel(ctx, "move", "fraud suspected"))
		return nil
	})
	require.ErrorIs(t, err, ddbtrack.ErrCancelled)
	_, exists := balance(t, client, accounts, "alice")
	require.False(t, exists, "a cancelled attempt's writes are not applied")
	task := get(t, tr, "move")
	require.Equal(t, Ignore, task.Status)
	require.Equal(t, "fraud suspected", task.CancelReason)
}

// TestAddWritesAmbiguous: the answer to a transaction that DynamoDB
// applied is lost, and the SDK sends it again with the same client
// request token. The retry is recognised as the same transaction (by
// DynamoDB from the token; by servers without token support, such as
// moto, from the attempt's fence in the task's item), so Start reports a
// success and the writes apply once. When every try of the SDK loses its
// answer, ddbtrack's own retry is recognised the same way.
func TestAddWritesAmbiguous(t *testing.T) {
	t.Parallel()
	requireTransactions(t)
	ctx := context.Background()
	cfg := config(t)
	newTracker(t, cfg)
	r := newRig(t, 7)
	tr, err := ddbtrack.New(r.faulty(t), cfg)
	require.NoError(t, err)
	clean := r.clean(t)
	accounts := accountsTable(t, clean)

	var mu sync.Mutex
	tokens := map[string]int{}
	sameToken := func(_ string, body []byte) bool {
		// Every try of every transaction is seen here, dropped or not.
		_, rest, _ := strings.Cut(string(body), `"ClientRequestToken":"`)
		tok, _, _ := strings.Cut(rest, `"`)
		mu.Lock()
		tokens[tok]++
		mu.Unlock()
		return true
	}
	for _, drops := range []int{1, rigAttempts + 1} {
		id := fmt.Sprintf("drops-%d", drops)
		require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: id}))
		r.proxy.Set(faultproxy.Rule{Op: "TransactWriteItems", Match: sameToken, Fault: faultproxy.Drop, Count: drops},
			faultproxy.Rule{Op: "TransactWriteItems", Match: sameToken, Fault: 0})
		runs := 0
		err := tr.Start(ctx, id, func(_ context.Context, task *ddbtrack.Task[Step]) error {
			runs++
			return task.AddWrites(addTo(accounts, id, 10))
		})
		require.NoError(t, err, id)
		require.Equal(t, 1, runs, id)
		b, _ := balance(t, clean, accounts, id)
		require.Equal(t, 10, b, "%s: applied once", id)
		require.Equal(t, Success, get(t, tr, id).Status, id)
		r.proxy.Set()
	}
	require.Equal(t, rigAttempts+2, r.proxy.Injected()[faultproxy.Drop])
	require.Len(t, tokens, 2, "one token per attempt: %v", tokens)
	for tok, n := range tokens {
		require.Len(t, tok, 32)
		require.Greater(t, n, 1, "each attempt's token was sent again on the retry")
	}
}

// TestAddWritesWithoutTransactions: on a server without transactions
// (dynalite), the attempt is recorded as failed with an error that says
// so and names a server that has them.
func TestAddWritesWithoutTransactions(t *testing.T) {
	t.Parallel()
	if serverKind() != "dynalite" {
		t.Skipf("checks the error of a server without transactions; %s has them", serverKind())
	}
	ctx := context.Background()
	client := ddbtracktest.Client(t)
	cfg := config(t)
	tr := newTracker(t, cfg)
	accounts := accountsTable(t, client)
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "move"}))
	err := tr.Start(ctx, "move", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		return task.AddWrites(addTo(accounts, "alice", -30), addTo(accounts, "bob", 30))
	})
	require.ErrorIs(t, err, ddbtrack.ErrTransaction)
	require.ErrorContains(t, err, "the server does not support TransactWriteItems")
	require.ErrorContains(t, err, "moto")
	task := get(t, tr, "move")
	require.Equal(t, Failed, task.Status)
	require.Contains(t, task.LastError, "the server does not support TransactWriteItems")
	_, exists := balance(t, client, accounts, "alice")
	require.False(t, exists)
}

// TestAddWritesOutsideStart: a task that was read, not claimed, cannot
// add writes.
func TestAddWritesOutsideStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "read"}))
	err := get(t, tr, "read").AddWrites(addTo("accounts", "alice", 1))
	require.ErrorContains(t, err, "only the task that Start or Process passes to its function")
}
