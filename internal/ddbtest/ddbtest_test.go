package ddbtest_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/internal/ddbtest"
)

func TestMain(m *testing.M) { ddbtest.Main(m) }

var validTableName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,255}$`)

func TestTableNames(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		subtest    string
		wantPrefix string
	}{
		{subtest: "plain", wantPrefix: "TestTableNames_plain-"},
		{subtest: "spaces and/slash ünïcode", wantPrefix: "TestTableNames_spaces_and_slash__n_code-"},
		{subtest: strings.Repeat("x", 400), wantPrefix: "TestTableNames_xxx"},
	} {
		t.Run(tt.subtest, func(t *testing.T) {
			t.Parallel()
			first, second := ddbtest.Table(t), ddbtest.Table(t)
			require.Regexp(t, validTableName, first)
			require.True(t, strings.HasPrefix(first, tt.wantPrefix), "%q should start with %q", first, tt.wantPrefix)
			require.NotEqual(t, first, second, "two tables in one test must not collide")
		})
	}
}

func TestTableIsDeletedAfterTheTest(t *testing.T) {
	t.Parallel()
	client := ddbtest.Client(t)
	ctx := t.Context()

	var name string
	t.Run("creates", func(t *testing.T) {
		name = ddbtest.Table(t)
		_, err := client.CreateTable(t.Context(), &dynamodb.CreateTableInput{
			TableName:            aws.String(name),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		require.NoError(t, err)
		// dynalite answers CreateTable while the table is still CREATING.
		require.NoError(t, dynamodb.NewTableExistsWaiter(client).Wait(t.Context(),
			&dynamodb.DescribeTableInput{TableName: aws.String(name)}, 10*time.Second, pollQuickly))
	})
	t.Run("never creates", func(t *testing.T) {
		// The cleanup must not fail the test when there is nothing to
		// delete.
		ddbtest.Table(t)
	})

	_, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound, "the subtest's cleanup should have deleted %s", name)
}

func TestSharedServer(t *testing.T) {
	t.Parallel()

	require.Same(t, ddbtest.Client(t), ddbtest.Client(t), "the test binary must share one client and server")
	shared, err := ddbtest.SharedClient()
	require.NoError(t, err)
	require.Same(t, ddbtest.Client(t), shared)

	require.Contains(t, []string{"dynalite", "moto", "external"}, ddbtest.Kind())
	if ddbtest.Kind() != "external" {
		require.Regexp(t, `^http://127\.0\.0\.1:\d+$`, ddbtest.Endpoint(t))
	}
	_, err = ddbtest.Client(t).ListTables(t.Context(), &dynamodb.ListTablesInput{})
	require.NoError(t, err)
}

// pollQuickly shortens the waiter's delays, which are tuned for real
// DynamoDB: its 20-second minimum delay exceeds the maximum wait, so without
// this the waiter gives up after one look at a CREATING table.
func pollQuickly(o *dynamodb.TableExistsWaiterOptions) {
	o.MinDelay, o.MaxDelay = 10*time.Millisecond, 100*time.Millisecond
}
