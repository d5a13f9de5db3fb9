package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	fixture "github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata with the output of this run")

// cli runs the command in-process against a fixture's table, with the
// fixture's clock.
type cli struct {
	t   *testing.T
	fx  *fixture.Fixture
	env map[string]string
}

func newCLI(t *testing.T, fx *fixture.Fixture) *cli {
	return &cli{t: t, fx: fx, env: map[string]string{
		envTable: fx.Table,
		envJob:   fixture.Job,
	}}
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	var stdout, stderr bytes.Buffer
	a := &app{
		stdout: &stdout,
		stderr: &stderr,
		getenv: c.getenv,
		now:    c.fx.Clock.Now,
		dial:   c.dial,
	}
	code := a.run(c.t.Context(), args)
	// The table's name is random per test; golden files say TABLE.
	clean := func(s string) string { return strings.ReplaceAll(s, c.fx.Table, "TABLE") }
	return result{code, clean(stdout.String()), clean(stderr.String())}
}

func (c *cli) getenv(k string) string { return c.env[k] }

func (c *cli) dial(context.Context, *common) (ddbtrack.Client, error) { return c.fx.Client, nil }

func newFlagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

// golden compares got with testdata/name.golden, or rewrites the file
// with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run `go test -run %s -update` to create the golden file", t.Name())
	require.Equal(t, string(want), got, "output differs from %s; if the change is intended, rerun with -update and review the diff", path)
}
