package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSummary pins summary.md's layout, which BENCHMARKS.md quotes, with
// a stand-in for benchstat that echoes its arguments.
func TestSummary(t *testing.T) {
	t.Parallel()
	const table = "| step | writes |\n| --- | --- |\n| claim | 1 |\n"
	for _, tc := range []struct {
		name       string
		raw        string
		rawQueries string
		rawOps     string
		rawPool    string
		moto       string
		index      string
		want       string
	}{
		{
			name: "all sections",
			raw:  "BenchmarkThroughput-2 240 1 ns/op\nBenchmarkLifecycle/impl=ddbtrack-2 1 1 ns/op\n",
			moto: table, index: table, rawQueries: "BenchmarkQuery-2 1 1 ns/op\n", rawOps: "BenchmarkOpsStats-2 5 1 ns/op\n", rawPool: "BenchmarkFleet-2 1 1 ns/op\n",
			want: "# ddbtrack benchmark summary\n\n" +
				"- Date: 2026-11-29 10:30 UTC\n" +
				"- Machine: Linux x86_64, Some CPU, 2 cores\n" +
				"- Load average (1, 5, 15 min) before: 0.10 0.20 0.30; after: 1.00 2.00 3.00\n" +
				"- go version go1.26.8 linux/amd64; node v20.20.2; dynalite 4.0.0\n" +
				"- Command: make bench BENCH_ROUNDS=1\n" +
				"\n## Requests per step (dynalite)\n\n" + table +
				"\n## Requests per step (moto 5.2.1)\n\n" + table +
				"\n## Write units of a task's life, index included (computed from item sizes; dynalite reports the table's only)\n\n" + table +
				"\n## Benchmarks: medians over 1 rounds, with 95% confidence intervals\n\n```text\nbenchstat RAW\n```\n" +
				"\n## Library CPU per lifecycle in process, through the SDK (client=sdk) and without it (client=canned): ddbtrack vs the raw-SDK baseline\n\n```text\nbenchstat -filter .name:Lifecycle -col /impl RAW\n```\n" +
				"\n## Queries (one process, 5 counts)\n\n```text\nbenchstat QUERIES\n```\n" +
				"\n## Operations on one big job (one process; medians of 5 counts, 3 for count queries)\n\n```text\nbenchstat OPS\n```\n" +
				"\n## Process at scale: fleets, idle cost, due work, big jobs (one process)\n\n```text\nbenchstat POOL\n```\n",
		},
		{
			name: "no moto, no lifecycle, no queries",
			raw:  "BenchmarkThroughput-2 240 1 ns/op\n",
			want: "# ddbtrack benchmark summary\n\n" +
				"- Date: 2026-11-29 10:30 UTC\n" +
				"- Machine: Linux x86_64, Some CPU, 2 cores\n" +
				"- Load average (1, 5, 15 min) before: 0.10 0.20 0.30; after: 1.00 2.00 3.00\n" +
				"- go version go1.26.8 linux/amd64; node v20.20.2; dynalite 4.0.0\n" +
				"- Command: make bench BENCH_ROUNDS=1\n" +
				"\n## Requests per step (dynalite)\n\n" + table +
				"\n(moto is not installed: the refused claim that returns its item was not measured)\n" +
				"\n## Benchmarks: medians over 1 rounds, with 95% confidence intervals\n\n```text\nbenchstat RAW\n```\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			raw, rawQueries := filepath.Join(dir, "raw.txt"), filepath.Join(dir, "raw-queries.txt")
			rawOps, rawPool := filepath.Join(dir, "raw-ops.txt"), filepath.Join(dir, "raw-pool.txt")
			require.NoError(t, os.WriteFile(raw, []byte(tc.raw), 0o644))
			if tc.rawQueries != "" {
				require.NoError(t, os.WriteFile(rawQueries, []byte(tc.rawQueries), 0o644))
			}
			if tc.rawOps != "" {
				require.NoError(t, os.WriteFile(rawOps, []byte(tc.rawOps), 0o644))
			}
			if tc.rawPool != "" {
				require.NoError(t, os.WriteFile(rawPool, []byte(tc.rawPool), 0o644))
			}
			s := summary{
				date:        time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC),
				machine:     "Linux x86_64, Some CPU, 2 cores",
				loadBefore:  "0.10 0.20 0.30",
				loadAfter:   "1.00 2.00 3.00",
				versions:    "go version go1.26.8 linux/amd64; node v20.20.2; dynalite 4.0.0",
				command:     "make bench BENCH_ROUNDS=1",
				rounds:      1,
				motoVersion: "5.2.1",
				raw:         raw,
				rawQueries:  rawQueries,
				rawOps:      rawOps,
				rawPool:     rawPool,
				indexUnits:  tc.index,
				benchstat: func(args ...string) (string, error) {
					line := strings.NewReplacer(raw, "RAW", rawQueries, "QUERIES", rawOps, "OPS", rawPool, "POOL").Replace(strings.Join(args, " "))
					return "benchstat " + line + "\n", nil
				},
			}
			s.requests.dynalite, s.requests.moto = table, tc.moto
			var b strings.Builder
			require.NoError(t, s.write(&b))
			require.Equal(t, tc.want, b.String())
		})
	}
}

func TestTableLines(t *testing.T) {
	t.Parallel()
	log := "=== RUN   TestRequestsPerLifecycle\n    requests_test.go:234: \n" +
		"        | step | writes |\n        | --- | --- |\n        | claim | 1 |\n--- PASS: TestRequestsPerLifecycle (0.10s)\nPASS\n"
	require.Equal(t, "| step | writes |\n| --- | --- |\n| claim | 1 |\n", tableLines(log))
	require.Empty(t, tableLines("PASS\n"))
}
