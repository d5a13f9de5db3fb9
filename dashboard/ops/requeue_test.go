package ops_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
	"github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// TestRequeueNamedInBatches names more tasks than one DynamoDB request
// can, and some that cannot move, and checks that every one that can is
// moved and every other is named with its reason.
func TestRequeueNamedInBatches(t *testing.T) {
	t.Parallel()
	fx := opsfixture.New(t)
	fx.Seed(t)
	fx.FailMany(t, 250, func(i int) (string, string) { return fmt.Sprintf("b-%03d", i), "timeout" })
	job := ops.NewJob(fx.Tracker)
	st := job.Statuses()

	f := ops.Filter[opsfixture.Status]{Statuses: []opsfixture.Status{st.Of(ops.Failed), st.Of(ops.Ignored)}}
	for i := range 250 {
		f.IDs = append(f.IDs, fmt.Sprintf("b-%03d", i))
	}
	f.IDs = append(f.IDs, "t-ok", "t-running", "t-nope")

	var progress []ddbtrack.RequeueResult
	dry, err := job.Requeue(t.Context(), f, fx.Clock.Now(), true, nil)
	require.NoError(t, err)
	require.Equal(t, 250, dry.Matched)
	require.Zero(t, dry.Moved)

	res, err := job.Requeue(t.Context(), f, fx.Clock.Now(), false, func(r ddbtrack.RequeueResult) { progress = append(progress, r) })
	require.NoError(t, err)
	require.Equal(t, ddbtrack.RequeueResult{Matched: 250, Moved: 250}, res.RequeueResult)
	require.Len(t, progress, 3, "three batches of at most 100")
	require.Equal(t, 250, progress[2].Moved)
	counts, err := fx.Tracker.Count(t.Context(), opsfixture.Failed)
	require.NoError(t, err)
	n := counts.ByStatus[opsfixture.Failed]
	require.Equal(t, int64(3), n, "only the seeded failures are left")

	reasons := map[string]string{}
	for _, r := range res.Refused {
		reasons[r.ID] = r.Reason
	}
	require.Equal(t, map[string]string{
		"t-ok":      `task "t-ok" is s09_success, not s06_failed or s10_ignore: requeue moves only those; ` + "`ddbtrack reset` runs a task again from any status",
		"t-running": `task "t-running" is s03_in_progress, not s06_failed or s10_ignore: requeue moves only those; ` + "`ddbtrack reset` runs a task again from any status",
		"t-nope":    `task "t-nope" not found in job "nightly-import": check the ID, and --job and --table; ` + "`ddbtrack ls --id-contains TEXT` finds IDs",
	}, reasons)
}
