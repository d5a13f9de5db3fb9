// Package ddbtracktest tests code that uses ddbtrack against a local DynamoDB,
// with one call of setup per test:
//
//	func TestImport(t *testing.T) {
//		tr := ddbtracktest.New(t, ddbtrack.Config[Status]{Job: "import", Pending: Queued, ...})
//		// ... call your code with tr ...
//		ddbtracktest.Drain(t, tr, importFile)
//		ddbtracktest.RequireTask(t, tr, "file-1.csv", ddbtracktest.Want[Status]{Status: Imported})
//	}
//
// [New] returns a tracker on a table of the test's own, created on a server
// shared by the test binary and deleted when the test ends, so tests can run
// in parallel. [Drain] runs the job's tasks until none is left, [RequireTask]
// checks what a task ended with, and a [Clock] lets a test move time.
//
// # Which server
//
// When AWS_ENDPOINT_URL_DYNAMODB is set, the tests use the server it names
// (DynamoDB Local, LocalStack, or real AWS with your usual credentials) and
// start nothing. Otherwise the first test that needs a server starts one on a
// free loopback port, for the whole test binary:
//
//   - dynalite, a DynamoDB implementation for Node.js. It is found in
//     node_modules in the package's directory or its parents (after
//     `npm install --save-dev dynalite` in your repository), or else
//     installed once per machine into the user's cache directory (for
//     example ~/.cache/ddbtrack on Linux) with npm, at the version ddbtrack
//     pins and tests against. This needs Node.js 20 or newer with npm, and
//     network access to the npm registry the first time.
//   - moto, when dynalite is unavailable and `python3 -I -c 'import
//     moto.server'` works (`pip install 'moto[server]'`).
//
// DDBTRACK_SERVER=dynalite or DDBTRACK_SERVER=moto insists on one of them.
// The server stops when the test binary exits, however it exits, so a test
// needs no TestMain. A test that finds no server
// fails with the reason and the fix; it is never skipped, because a suite
// that quietly skips its storage tests looks green while testing nothing.
//
// # Logs
//
// The trackers New builds log nothing unless the tests run with -v; then
// their logs go to the test's output. Set Config.Logger to choose otherwise.
package ddbtracktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
)

// New returns a tracker for cfg on a fresh table, ready to use. It fills in
// what a test seldom cares about:
//
//   - Table, when empty, names a new table unique to this test, which is
//     deleted when the test ends (see [Table]). A Table you set is created
//     if missing, and deleted only if it came from [Table].
//   - Logger, when nil, is [Logger]: silent unless the tests run with -v.
//   - RetryDelay, when nil, retries a failed task at once, so that a test
//     of a task that fails and then succeeds does not wait out the
//     production delay (30 seconds and more). Set it, with a [Clock] as
//     Config.Now, to test the delay itself.
//
// Everything else, the Job and the five roles included, is cfg's; so is the
// validation, which fails the test with ddbtrack's message. A second tracker
// on the same table, as a second worker would have, is
// ddbtrack.New(ddbtracktest.Client(t), cfg) with cfg.Table =
// tr.Config().Table.
func New[S ddbtrack.Status](tb testing.TB, cfg ddbtrack.Config[S]) *ddbtrack.Tracker[S] {
	tb.Helper()
	client := Client(tb)
	if cfg.Table == "" {
		cfg.Table = Table(tb)
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger(tb)
	}
	if cfg.RetryDelay == nil {
		cfg.RetryDelay = func(int) time.Duration { return 0 }
	}
	tr, err := ddbtrack.New(client, cfg)
	if err != nil {
		tb.Fatalf("ddbtracktest: %v", err)
	}
	if err := tr.CreateTable(tb.Context()); err != nil {
		tb.Fatalf("ddbtracktest: %v", err)
	}
	return tr
}

// Client returns a client for the server shared by the test binary, starting
// the server on first use as the package documentation describes. A server
// that cannot start fails the test with the reason and the fix.
func Client(tb testing.TB) *dynamodb.Client {
	tb.Helper()
	conn, err := ddblocal.Shared()
	if err != nil {
		tb.Fatalf("ddbtracktest: no DynamoDB server for the tests: %v\n"+
			"To fix it, do one of these:\n"+
			"  - install Node.js 20 or newer with npm; the tests then install dynalite %s once per machine;\n"+
			"  - pip install 'moto[server]';\n"+
			"  - set %s to a running DynamoDB-compatible server.",
			err, ddblocal.DynaliteVersion(), ddblocal.EnvEndpoint)
	}
	return conn.Client
}

// Table returns a table name unique to this test, and deletes the table, if
// anything created it, when the test ends. The name starts with the test's
// name, so a table left behind on a shared server shows where it came from.
// [New] calls it when Config.Table is empty; call it yourself to name a
// table before creating trackers on it.
func Table(tb testing.TB) string {
	tb.Helper()
	client := Client(tb)
	name := tableName(tb.Name(), rand.Uint32())
	tb.Cleanup(func() {
		// The test's own context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
		var notFound *types.ResourceNotFoundException
		if err != nil && !errors.As(err, &notFound) {
			// A table left behind costs nothing locally but money on
			// AWS, so say so rather than let it leak quietly.
			tb.Errorf("ddbtracktest: delete table %s after the test: %v", name, err)
		}
	})
	return name
}

// maxTableName is DynamoDB's limit on a table name's length.
const maxTableName = 255

// tableName turns a test name into a valid table name: characters DynamoDB
// does not allow become '_', and a random suffix keeps apart tests that run
// more than once (-count, or one name in two packages on one server).
func tableName(testName string, random uint32) string {
	suffix := fmt.Sprintf("-%08x", random)
	var b strings.Builder
	for _, r := range testName {
		if b.Len() >= maxTableName-len(suffix) {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String() + suffix
}

// Logger returns a logger for a tracker under test. Without -v it discards
// everything: a tracker logs every claim and outcome, which would bury a
// failing test's own messages. With -v it writes to the test's output, where
// each line shows under the test that logged it.
func Logger(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	w := &testWriter{out: tb.Output()}
	tb.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, nil))
}

// testWriter drops what is written after its test ended: the testing
// package panics on output from a finished test, and a tracker shared with
// a goroutine that outlives the test should not turn a log line into a
// crash.
type testWriter struct {
	mu   sync.Mutex
	out  io.Writer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.out.Write(p)
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
