package ddbtrack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
)

// exampleIDTable creates a table keyed by "id", such as a service's own
// accounts or reports beside the tracker's table.
func exampleIDTable(ctx context.Context, client *dynamodb.Client) string {
	name := exampleTable()
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		panic(err)
	}
	err = dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 20 * time.Millisecond }).
		Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute)
	if err != nil {
		panic(err)
	}
	return name
}

// This example moves money between two accounts in a table of the
// service's own. The debit and the credit commit in one transaction with
// the task's success, so a transfer is applied exactly once however often
// its task runs: a worker whose lease was lost, or whose first try's
// answer was lost, cannot apply it again. A condition of the writes that
// fails, here "enough money", fails the attempt as a whole and nothing is
// applied.
//
// It needs a server with transactions, such as DynamoDB or moto; dynalite
// has none. TestExampleTaskAddWrites runs it on moto and checks that it
// prints:
//
//	transfer-1: succeeded
//	transfer-2: not committed; attempt 1 failed because alice lacks the money: true
//	alice 70, bob 30
func ExampleTask_AddWrites() {
	ctx := context.Background()
	client := localClient() // dynamodb.NewFromConfig(awsCfg) in a real service
	accounts := exampleIDTable(ctx, client)
	_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(accounts), Item: map[string]types.AttributeValue{
		"id": &types.AttributeValueMemberS{Value: "alice"}, "balance": &types.AttributeValueMemberN{Value: "100"},
	}})
	if err != nil {
		panic(err)
	}

	type Transfer struct {
		From, To string
		Amount   int
	}
	tracker, err := ddbtrack.New(client, ddbtrack.Config[Status]{
		Table: exampleTable(), Job: "transfers",
		Pending: Queued, Running: Importing, Failed: ImportFailed, Succeeded: Imported, Ignored: Skipped,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := tracker.CreateTable(ctx); err != nil {
		panic(err)
	}
	_, err = tracker.CreateMany(ctx, []ddbtrack.NewTask{
		{ID: "transfer-1", Data: Transfer{From: "alice", To: "bob", Amount: 30}},
		{ID: "transfer-2", Data: Transfer{From: "alice", To: "bob", Amount: 100}},
	})
	if err != nil {
		panic(err)
	}

	move := func(ctx context.Context, task *ddbtrack.Task[Status]) error {
		var tr Transfer
		if err := task.UnmarshalData(&tr); err != nil {
			return err
		}
		amount := &types.AttributeValueMemberN{Value: strconv.Itoa(tr.Amount)}
		return task.AddWrites(
			types.TransactWriteItem{Update: &types.Update{
				TableName:                 aws.String(accounts),
				Key:                       map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: tr.From}},
				UpdateExpression:          aws.String("SET balance = balance - :amount"),
				ConditionExpression:       aws.String("balance >= :amount"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":amount": amount},
			}},
			types.TransactWriteItem{Update: &types.Update{
				TableName:                 aws.String(accounts),
				Key:                       map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: tr.To}},
				UpdateExpression:          aws.String("ADD balance :amount"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":amount": amount},
			}},
		)
	}
	for _, id := range []string{"transfer-1", "transfer-2"} {
		err := tracker.Start(ctx, id, move)
		switch {
		case err == nil:
			fmt.Printf("%s: succeeded\n", id)
		case errors.Is(err, ddbtrack.ErrTransaction):
			// Nothing was applied. The attempt is recorded as failed, with
			// DynamoDB's reason for each write, and is retried like any
			// failure.
			task, _ := tracker.Get(ctx, id)
			fmt.Printf("%s: not committed; attempt %d failed because alice lacks the money: %v\n",
				id, task.Attempts, strings.Contains(task.LastError, "write 0: ConditionalCheckFailed"))
		default:
			panic(err)
		}
	}

	balances := map[string]string{}
	for _, id := range []string{"alice", "bob"} {
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(accounts), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}}})
		if err != nil {
			panic(err)
		}
		balances[id] = out.Item["balance"].(*types.AttributeValueMemberN).Value
	}
	fmt.Printf("alice %s, bob %s\n", balances["alice"], balances["bob"])
}

// TestExampleTaskAddWrites runs ExampleTask_AddWrites and checks what it
// prints against its documentation. go test cannot run it as an ordinary
// example, because the suite also runs on dynalite, which has no
// transactions. It captures os.Stdout, so it does not call t.Parallel:
// no parallel test runs while a sequential one does, so nothing else
// prints meanwhile.
func TestExampleTaskAddWrites(t *testing.T) {
	requireTransactions(t)
	src, err := os.ReadFile("example_txn_test.go")
	require.NoError(t, err)
	_, doc, ok := strings.Cut(string(src), "checks that it\n// prints:\n//\n")
	require.True(t, ok, "the example's documentation says what it prints")
	doc, _, _ = strings.Cut(doc, "\nfunc ")
	var want strings.Builder
	for line := range strings.Lines(doc) {
		want.WriteString(strings.TrimPrefix(line, "//\t"))
	}

	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	func() {
		defer func() { os.Stdout = stdout }()
		ExampleTask_AddWrites()
	}()
	require.NoError(t, w.Close())
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	// Surrounding space is ignored, as go test does for an example's output.
	require.Equal(t, strings.TrimSpace(want.String()), strings.TrimSpace(string(got)))
}

// This example guards a write that a task's function makes on its own,
// outside the tracker's transaction, with the fence of its attempt: the
// item keeps the fence of the attempt that wrote it last, and a write from
// an older attempt is refused. Here the first attempt's write arrives
// late, after a second attempt has saved its own result, as it would from
// a worker that was paused past its lease.
func ExampleTask_FenceCondition() {
	ctx := context.Background()
	client := localClient() // dynamodb.NewFromConfig(awsCfg) in a real service
	reports := exampleIDTable(ctx, client)
	tracker, err := ddbtrack.New(client, ddbtrack.Config[Status]{
		Table: exampleTable(), Job: "reports",
		Pending: Queued, Running: Importing, Failed: ImportFailed, Succeeded: Imported, Ignored: Skipped,
		RetryDelay: func(int) time.Duration { return 0 },
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := tracker.CreateTable(ctx); err != nil {
		panic(err)
	}
	if err := tracker.Create(ctx, ddbtrack.NewTask{ID: "daily-report"}); err != nil {
		panic(err)
	}

	// save stores the report with the fence of the attempt that made it,
	// unless a newer attempt has stored one already.
	save := func(ctx context.Context, task *ddbtrack.Task[Status], total int) error {
		update := expression.Set(expression.Name("total"), expression.Value(total)).
			Set(expression.Name("fence"), expression.Value(task.Fence))
		expr, err := expression.NewBuilder().WithUpdate(update).WithCondition(task.FenceCondition("fence")).Build()
		if err != nil {
			return err
		}
		_, err = client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(reports),
			Key:                       map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: task.ID}},
			UpdateExpression:          expr.Update(),
			ConditionExpression:       expr.Condition(),
			ExpressionAttributeNames:  expr.Names(),
			ExpressionAttributeValues: expr.Values(),
		})
		return err
	}

	// The first attempt computes a total but fails before it saves it.
	var first *ddbtrack.Task[Status]
	_ = tracker.Start(ctx, "daily-report", func(ctx context.Context, task *ddbtrack.Task[Status]) error {
		first = task
		return errors.New("printer offline")
	})
	// The second attempt saves its total and succeeds.
	err = tracker.Start(ctx, "daily-report", func(ctx context.Context, task *ddbtrack.Task[Status]) error {
		fmt.Println("attempt", task.Attempts, "saves with fence", task.Fence)
		return save(ctx, task, 42)
	})
	if err != nil {
		panic(err)
	}

	// The first attempt's write arrives late, and is refused.
	err = save(ctx, first, 41)
	var refused *types.ConditionalCheckFailedException
	fmt.Printf("late write of fence %d refused: %v\n", first.Fence, errors.As(err, &refused))

	out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(reports), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: "daily-report"}}})
	if err != nil {
		panic(err)
	}
	fmt.Println("total", out.Item["total"].(*types.AttributeValueMemberN).Value,
		"fence", out.Item["fence"].(*types.AttributeValueMemberN).Value)
	// Output:
	// attempt 2 saves with fence 2
	// late write of fence 1 refused: true
	// total 42 fence 2
}
