// Package ddbtest gives ddbtrack's tests, examples and benchmarks a DynamoDB
// client and a table of their own.
//
// One server is shared by the whole test binary and started on first use, so
// a package whose tests never touch storage never pays for one. Each test gets
// its own table from [Table], which lets tests run in parallel without seeing
// each other's items.
//
// The environment chooses the server, as described in [ddblocal.KindFromEnv]:
//
//	go test ./...                                   # dynalite, started here
//	DDBTRACK_SERVER=moto go test ./...              # moto, started here
//	AWS_ENDPOINT_URL_DYNAMODB=http://host:8000 go test ./...  # any running server
//
// A server that cannot start fails the test with the reason rather than
// skipping it: a suite that quietly skips its storage tests looks green while
// testing nothing.
//
// Use [Main] from TestMain so the server is stopped when the tests end:
//
//	func TestMain(m *testing.M) { ddbtest.Main(m) }
package ddbtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
)

// startTimeout bounds the shared server's start. ddblocal caps its own wait
// at 30 seconds; this only adds room for loading the AWS config.
const startTimeout = 45 * time.Second

// shared is the test binary's one server and client.
var shared struct {
	once     sync.Once
	client   *dynamodb.Client
	endpoint string
	stop     func()
	err      error
}

func connect() (*dynamodb.Client, error) {
	shared.once.Do(func() {
		// The server outlives any one test, so its start must not be
		// bound to the context of the test that happened to ask first.
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		client, stop, err := ddblocal.Connect(ctx)
		if err != nil {
			shared.err = fmt.Errorf("ddbtest: no DynamoDB server for the tests: %w", err)
			return
		}
		shared.client, shared.stop = client, stop
		shared.endpoint = aws.ToString(client.Options().BaseEndpoint)
	})
	return shared.client, shared.err
}

// SharedClient returns the client [Client] returns, for code that has no
// testing.TB, such as Example functions. It starts the shared server if
// needed.
func SharedClient() (*dynamodb.Client, error) {
	return connect()
}

// Client returns a client for the test server shared by the whole test
// binary. It starts the server once unless AWS_ENDPOINT_URL_DYNAMODB is set,
// in which case it uses that endpoint. DDBTRACK_SERVER=moto selects moto
// instead of dynalite. A server that cannot start fails the test with the
// reason.
func Client(tb testing.TB) *dynamodb.Client {
	tb.Helper()
	client, err := connect()
	if err != nil {
		tb.Fatal(err)
	}
	return client
}

// Endpoint returns the shared server's endpoint, starting the server if
// needed. For an external server it is the endpoint the SDK resolved, which
// is empty for real AWS.
func Endpoint(tb testing.TB) string {
	tb.Helper()
	Client(tb)
	return shared.endpoint
}

// Kind reports which server the tests use: "dynalite", "moto" or "external".
// It reads the environment and does not start anything, so tests can decide
// early whether a server-specific check applies.
func Kind() string {
	kind, _ := ddblocal.KindFromEnv()
	return string(kind)
}

// Table returns a table name unique to this test and removes the table, if
// the test created one, when the test ends. The name starts with the test's
// name, so a table left on an external server shows where it came from.
//
// Table only names the table; creating it is the code under test's job.
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
			tb.Errorf("ddbtest: delete table %s after the test: %v", name, err)
		}
	})
	return name
}

// maxTableName is DynamoDB's limit on table name length.
const maxTableName = 255

// tableName turns a test name into a valid table name: characters DynamoDB
// does not allow become '_', and a random suffix keeps tests that run more
// than once (-count, or the same name in different packages against one
// external server) apart.
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

// Main runs the tests, stops the shared server, and exits with the tests'
// status. Call it from TestMain. Without it the server is still killed when
// the test binary exits on Linux, but not in an orderly way and not
// elsewhere.
func Main(m *testing.M) {
	code := m.Run()
	// Running the Once synchronises with whichever test started the
	// server, and makes sure nothing can start one after it is stopped.
	shared.once.Do(func() {})
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}
