package ddbtrack_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
)

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	client := ddbtracktest.Client(t)
	cases := []struct {
		name   string
		mutate func(*ddbtrack.Config[Step])
		want   string
	}{
		{"no table", func(c *ddbtrack.Config[Step]) { c.Table = "" }, "Config.Table is empty"},
		{"no job", func(c *ddbtrack.Config[Step]) { c.Job = "" }, "Config.Job is empty"},
		{"separator in job", func(c *ddbtrack.Config[Step]) { c.Job = "etl#2026" }, `Config.Job is "etl#2026", which contains "#"`},
		{"duplicate roles", func(c *ddbtrack.Config[Step]) { c.Failed = c.Pending }, `Config.Failed has the same value (0, "s00_todo") as Config.Pending: give each of Pending, Running, Failed, Succeeded and Ignored its own status value`},
		{"all roles zero", func(c *ddbtrack.Config[Step]) { *c = ddbtrack.Config[Step]{Table: c.Table, Job: c.Job} }, "Config.Running has the same value"},
		{"startable running", func(c *ddbtrack.Config[Step]) { c.Startable = []Step{InProgress} }, "Config.Startable contains \"s03_in_progress\""},
		{"negative attempts", func(c *ddbtrack.Config[Step]) { c.MaxAttempts = -1 }, "Config.MaxAttempts is -1: use a positive number, or 0 for the default (3)"},
		{"negative lease", func(c *ddbtrack.Config[Step]) { c.Lease = -time.Second }, "Config.Lease is -1s"},
		{"sub-millisecond lease", func(c *ddbtrack.Config[Step]) { c.Lease = time.Microsecond }, "use at least 1ms"},
		{"negative retention", func(c *ddbtrack.Config[Step]) { c.Retention = -time.Hour }, "Config.Retention is -1h0m0s: use a positive duration, or 0 for none"},
		{"sub-second retention", func(c *ddbtrack.Config[Step]) { c.Retention = 500 * time.Millisecond }, "Config.Retention is 500ms: it counts in steps of 1s: use at least 1s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config(t)
			c.mutate(&cfg)
			_, err := ddbtrack.New(client, cfg)
			require.ErrorIs(t, err, ddbtrack.ErrInvalidOption)
			var ce *ddbtrack.OptionError
			require.ErrorAs(t, err, &ce)
			require.ErrorContains(t, err, c.want)
			require.True(t, strings.HasPrefix(ce.Field, "Config."), "the field is named: %q", ce.Field)
			require.NotEmpty(t, ce.Problem)
			require.NotEmpty(t, ce.Fix, "every option error says how to fix it")
		})
	}
	_, err := ddbtrack.New[Step](nil, config(t))
	require.ErrorContains(t, err, "client is nil")
}

// TestBadTaskIDs: IDs DynamoDB cannot key are refused before any request,
// with a message that says what to do, and nothing stored changes.
func TestBadTaskIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "good"}))
	for id, want := range map[string]string{
		"":                        "ID is empty: give every task a non-empty ID",
		strings.Repeat("x", 3000): "ID is 3000 bytes, over the limit of 1008",
		"\xff\xfe":                "not valid UTF-8",
	} {
		for op, err := range map[string]error{
			"create": tr.Create(ctx, ddbtrack.NewTask{ID: id}),
			"start":  tr.Start(ctx, id, ok),
			"reset":  tr.Reset(ctx, id),
			"delete": tr.Delete(ctx, id),
		} {
			require.ErrorIs(t, err, ddbtrack.ErrInvalidOption, op)
			require.ErrorContains(t, err, want, op)
		}
		_, err := tr.CreateMany(ctx, []ddbtrack.NewTask{{ID: "fine"}, {ID: id}})
		require.ErrorIs(t, err, ddbtrack.ErrInvalidOption)
		require.ErrorContains(t, err, "tasks[1]")
	}
	_, err := tr.Get(ctx, "fine")
	require.ErrorIs(t, err, ddbtrack.ErrTaskNotFound, "a CreateMany with one bad task writes nothing")
	_, err = tr.CreateMany(ctx, []ddbtrack.NewTask{{ID: "a"}, {ID: "a"}})
	require.ErrorContains(t, err, `tasks[1].ID is "a", the same as tasks[0].ID`)
	require.Equal(t, Todo, get(t, tr, "good").Status)
}

func TestUnmarshallableData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	// attributevalue would silently drop these; ddbtrack refuses them.
	cases := []struct {
		data any
		want string
	}{
		{map[string]any{"ch": make(chan int)}, "cannot store data of type map[string]interface {}: data[ch] is a chan int, which DynamoDB cannot store"},
		{struct {
			Score float64 `dynamodbav:"score"`
		}{math.NaN()}, "data.score is NaN, which a DynamoDB number cannot be"},
		{[]any{1, func() {}}, "data[1] is a func()"},
		{complex(1, 2), "data is a complex128"},
	}
	for _, c := range cases {
		err := tr.Create(ctx, ddbtrack.NewTask{ID: "t", Data: c.data})
		require.ErrorContains(t, err, c.want)
		_, err = tr.Get(ctx, "t")
		require.ErrorIs(t, err, ddbtrack.ErrTaskNotFound)
	}
	// A field the caller excluded is fine.
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "skip", Data: struct {
		C chan int `dynamodbav:"-"`
		N int
	}{N: 1}}))

	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t", Data: payload{Version: 1}}))
	err := tr.Start(ctx, "t", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		// The error reaches fn at once, which can report it as its failure.
		return task.SetOutput(func() {})
	})
	require.ErrorContains(t, err, "cannot store output of type func(): output is a func()")
	task := get(t, tr, "t")
	require.Equal(t, Failed, task.Status)
	require.Contains(t, task.LastError, "cannot store output")
}

// TestOutputTooLarge: an output that would push the item past 400 KB
// cannot be stored, but the attempt is not lost: it is recorded as a
// failure that says why.
func TestOutputTooLarge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tr := newTracker(t, config(t))
	require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: "t", Data: payload{Version: 1}}))
	err := tr.Start(ctx, "t", func(_ context.Context, task *ddbtrack.Task[Step]) error {
		return task.SetOutput(strings.Repeat("x", 500_000))
	})
	require.ErrorIs(t, err, ddbtrack.ErrItemTooLarge)
	require.ErrorContains(t, err, "store a reference")
	task := get(t, tr, "t")
	require.Equal(t, Failed, task.Status)
	require.Empty(t, task.LeaseOwner)
	require.Contains(t, task.LastError, "400 KB")
	var p payload
	require.NoError(t, task.UnmarshalData(&p))
	require.Equal(t, 1, p.Version)

	err = tr.Create(ctx, ddbtrack.NewTask{ID: "big", Data: strings.Repeat("y", 500_000)})
	require.ErrorIs(t, err, ddbtrack.ErrItemTooLarge)
}
