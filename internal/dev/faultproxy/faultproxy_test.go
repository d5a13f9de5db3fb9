package faultproxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
	"github.com/ddbtrack/ddbtrack/internal/dev/faultproxy"
)

// setup returns a proxy in front of the test server, a client that goes
// through it without retrying (so each fault shows), and a table.
func setup(t *testing.T, seed uint64) (*faultproxy.Proxy, *dynamodb.Client, string) {
	t.Helper()
	ctx := context.Background()
	p, err := faultproxy.New(aws.ToString(ddbtracktest.Client(t).Options().BaseEndpoint), seed)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	client, err := ddblocal.NewClient(ctx, p.URL)
	require.NoError(t, err)
	client = dynamodb.New(client.Options(), func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })

	table := ddbtracktest.Table(t)
	_, err = ddbtracktest.Client(t).CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	})
	require.NoError(t, err)
	w := dynamodb.NewTableExistsWaiter(ddbtracktest.Client(t), func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 50 * time.Millisecond })
	require.NoError(t, w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, time.Minute))
	return p, client, table
}

func put(ctx context.Context, c *dynamodb.Client, table, pk string) error {
	_, err := c.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(table),
		Item:      map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
	})
	return err
}

// exists reads directly from the server, around the proxy.
func exists(t *testing.T, table, pk string) bool {
	t.Helper()
	out, err := ddbtracktest.Client(t).GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}},
		ConsistentRead: aws.Bool(true),
	})
	require.NoError(t, err)
	return len(out.Item) > 0
}

func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func TestFaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p, client, table := setup(t, 1)

	require.NoError(t, put(ctx, client, table, "pass"), "no rule: the request passes")
	require.True(t, exists(t, table, "pass"))

	cases := []struct {
		fault   faultproxy.Fault
		applied bool   // whether the server saw the write
		code    string // the error code the SDK reports, if any
	}{
		{faultproxy.Drop, true, ""},
		{faultproxy.Cut, false, ""},
		{faultproxy.Throttle, false, "ProvisionedThroughputExceededException"},
		{faultproxy.ServerError, false, "InternalServerError"},
	}
	for _, c := range cases {
		pk := c.fault.String()
		p.Set(faultproxy.Rule{Op: "PutItem", Fault: c.fault, Count: 1})
		err := put(ctx, client, table, pk)
		require.Error(t, err, c.fault)
		require.Equal(t, c.code, errorCode(err), "%s: %v", c.fault, err)
		require.Equal(t, c.applied, exists(t, table, pk), c.fault)
		require.NoError(t, put(ctx, client, table, pk), "%s: Count 1 hits only once", c.fault)
	}
	require.Equal(t, map[faultproxy.Fault]int{faultproxy.Drop: 1, faultproxy.Cut: 1, faultproxy.Throttle: 1, faultproxy.ServerError: 1}, p.Injected())

	// Op selects the operation: a GetItem passes a PutItem rule.
	p.Set(faultproxy.Rule{Op: "PutItem", Fault: faultproxy.ServerError})
	_, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "pass"}}})
	require.NoError(t, err)

	// Delay holds the answer; Hang holds the request until the client
	// gives up, and the server never sees it.
	p.Set(faultproxy.Rule{Fault: faultproxy.Delay, Delay: 200 * time.Millisecond})
	began := time.Now()
	require.NoError(t, put(ctx, client, table, "slow"))
	require.GreaterOrEqual(t, time.Since(began), 200*time.Millisecond)

	p.Set(faultproxy.Rule{Fault: faultproxy.Hang})
	hctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	require.Error(t, put(hctx, client, table, "hung"))
	require.False(t, exists(t, table, "hung"))

	// Match looks into the body.
	p.Set(faultproxy.Rule{Fault: faultproxy.ServerError, Match: func(_ string, body []byte) bool {
		return bytes.Contains(body, []byte(`"poison"`))
	}})
	require.Error(t, put(ctx, client, table, "poison"))
	require.NoError(t, put(ctx, client, table, "fine"))
}

// TestSeedDecides: the same seed and the same sequence of requests hit the
// same requests; another seed hits others.
func TestSeedDecides(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pattern := func(seed uint64) string {
		p, client, table := setup(t, seed)
		p.Set(faultproxy.Rule{Op: "PutItem", Fault: faultproxy.ServerError, Probability: 0.3})
		b := make([]byte, 40)
		for i := range b {
			b[i] = '.'
			if put(ctx, client, table, fmt.Sprint(i)) != nil {
				b[i] = 'x'
			}
		}
		return string(b)
	}
	a := pattern(7)
	require.Contains(t, a, "x")
	require.Contains(t, a, ".")
	require.Equal(t, a, pattern(7))
	require.NotEqual(t, a, pattern(8))
}
