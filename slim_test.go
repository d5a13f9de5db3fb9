package ddbtrack_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

// TestSlimIndex: with Config.SlimIndex the status index holds what
// listings show and not the task's payload. Listings come without data,
// output and history, Get has them, work runs as before, and a filter on
// what the index lacks is refused rather than silently matching nothing.
func TestSlimIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	cfg.SlimIndex = true
	tr := newTracker(t, cfg)
	projection := tr.CreateTableInput().GlobalSecondaryIndexes[0].Projection
	require.Equal(t, types.ProjectionTypeInclude, projection.ProjectionType)
	require.NotContains(t, projection.NonKeyAttributes, "data")

	big := map[string]string{"blob": strings.Repeat("x", 20<<10)}
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "big", Data: big}))
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "other", Data: big}))
	res, err := tr.Process(ctx, func(_ context.Context, task *ddbtrack.Task[Step]) error {
		var data map[string]string
		require.NoError(t, task.UnmarshalData(&data))
		require.Len(t, data["blob"], 20<<10, "the claim reads the whole item from the table")
		return task.SetOutput(big)
	}, ddbtrack.ProcessOptions[Step]{})
	require.NoError(t, err)
	require.Equal(t, 2, res.Succeeded)

	listed := map[string]*ddbtrack.Task[Step]{}
	for task, err := range tr.Query(ctx, ddbtrack.QueryOptions[Step]{Statuses: []Step{Success}}) {
		require.NoError(t, err)
		listed[task.ID] = task
	}
	require.Len(t, listed, 2)
	var data, out map[string]string
	require.NoError(t, listed["big"].UnmarshalData(&data))
	require.NoError(t, listed["big"].UnmarshalOutput(&out))
	require.Nil(t, data, "a slim listing has no data")
	require.Nil(t, out, "nor output")
	require.Equal(t, Success, listed["big"].Status)
	require.False(t, listed["big"].SucceededAt.IsZero())
	require.NoError(t, get(t, tr, "big").UnmarshalData(&data))
	require.Len(t, data["blob"], 20<<10, "Get reads the table")

	// A filter on the payload is refused; one on what listings show works.
	_, err = qIDsErr(tr.Query(ctx, ddbtrack.QueryOptions[Step]{Statuses: []Step{Success},
		Filter: expression.Name("data.blob").AttributeExists()}))
	var oe *ddbtrack.OptionError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, "QueryOptions.Filter", oe.Field)
	require.Contains(t, oe.Problem, "tests data")
	ids := qIDs(t, tr.Query(ctx, ddbtrack.QueryOptions[Step]{Statuses: []Step{Success},
		Filter: expression.Name("attempts").Equal(expression.Value(0))}))
	require.Len(t, ids, 2)

	// The table's index must hold what the Config needs.
	full := config(t)
	full.Table = cfg.Table
	ft, err := ddbtrack.New(ddbtracktest.Client(t), full)
	require.NoError(t, err)
	require.ErrorIs(t, ft.CreateTable(ctx), ddbtrack.ErrTableSchema, "a full Config on a slim index would list tasks without their data")
	slimOnFull := config(t)
	newTracker(t, slimOnFull)
	slimOnFull.SlimIndex = true
	st, err := ddbtrack.New(ddbtracktest.Client(t), slimOnFull)
	require.NoError(t, err)
	require.NoError(t, st.CreateTable(ctx), "an index that holds more than a slim Config needs works")
}
