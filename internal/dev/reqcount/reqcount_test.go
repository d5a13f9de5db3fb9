package reqcount_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// refusing answers every UpdateItem with a refusal that carries the item, as
// moto and DynamoDB do. Its other methods are nil and panic.
type refusing struct{ ddbtrack.Client }

func (refusing) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, &types.ConditionalCheckFailedException{
		Message: aws.String("refused"),
		Item:    map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "k"}},
	}
}

// TestCountsEveryMethod calls every method of ddbtrack.Client through the
// wrapper. A method that ddbtrack.Client gains later passes through the
// embedded interface uncounted; this test names it.
func TestCountsEveryMethod(t *testing.T) {
	t.Parallel()
	c := reqcount.New(refusing{})
	iface := reflect.TypeFor[ddbtrack.Client]()
	v := reflect.ValueOf(c)
	for i := range iface.NumMethod() {
		name := iface.Method(i).Name
		m := v.MethodByName(name)
		in := reflect.New(m.Type().In(1).Elem())
		func() {
			defer func() { _ = recover() }() // The fake's nil methods panic after the count.
			m.Call([]reflect.Value{reflect.ValueOf(context.Background()), in})
		}()
		require.Equal(t, 1, c.Counts()[name], "reqcount.Client does not count %s: add a method for it", name)
	}
	require.Equal(t, iface.NumMethod(), c.Counts().Total())
}

func TestDropRefusedItem(t *testing.T) {
	t.Parallel()
	for _, drop := range []bool{false, true} {
		c := reqcount.New(refusing{})
		c.DropRefusedItem = drop
		_, err := c.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{})
		var ccf *types.ConditionalCheckFailedException
		require.ErrorAs(t, err, &ccf)
		require.Equal(t, drop, ccf.Item == nil, "DropRefusedItem=%v", drop)
	}
}

func TestCounts(t *testing.T) {
	t.Parallel()
	before := reqcount.Counts{reqcount.GetItem: 1, reqcount.UpdateItem: 2}
	after := reqcount.Counts{reqcount.GetItem: 1, reqcount.UpdateItem: 4, reqcount.PutItem: 1, reqcount.Query: 3}
	d := after.Sub(before)
	require.Equal(t, reqcount.Counts{reqcount.UpdateItem: 2, reqcount.PutItem: 1, reqcount.Query: 3}, d)
	require.Equal(t, "PutItem=1 Query=3 UpdateItem=2", d.String())
	require.Equal(t, 3, d.Writes())
	require.Equal(t, 3, d.Reads())
	require.Equal(t, 6, d.Total())
	require.Equal(t, "none", reqcount.Counts{}.String())
}

// answering answers every Query with no items, as an empty index would.
type answering struct{ ddbtrack.Client }

func (answering) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return &dynamodb.QueryOutput{Count: 7, ScannedCount: 7}, nil
}

func TestCountQueries(t *testing.T) {
	t.Parallel()
	c := reqcount.New(answering{})
	for _, sel := range []types.Select{types.SelectCount, "", types.SelectAllAttributes, types.SelectCount} {
		_, err := c.Query(context.Background(), &dynamodb.QueryInput{Select: sel})
		require.NoError(t, err)
	}
	require.Equal(t, 2, c.CountQueries())
	require.Equal(t, 4, c.Counts()[reqcount.Query], "count queries are queries too")
	require.Equal(t, int64(14), c.CountedItems(), "only count queries' items")
	c.Reset()
	require.Zero(t, c.CountQueries())
	require.Zero(t, c.CountedItems())
}
