package ddbtest_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/ddbtest"
)

func TestMain(m *testing.M) { ddbtest.Main(m) }

// TestForwardsToTheKit: the repository's tests and the kit's users must share
// one server and one client, not run two of each.
func TestForwardsToTheKit(t *testing.T) {
	t.Parallel()

	require.Same(t, ddbtracktest.Client(t), ddbtest.Client(t))
	shared, err := ddbtest.SharedClient()
	require.NoError(t, err)
	require.Same(t, ddbtest.Client(t), shared)

	require.Contains(t, []string{"dynalite", "moto", "external"}, ddbtest.Kind())
	if ddbtest.Kind() != "external" {
		require.Regexp(t, `^http://127\.0\.0\.1:\d+$`, ddbtest.Endpoint(t))
	}
	_, err = ddbtest.Client(t).ListTables(t.Context(), &dynamodb.ListTablesInput{})
	require.NoError(t, err)
	require.NotEqual(t, ddbtest.Table(t), ddbtest.Table(t))
}
