// Package ddbtest is what is left of the repository's own test helpers now
// that the public test kit, [ddbtracktest], does their work: a shared server,
// a client for it, and a table per test. The kit is one way for users and
// this repository alike; ddbtest only forwards to it, and adds what a user's
// test has no need for, which server runs and where. Packages outside the
// root use the kit directly; the root package's tests move to it next, and
// then this package goes away.
package ddbtest

import (
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/ddblocal"
)

// Client is [ddbtracktest.Client]: a client for the server shared by the
// test binary.
func Client(tb testing.TB) *dynamodb.Client {
	tb.Helper()
	return ddbtracktest.Client(tb)
}

// Table is [ddbtracktest.Table]: a table name unique to the test, deleted
// when the test ends.
func Table(tb testing.TB) string {
	tb.Helper()
	return ddbtracktest.Table(tb)
}

// SharedClient returns the shared client for code that has no testing.TB,
// such as Example functions, starting the server if needed.
func SharedClient() (*dynamodb.Client, error) {
	conn, err := ddblocal.Shared()
	if err != nil {
		return nil, err
	}
	return conn.Client, nil
}

// Endpoint returns the shared server's endpoint, starting the server if
// needed. For an external server it is the endpoint the SDK resolved, which
// is empty for real AWS.
func Endpoint(tb testing.TB) string {
	tb.Helper()
	ddbtracktest.Client(tb) // Fails the test, with the fix, if there is no server.
	conn, _ := ddblocal.Shared()
	return conn.Endpoint
}

// Kind reports which server the tests use: "dynalite", "moto" or
// "external". It starts the shared server if needed, because the server
// running can differ from the one the environment asks for: without
// DDBTRACK_SERVER, moto stands in when dynalite cannot start. If no server
// starts, it reports the environment's choice, and the test's first
// request reports why.
func Kind() string {
	if conn, err := ddblocal.Shared(); err == nil {
		return string(conn.Kind)
	}
	kind, _ := ddblocal.KindFromEnv()
	return string(kind)
}

// Main runs the tests, stops the shared server, and exits with the tests'
// status. The kit needs no TestMain, since the server ends with the test
// binary anyway; this only stops it in order.
func Main(m *testing.M) {
	code := m.Run()
	ddblocal.StopShared()
	os.Exit(code)
}
