package ddblocal_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

func TestStartWithoutDynaliteOrNPMNamesTheFix(t *testing.T) {
	// Outside the repository neither the directory walk nor `go env GOMOD`
	// can find node_modules, the cache is empty, and without npm on PATH
	// nothing can install dynalite there.
	t.Chdir(t.TempDir())
	emptyCache(t)
	t.Setenv("PATH", t.TempDir())

	_, err := ddblocal.Start(t.Context(), ddblocal.Options{})
	require.ErrorContains(t, err, "dynalite is not installed, and npm, which would install it into")
	require.ErrorContains(t, err, "install Node.js 20 or newer with npm")
}

// TestInstallDynaliteOutsideTheRepository is what a module that is not this
// repository goes through on a fresh machine: test binaries that start at
// once all find dynalite missing, one installs the pinned version into the
// cache while the others wait, and every one of them can then start it.
func TestInstallDynaliteOutsideTheRepository(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("points the cache elsewhere with XDG_CACHE_HOME, which only Linux's os.UserCacheDir reads")
	}
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Chdir(t.TempDir())
	ctx := t.Context()

	dir, err := ddblocal.CacheDir()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(cache, "ddbtrack"), filepath.Dir(dir))
	require.Contains(t, filepath.Base(dir), "dynalite-"+ddblocal.DynaliteVersion()+"-")

	scripts, errs := make([]string, 3), make([]error, 3)
	var wg sync.WaitGroup
	for i := range scripts {
		wg.Go(func() { scripts[i], errs[i] = ddblocal.InstallDynalite(ctx, dir) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	require.Equal(t, filepath.Join(dir, "node_modules", "dynalite", "cli.js"), scripts[0])
	require.Equal(t, []string{scripts[0], scripts[0]}, scripts[1:])

	entries, err := os.ReadDir(filepath.Dir(dir))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{filepath.Base(dir)}, names, "no lock file or half-installed directory may be left")

	srv, err := ddblocal.Start(ctx, ddblocal.Options{})
	require.NoError(t, err, "Start must find the installed dynalite in the cache")
	client, err := ddblocal.NewClient(ctx, srv.Endpoint)
	require.NoError(t, err)
	createTable(t, client, "from_cache")
	require.NoError(t, srv.Stop())
}

func TestEmbeddedPinsMatchTheRepository(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"package.json", "package-lock.json"} {
		repo, err := os.ReadFile(filepath.Join("..", "..", name))
		require.NoError(t, err)
		embedded, err := ddblocal.NPMFiles.ReadFile("npm/" + name)
		require.NoError(t, err)
		require.Equal(t, string(repo), string(embedded),
			"internal/ddblocal/npm/%s must be a copy of the repository's %s: cp %s internal/ddblocal/npm/", name, name, name)
	}

	var lock struct {
		Packages map[string]struct{ Version string } `json:"packages"`
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "package-lock.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &lock))
	require.Equal(t, lock.Packages["node_modules/dynalite"].Version, ddblocal.DynaliteVersion())
}

// TestConnectFallsBackToMoto: a machine with Python and moto but no Node.js
// still gets a server when the environment does not insist on dynalite.
func TestConnectFallsBackToMoto(t *testing.T) {
	// The interpreter itself, not a wrapper such as pyenv's shim, which
	// would need more of PATH than this test leaves.
	out, err := exec.Command("python3", "-I", "-c", "import moto.server, sys; print(sys.executable)").Output()
	if err != nil {
		t.Skip("moto is not installed for python3; install it with `pip install 'moto[server]'` to run this test")
	}
	python := strings.TrimSpace(string(out))
	bin := t.TempDir()
	require.NoError(t, os.Symlink(python, filepath.Join(bin, "python3")))
	t.Setenv("PATH", bin) // python3, but no node, npm or go
	t.Chdir(t.TempDir())
	emptyCache(t)
	t.Setenv(ddblocal.EnvServer, "")
	t.Setenv(ddblocal.EnvEndpoint, "")

	kind, stop, err := ddblocal.ConnectKind(t.Context())
	require.NoError(t, err)
	stop()
	require.Equal(t, ddblocal.Moto, kind)

	// An explicit choice of dynalite is never swapped for another server.
	t.Setenv(ddblocal.EnvServer, "dynalite")
	_, _, err = ddblocal.ConnectKind(t.Context())
	require.ErrorContains(t, err, "dynalite is not installed")
}

// TestServersEndWithTheirInput checks what stops a server whose starter
// died without stopping it, on any OS: closing its standard input is what
// the OS does when the starter dies.
func TestServersEndWithTheirInput(t *testing.T) {
	t.Parallel()
	guard, err := ddblocal.WriteGuard()
	require.NoError(t, err)
	script, err := filepath.Abs(filepath.Join("..", "..", "node_modules", "dynalite", "cli.js"))
	require.NoError(t, err)

	for _, tt := range []struct {
		kind  ddblocal.Kind
		cmd   []string
		ready string
	}{
		{ddblocal.Dynalite, []string{"node", "--require", guard, script, "--host", "127.0.0.1", "--port", "0"}, "listening"},
		{ddblocal.Moto, []string{"python3", "-I", "-c", ddblocal.MotoLauncher, "-H", "127.0.0.1", "-p", "0"}, "Running on"},
	} {
		t.Run(string(tt.kind), func(t *testing.T) {
			t.Parallel()
			if tt.kind == ddblocal.Moto && exec.Command("python3", "-I", "-c", "import moto.server").Run() != nil {
				t.Skip("moto is not installed for python3; install it with `pip install 'moto[server]'` to run this test")
			}
			cmd := exec.Command(tt.cmd[0], tt.cmd[1:]...)
			stdin, err := cmd.StdinPipe()
			require.NoError(t, err)
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			require.Eventually(t, func() bool { return strings.Contains(out.String(), tt.ready) }, 20*time.Second, 10*time.Millisecond,
				"%s did not start: %s", tt.kind, &out)

			require.NoError(t, stdin.Close())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				require.NoError(t, err, "%s should exit cleanly when its input ends", tt.kind)
			case <-time.After(10 * time.Second):
				t.Fatalf("%s kept running after its input ended", tt.kind)
			}
		})
	}
}

// emptyCache points os.UserCacheDir at an empty directory on every OS.
func emptyCache(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", dir) // Linux and other Unix
	t.Setenv("HOME", dir)           // macOS: ~/Library/Caches
	t.Setenv("LocalAppData", dir)   // Windows
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
