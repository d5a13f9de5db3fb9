package ddbstub_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/ddbstub"
)

type step int

func (s step) String() string { return [...]string{"todo", "doing", "failed", "done", "ignored"}[s] }

func tracker(t *testing.T, s *ddbstub.Stub) *ddbtrack.Tracker[step] {
	t.Helper()
	tr, err := ddbtrack.New(s, ddbtrack.Config[step]{
		Table: "tasks", Job: "job", Pending: 0, Running: 1, Failed: 2, Succeeded: 3, Ignored: 4,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	require.NoError(t, tr.CreateTable(context.Background()))
	return tr
}

// TestTrackerLifecycle runs ddbtrack against the stub, for both kinds of
// server: one that returns the refusing item and one that does not.
func TestTrackerLifecycle(t *testing.T) {
	t.Parallel()
	for _, returnItem := range []bool{true, false} {
		s := ddbstub.New()
		s.ReturnRefusedItem = returnItem
		tr := tracker(t, s)
		ctx := context.Background()

		require.NoError(t, tr.Create(ctx, "a", map[string]int{"n": 1}))
		require.ErrorIs(t, tr.Create(ctx, "a", nil), ddbtrack.ErrTaskExists)
		require.NoError(t, tr.Start(ctx, "a", func(_ context.Context, task *ddbtrack.Task[step]) error {
			require.Equal(t, step(1), task.Status)
			require.Equal(t, 1, task.Attempts)
			return task.SetOutput("out")
		}))
		task, err := tr.Get(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, step(3), task.Status)
		require.Equal(t, 0, task.Attempts)
		require.Equal(t, int64(1), task.Fence)
		require.Empty(t, task.LeaseOwner)

		err = tr.Start(ctx, "a", func(context.Context, *ddbtrack.Task[step]) error { return nil })
		var te *ddbtrack.TaskError
		require.ErrorAs(t, err, &te)
		require.ErrorIs(t, err, ddbtrack.ErrTaskSucceeded)
		require.Equal(t, "done", te.StatusName)

		boom := errors.New("boom")
		require.NoError(t, tr.Reset(ctx, "a"))
		require.ErrorIs(t, tr.Start(ctx, "a", func(context.Context, *ddbtrack.Task[step]) error { return boom }), boom)
		task, err = tr.Get(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, step(2), task.Status)
		require.Equal(t, "boom", task.LastError)
		require.Len(t, task.Errors, 1)

		require.ErrorIs(t, tr.Start(ctx, "missing", nil), ddbtrack.ErrTaskNotFound)
		require.NoError(t, tr.Delete(ctx, "a"))
		require.ErrorIs(t, tr.Delete(ctx, "a"), ddbtrack.ErrTaskNotFound)
	}
}

func n(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }
func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func TestConditions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := ddbstub.New()
	_, err := st.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String("t"),
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	})
	require.NoError(t, err)
	item := map[string]types.AttributeValue{"pk": s("k"), "status": n("3"), "name": s("abc"), "at": n("100")}
	_, err = st.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item})
	require.NoError(t, err)

	for _, tt := range []struct {
		cond string
		want bool
	}{
		{"attribute_exists(#pk)", true},
		{"attribute_not_exists(#pk)", false},
		{"attribute_exists(missing)", false},
		{"#status = :three", true},
		{"#status <> :three", false},
		{"#status IN (:one, :three)", true},
		{"#status IN (:one)", false},
		{"#at < :big", true},
		{"#at >= :big", false},
		{"#missing < :big", false},
		{"NOT (#missing < :big)", true},
		{"#at BETWEEN :one AND :big", true},
		{"begins_with(#name, :ab)", true},
		{"#status = :one OR (#status = :three AND #at < :big)", true},
		{"#status = :one OR #status = :three AND #at > :big", false},
		{"#name > :ab", true},
		{"#status = :ab", false},
	} {
		t.Run(tt.cond, func(t *testing.T) {
			values := map[string]types.AttributeValue{}
			names := map[string]string{}
			all := map[string]types.AttributeValue{":one": n("1"), ":three": n("3"), ":big": n("1000"), ":ab": s("ab")}
			for k, v := range all {
				if containsWord(tt.cond, k) {
					values[k] = v
				}
			}
			for _, a := range []string{"pk", "status", "name", "at", "missing"} {
				if containsWord(tt.cond, "#"+a) {
					names["#"+a] = a
				}
			}
			if len(values) == 0 {
				values = nil
			}
			_, err := st.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": s("k")},
				UpdateExpression:          aws.String("SET #touched = :touched"),
				ConditionExpression:       aws.String(tt.cond),
				ExpressionAttributeNames:  merge(names, map[string]string{"#touched": "touched"}),
				ExpressionAttributeValues: merge(values, map[string]types.AttributeValue{":touched": n("1")}),
			})
			var ccf *types.ConditionalCheckFailedException
			if tt.want {
				require.NoError(t, err)
			} else {
				require.ErrorAs(t, err, &ccf)
			}
		})
	}
}

func TestUpdateAndValidation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := ddbstub.New()
	_, err := st.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String("t"),
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	})
	require.NoError(t, err)
	key := map[string]types.AttributeValue{"pk": s("k")}
	out, err := st.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String("t"), Key: key,
		UpdateExpression:          aws.String("SET #a = :one, #b = if_not_exists(#b, :ten) + :one ADD #c :one"),
		ExpressionAttributeNames:  map[string]string{"#a": "a", "#b": "b", "#c": "c"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": n("1"), ":ten": n("10")},
		ReturnValues:              types.ReturnValueAllNew,
	})
	require.NoError(t, err)
	require.Equal(t, map[string]types.AttributeValue{"pk": s("k"), "a": n("1"), "b": n("11"), "c": n("1")}, out.Attributes)

	out, err = st.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String("t"), Key: key,
		UpdateExpression:          aws.String("REMOVE #a ADD #c :one"),
		ExpressionAttributeNames:  map[string]string{"#a": "a", "#c": "c"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": n("1")},
		ReturnValues:              types.ReturnValueAllOld,
	})
	require.NoError(t, err)
	require.Equal(t, n("1"), out.Attributes["c"], "ALL_OLD returns the item before the update")
	got, err := st.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t"), Key: key})
	require.NoError(t, err)
	require.Equal(t, map[string]types.AttributeValue{"pk": s("k"), "b": n("11"), "c": n("2")}, got.Item)

	// DynamoDB refuses names and values that no expression uses, and so
	// does the stub, so a library bug shows up here as it would there.
	_, err = st.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String("t"), Key: key,
		UpdateExpression:          aws.String("SET #a = :one"),
		ExpressionAttributeNames:  map[string]string{"#a": "a", "#spare": "spare"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": n("1")},
	})
	var api smithy.APIError
	require.ErrorAs(t, err, &api)
	require.Equal(t, "ValidationException", api.ErrorCode())
	require.Contains(t, api.ErrorMessage(), "#spare")

	_, err = st.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String("t"), Key: key,
		UpdateExpression:          aws.String("SET #m.x = :one"),
		ExpressionAttributeNames:  map[string]string{"#m": "m"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":one": n("1")},
	})
	require.ErrorAs(t, err, &api)
	require.Contains(t, api.ErrorMessage(), "only top-level attributes")

	_, err = st.Query(ctx, &dynamodb.QueryInput{})
	require.ErrorAs(t, err, &api)
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w && (i+len(w) == len(s) || !isWordByte(s[i+len(w)])) {
			return true
		}
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func merge[V any](a, b map[string]V) map[string]V {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]V{}
	}
	maps.Copy(out, b)
	return out
}
