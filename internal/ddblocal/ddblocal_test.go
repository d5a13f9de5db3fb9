package ddblocal_test

import (
	"bytes"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
)

func TestDynaliteRestartKeepsDataOnDisk(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	srv, err := ddblocal.Start(ctx, ddblocal.Options{Path: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	require.Equal(t, ddblocal.Dynalite, srv.Kind)

	client, err := ddblocal.NewClient(ctx, srv.Endpoint)
	require.NoError(t, err)
	createTable(t, client, "survivor")

	endpoint := srv.Endpoint
	require.NoError(t, srv.Restart(ctx))
	require.Equal(t, endpoint, srv.Endpoint, "Restart must keep the port so existing clients keep working")

	// The same client is reused on purpose: its pooled connection to the
	// old process is dead, and the SDK's retryer has to recover from that.
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("survivor")})
	require.NoError(t, err)
	require.Equal(t, types.TableStatusActive, out.Table.TableStatus)

	require.NoError(t, srv.Stop())
	require.NoError(t, srv.Stop(), "a second Stop must be a no-op")
	requirePortClosed(t, endpoint)
}

func TestDynaliteInMemoryRestartLosesData(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	var log syncBuffer
	srv, err := ddblocal.Start(ctx, ddblocal.Options{Kind: ddblocal.Dynalite, Log: &log})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })

	client, err := ddblocal.NewClient(ctx, srv.Endpoint)
	require.NoError(t, err)
	createTable(t, client, "ephemeral")

	require.NoError(t, srv.Restart(ctx))
	_, err = client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("ephemeral")})
	var notFound *types.ResourceNotFoundException
	require.ErrorAs(t, err, &notFound, "an in-memory server must start empty after Restart")

	require.NoError(t, srv.Stop())
	require.Contains(t, log.String(), "Dynalite listening", "Options.Log must receive the server's output")
}

func TestMoto(t *testing.T) {
	t.Parallel()
	// The only skip in the suite: moto is an optional second opinion, and
	// `make test` says out loud when it is missing.
	python := "python3"
	if _, err := exec.LookPath(python); err != nil {
		python = "python" // The same fallback Start uses.
	}
	if err := exec.Command(python, "-I", "-c", "import moto.server").Run(); err != nil {
		t.Skipf("moto is not installed (%s -I -c 'import moto.server': %v); install it with `pip install 'moto[server]'` to run this test", python, err)
	}
	ctx := t.Context()

	srv, err := ddblocal.Start(ctx, ddblocal.Options{Kind: ddblocal.Moto})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	require.Equal(t, ddblocal.Moto, srv.Kind)

	client, err := ddblocal.NewClient(ctx, srv.Endpoint)
	require.NoError(t, err)
	createTable(t, client, "moto_table")

	endpoint := srv.Endpoint
	require.NoError(t, srv.Stop())
	require.NoError(t, srv.Stop())
	requirePortClosed(t, endpoint)
}

func TestStartReportsPortInUse(t *testing.T) {
	t.Parallel()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	// An explicit port is never swapped for another, so the failure must
	// come back with the server's own explanation.
	_, err = ddblocal.Start(t.Context(), ddblocal.Options{Port: port})
	require.ErrorContains(t, err, "could not listen on port "+strconv.Itoa(port))
	require.ErrorContains(t, err, "EADDRINUSE")
}

func TestStartRejectsBadOptions(t *testing.T) {
	t.Parallel()

	_, err := ddblocal.Start(t.Context(), ddblocal.Options{Kind: "dynamodb-local"})
	require.ErrorContains(t, err, `unknown server kind "dynamodb-local"`)

	_, err = ddblocal.Start(t.Context(), ddblocal.Options{Kind: ddblocal.Moto, Path: t.TempDir()})
	require.ErrorContains(t, err, "leave Options.Path empty")

	_, err = ddblocal.Start(t.Context(), ddblocal.Options{Port: 70000})
	require.ErrorContains(t, err, "not a TCP port")
}

func TestStartWithoutDynaliteNamesTheFix(t *testing.T) {
	// Outside the repository neither the directory walk nor `go env GOMOD`
	// can find node_modules.
	t.Chdir(t.TempDir())

	_, err := ddblocal.Start(t.Context(), ddblocal.Options{})
	require.ErrorContains(t, err, "dynalite is not installed: run `make deps` (npm ci)")
}

func TestNewClientDefaults(t *testing.T) {
	for _, name := range []string{
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
	} {
		t.Setenv(name, "")
	}
	// Keep a developer's ~/.aws files out of the test.
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/config")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/credentials")
	ctx := t.Context()

	client, err := ddblocal.NewClient(ctx, "http://127.0.0.1:1")
	require.NoError(t, err)
	opts := client.Options()
	require.Equal(t, "us-east-1", opts.Region)
	require.Equal(t, "http://127.0.0.1:1", aws.ToString(opts.BaseEndpoint))
	creds, err := opts.Credentials.Retrieve(ctx)
	require.NoError(t, err)
	require.Equal(t, "local", creds.AccessKeyID)

	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	client, err = ddblocal.NewClient(ctx, "http://127.0.0.1:1")
	require.NoError(t, err)
	opts = client.Options()
	require.Equal(t, "eu-west-1", opts.Region)
	creds, err = opts.Credentials.Retrieve(ctx)
	require.NoError(t, err)
	require.Equal(t, "AKIDEXAMPLE", creds.AccessKeyID, "credentials from the environment must win over the dummy pair")

	// With no endpoint the SDK resolves its own, here from the standard
	// variable.
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2")
	client, err = ddblocal.NewClient(ctx, "")
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:2", aws.ToString(client.Options().BaseEndpoint))
}

func TestKindFromEnv(t *testing.T) {
	for _, tt := range []struct {
		server, endpoint string
		want             ddblocal.Kind
		wantErr          string
	}{
		{want: ddblocal.Dynalite},
		{server: "dynalite", want: ddblocal.Dynalite},
		{server: "moto", want: ddblocal.Moto},
		{server: "moto", endpoint: "http://127.0.0.1:1", want: ddblocal.External},
		{server: "localstack", want: "localstack", wantErr: `DDBTRACK_SERVER="localstack" is not a known server`},
	} {
		t.Run(tt.server+"|"+tt.endpoint, func(t *testing.T) {
			t.Setenv(ddblocal.EnvServer, tt.server)
			t.Setenv(ddblocal.EnvEndpoint, tt.endpoint)
			got, err := ddblocal.KindFromEnv()
			require.Equal(t, tt.want, got)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

func TestConnect(t *testing.T) {
	t.Setenv(ddblocal.EnvServer, "")
	t.Setenv(ddblocal.EnvEndpoint, "")
	ctx := t.Context()

	client, stop, err := ddblocal.Connect(ctx)
	require.NoError(t, err)
	defer stop()
	createTable(t, client, "connected")

	// With the standard variable set, Connect starts nothing and uses the
	// endpoint it names: here, the server the first call started.
	t.Setenv(ddblocal.EnvEndpoint, aws.ToString(client.Options().BaseEndpoint))
	external, stopExternal, err := ddblocal.Connect(ctx)
	require.NoError(t, err)
	stopExternal()
	_, err = external.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("connected")})
	require.NoError(t, err, "stop must do nothing for an external endpoint")
}

func createTable(t *testing.T, client *dynamodb.Client, name string) {
	t.Helper()
	_, err := client.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	require.NoError(t, err)

	// Even with --createTableMs 0, dynalite answers CreateTable with
	// CREATING and flips the table to ACTIVE a moment later. A restart in
	// that moment leaves it CREATING for good, so wait as real DynamoDB
	// would require anyway.
	err = dynamodb.NewTableExistsWaiter(client).Wait(t.Context(),
		&dynamodb.DescribeTableInput{TableName: aws.String(name)}, 10*time.Second, pollQuickly)
	require.NoError(t, err)
}

// requirePortClosed checks that the server really exited rather than just
// being forgotten.
func requirePortClosed(t *testing.T, endpoint string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", endpoint[len("http://"):], time.Second)
	if err == nil {
		conn.Close()
	}
	var opErr *net.OpError
	require.True(t, errors.As(err, &opErr), "nothing should listen on %s after Stop, got %v", endpoint, err)
}

// syncBuffer is a bytes.Buffer safe to read while the server writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pollQuickly shortens the waiter's delays, which are tuned for real
// DynamoDB: its 20-second minimum delay exceeds the maximum wait, so without
// this the waiter gives up after one look at a CREATING table.
func pollQuickly(o *dynamodb.TableExistsWaiterOptions) {
	o.MinDelay, o.MaxDelay = 10*time.Millisecond, 100*time.Millisecond
}

// TestDynaliteSurvivesAbortedRequest: a client that gives up on a request
// halfway through its body (a cancelled context does that) must not take
// the server down. Unguarded, dynalite 4.0.0 rethrows the socket error and
// exits.
func TestDynaliteSurvivesAbortedRequest(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv, err := ddblocal.Start(ctx, ddblocal.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })

	for range 3 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(srv.Endpoint, "http://"))
		require.NoError(t, err)
		_, err = conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n" +
			"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 1000\r\n\r\n{\"Limit\""))
		require.NoError(t, err)
		time.Sleep(50 * time.Millisecond)
		require.NoError(t, conn.(*net.TCPConn).SetLinger(0)) // close with a reset
		require.NoError(t, conn.Close())
	}
	time.Sleep(200 * time.Millisecond)

	client, err := ddblocal.NewClient(ctx, srv.Endpoint)
	require.NoError(t, err)
	_, err = client.ListTables(ctx, &dynamodb.ListTablesInput{})
	require.NoError(t, err, "the server died after an aborted request")
}
