package ddbtrack_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
)

// BenchmarkLifecycle measures ddbtrack's own CPU time and allocations for
// one task's whole life (create, claim, success) against cannedClient, an
// in-process client that answers every write as DynamoDB would answer a
// write that succeeds, so no server, network or SDK serialization is
// involved: the SDK's middleware stack, signing and JSON encoding run
// inside *dynamodb.Client, which the canned client replaces. What is
// measured is ddbtrack's code (validation, keys, expressions, decoding,
// logging calls), against the raw-SDK baseline's code for the same three
// requests.
//
// impl=baseline sends the baseline's three requests, and logs nothing.
// impl=ddbtrack with log=off uses slog.DiscardHandler; with log=info, a
// JSON handler writing to io.Discard, which is what ddbtrack's default
// Info logging costs before any I/O.
//
// cpu-ns/op is the process's CPU time (user and system, including the
// garbage collector's) per lifecycle. On a shared machine it is steadier
// than ns/op, which also counts time spent waiting for a core. The ddbtrack
// runs also report cpu/baseline, their CPU time over the baseline's
// measured just before in the same process (issue 15 asks for 1.5 or
// less).
func BenchmarkLifecycle(b *testing.B) {
	var baselineCPU float64
	data, err := attributevalue.Marshal(payload{Version: 1})
	require.NoError(b, err)
	for _, bc := range []struct {
		name   string
		logger *slog.Logger
	}{
		{"log=off/impl=baseline", slog.New(slog.DiscardHandler)},
		{"log=off/impl=ddbtrack", slog.New(slog.DiscardHandler)},
		{"log=info/impl=ddbtrack", slog.New(slog.NewJSONHandler(io.Discard, nil))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			stub := newCannedClient()
			cfg := ddbtrack.Config[Step]{
				Table: "bench", Job: "bench-job", Pending: Todo, Running: InProgress, Failed: Failed, Succeeded: Success, Ignored: Ignore,
				Logger: bc.logger,
			}
			tr, err := ddbtrack.New(stub, cfg)
			require.NoError(b, err)
			base := newBaseline(stub, cfg)
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = "task-" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for _, id := range ids {
				if bc.name == "log=off/impl=baseline" {
					if err := base.create(ctx, id, data); err != nil {
						b.Fatal(err)
					}
					if err := base.start(ctx, id, nopData); err != nil {
						b.Fatal(err)
					}
				} else {
					if err := tr.Create(ctx, ddbtrack.NewTask{ID: id, Data: payload{Version: 1}}); err != nil {
						b.Fatal(err)
					}
					if err := tr.Start(ctx, id, okFn); err != nil {
						b.Fatal(err)
					}
				}
			}
			perOp := float64(processCPU()-cpu) / float64(b.N)
			b.ReportMetric(perOp, "cpu-ns/op")
			if bc.name == "log=off/impl=baseline" {
				baselineCPU = perOp
			} else if baselineCPU > 0 {
				b.ReportMetric(perOp/baselineCPU, "cpu/baseline")
			}
		})
	}
}

// cannedClient answers as DynamoDB answers writes that succeed: a claim,
// which asks for the item as it left it, gets a stored task's item back;
// every other request gets an empty answer. It costs next to nothing, so
// a benchmark against it measures the caller.
type cannedClient struct {
	ddbtrack.Client // Any other method panics: the benchmark calls none.
	claimed         map[string]types.AttributeValue
}

func newCannedClient() *cannedClient {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	n := func(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
	s := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	return &cannedClient{claimed: map[string]types.AttributeValue{
		"pk": s("bench-job#task"), "job": s("bench-job"), "task_id": s("task"),
		"status": n("3"), "status_name": s("s03_in_progress"), "status_key": s("bench-job#3#0"),
		"due_at": n(now), "order_key": s("x"), "attempts": n("1"), "fence": n("1"),
		"created_at": n(now), "updated_at": n(now), "started_at": n(now),
		"lease_owner": s("bench"), "lease_token": s("token"), "lease_expires_at": n(now),
		"claimed_from": n("0"), "claimed_due": n(now), "abandoned_owner": s(""), "abandoned_until": n("0"),
		"data": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"version": n("1")}},
	}}
}

func (c *cannedClient) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return &dynamodb.PutItemOutput{}, nil
}

func (c *cannedClient) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if in.ReturnValues == types.ReturnValueAllNew {
		return &dynamodb.UpdateItemOutput{Attributes: c.claimed}, nil
	}
	return &dynamodb.UpdateItemOutput{}, nil
}
