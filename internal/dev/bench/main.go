// Command bench runs the root package's benchmarks in interleaved rounds
// and writes a summary that can be pasted into BENCHMARKS.md. `make bench`
// runs it; its flags are the make variables of the same meaning.
//
// It builds the test binary once and runs it -rounds times. Each round runs
// each of its benchmarks once, so ddbtrack and its raw-SDK baseline are
// always measured close together in time, and the summary quotes medians
// over the rounds: the machine is shared, so single runs mean little. Per
// round, BenchmarkThroughput processes -tasks tasks with each
// implementation, BenchmarkContention races once, BenchmarkRequests checks
// the request budget once, and BenchmarkLifecycle runs for -benchtime.
// -queries also runs the query benchmarks (BenchmarkQuery and
// BenchmarkStats, which load up to 100,000 tasks) once, 5 counts, and the
// command module's operations benchmarks (BenchmarkOps..., issue 14: the
// dashboard's overview, stats, a filtered listing and the count queries a
// minute, on one job of -ops-tasks tasks): 5 loads after a first, 5
// counts, and 3 simulated minutes.
// -pool also runs the benchmarks of Process at scale once, -pool-count
// counts: BenchmarkFleet, BenchmarkIdle, BenchmarkDueWork and
// BenchmarkBigJob, at the sizes of issues 15, 16 and 10 unless -pool-args
// passes their test flags (such as -bench.fleet-tasks=2000); at those sizes
// they take about an hour here.
//
// It writes, in -dir: raw.txt (and raw-queries.txt, raw-ops.txt and
// raw-pool.txt), the benchmark output as go test prints it, and
// summary.md, which adds the machine, the load, the tool versions, the
// request counts per step on each server, the index write units of a
// task's life, and benchstat's medians and confidence intervals.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ddbtrack/ddbtrack/internal/dev/devenv"
)

// options are the knobs of one run.
type options struct {
	dir       string
	rounds    int
	tasks     int
	benchtime string
	queries   bool
	opsTasks  int
	pool      bool
	poolCount int
	poolArgs  []string // test flags of the pool benchmarks
	benchstat []string // the benchstat command line
}

func main() {
	var o options
	var benchstat, poolArgs string
	flag.StringVar(&o.dir, "dir", "bench", "directory for the test binary, raw.txt, raw-queries.txt and summary.md")
	flag.IntVar(&o.rounds, "rounds", 6, "rounds of the benchmarks")
	flag.IntVar(&o.tasks, "tasks", 240, "tasks per implementation per round in BenchmarkThroughput")
	flag.StringVar(&o.benchtime, "benchtime", "2s", "BenchmarkLifecycle's -test.benchtime per round")
	flag.BoolVar(&o.queries, "queries", false, "also run the query and operations benchmarks, which take half an hour")
	flag.IntVar(&o.opsTasks, "ops-tasks", 100000, "tasks in the job the operations benchmarks read, with -queries")
	flag.BoolVar(&o.pool, "pool", false, "also run the benchmarks of Process at scale, which take up to an hour")
	flag.IntVar(&o.poolCount, "pool-count", 1, "counts of each benchmark of Process at scale")
	flag.StringVar(&poolArgs, "pool-args", "", "test flags for the benchmarks of Process at scale, e.g. '-bench.fleet-tasks=2000 -bench.pickups=5'")
	flag.StringVar(&benchstat, "benchstat", "benchstat", "the benchstat command, e.g. 'go run golang.org/x/perf/cmd/benchstat@VERSION'")
	flag.Parse()
	o.benchstat = strings.Fields(benchstat)
	o.poolArgs = strings.Fields(poolArgs)
	if o.rounds < 1 || o.tasks < 1 || o.poolCount < 1 || len(o.benchstat) == 0 {
		fmt.Fprintln(os.Stderr, "bench: -rounds, -tasks and -pool-count must be at least 1, and -benchstat must name a command")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	raw := filepath.Join(o.dir, "raw.txt")
	rawQueries := filepath.Join(o.dir, "raw-queries.txt")
	rawOps := filepath.Join(o.dir, "raw-ops.txt")
	rawPool := filepath.Join(o.dir, "raw-pool.txt")
	for _, f := range []string{raw, rawQueries, rawOps, rawPool} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	bin := filepath.Join(o.dir, "ddbtrack.test")
	if err := command(os.Stdout, "", "go", "test", "-c", "-o", bin, ".").Run(); err != nil {
		return fmt.Errorf("build the test binary: %w", err)
	}

	s := summary{
		date:       time.Now().UTC(),
		rounds:     o.rounds,
		command:    commandLine(o),
		loadBefore: loadAverage(),
	}
	benchArgs := []string{"-test.run", "^$", "-test.benchmem", "-test.count", "1", "-test.timeout", "30m"}
	for r := 1; r <= o.rounds; r++ {
		fmt.Printf("==> Round %d of %d (dynalite)\n", r, o.rounds)
		for _, extra := range [][]string{
			{"-test.bench", "^BenchmarkThroughput$", "-test.benchtime", fmt.Sprintf("%dx", o.tasks)},
			{"-test.bench", "^Benchmark(Contention|Requests)$", "-test.benchtime", "1x"},
			{"-test.bench", "^BenchmarkLifecycle$", "-test.benchtime", o.benchtime},
		} {
			if err := runBench(bin, raw, true, append(benchArgs, extra...)); err != nil {
				return err
			}
		}
	}
	if o.queries {
		fmt.Println("==> Query benchmarks (dynalite)")
		if err := runBench(bin, rawQueries, false, []string{"-test.run", "^$", "-test.bench", "BenchmarkQuery$|BenchmarkStats$", "-test.count", "5", "-test.timeout", "60m"}); err != nil {
			return err
		}
		if err := runOps(o, rawOps); err != nil {
			return err
		}
	}
	if o.pool {
		fmt.Println("==> Benchmarks of Process at scale (dynalite)")
		args := []string{"-test.run", "^$", "-test.bench", "^Benchmark(Fleet|Idle|DueWork|BigJob)$", "-test.benchtime", "1x",
			"-test.count", strconv.Itoa(o.poolCount), "-test.timeout", "4h"}
		if err := runBench(bin, rawPool, false, append(args, o.poolArgs...)); err != nil {
			return err
		}
	}
	s.loadAfter = loadAverage()

	fmt.Println("==> Request counts")
	var err error
	if s.requests.dynalite, err = requestTable(bin, "dynalite", "TestRequestsPerLifecycle"); err != nil {
		return err
	}
	if s.indexUnits, err = requestTable(bin, "dynalite", "TestIndexWriteUnits"); err != nil {
		return err
	}
	if python, ok := devenv.MotoPython(); ok {
		s.motoVersion = strings.TrimSpace(outputOf(python, "-I", "-c", "import moto; print(moto.__version__)"))
		if s.requests.moto, err = requestTable(bin, "moto", "TestRequestsPerLifecycle"); err != nil {
			return err
		}
	}
	s.machine = machine()
	s.versions = versions()
	s.benchstat = func(args ...string) (string, error) {
		out, err := command(nil, "", o.benchstat[0], append(o.benchstat[1:], args...)...).Output()
		return string(out), err
	}
	s.raw, s.rawQueries, s.rawOps, s.rawPool = raw, rawQueries, rawOps, rawPool

	var out strings.Builder
	if err := s.write(&out); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.dir, "summary.md"), []byte(out.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("==> Wrote %s and %s\n", filepath.Join(o.dir, "summary.md"), raw)
	return nil
}

// runOps runs the command module's operations benchmarks into raw, from
// a test binary of their own: one process, so the job is seeded once.
// Each timed benchmark loads its page or runs its command 5 times after a
// first, 5 counts; a simulated minute of count queries takes minutes at
// 100,000 tasks, so it runs once a count, 3 counts.
func runOps(o options, raw string) error {
	fmt.Printf("==> Operations benchmarks, %d tasks (dynalite)\n", o.opsTasks)
	bin := filepath.Join(o.dir, "ops.test")
	if err := command(os.Stdout, "", "go", "test", "-c", "-o", bin, "./cmd/ddbtrack").Run(); err != nil {
		return fmt.Errorf("build the command's test binary: %w", err)
	}
	common := []string{"-test.run", "^$", "-test.timeout", "90m", "-opsbench.tasks", fmt.Sprint(o.opsTasks)}
	for _, extra := range [][]string{
		{"-test.bench", "^BenchmarkOps(Overview|Stats|FailedByError)$", "-test.benchtime", "5x", "-test.count", "5"},
		{"-test.bench", "^BenchmarkOpsCountQueries$", "-test.benchtime", "1x", "-test.count", "3"},
	} {
		if err := runBench(bin, raw, true, append(common, extra...)); err != nil {
			return err
		}
	}
	return nil
}

// runBench runs the test binary against dynalite, printing its output as it
// comes and adding it to the file raw (appending when appendTo is set).
func runBench(bin, raw string, appendTo bool, args []string) error {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(raw, flags, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := command(io.MultiWriter(os.Stdout, f), "dynalite", bin, args...)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", bin, strings.Join(args, " "), err)
	}
	return f.Close()
}

// requestTable runs a test that logs a Markdown table, such as
// TestRequestsPerLifecycle, on server, and returns the table without the
// test log's indentation.
func requestTable(bin, server, test string) (string, error) {
	cmd := command(nil, server, bin, "-test.run", "^"+test+"$", "-test.v", "-test.count", "1")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s on %s: %w\n%s", test, server, err, out)
	}
	return tableLines(string(out)), nil
}

// tableLines keeps the lines of s that are Markdown table rows, trimmed.
func tableLines(s string) string {
	var rows []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if len(line) >= 2 && strings.HasPrefix(line, "|") && strings.HasSuffix(line, "|") {
			rows = append(rows, line)
		}
	}
	if len(rows) == 0 {
		return ""
	}
	return strings.Join(rows, "\n") + "\n"
}

// command prepares a command with stdout going to w (nil leaves it to the
// caller), stderr to ours, and DDBTRACK_SERVER set to server when it is not
// empty.
func command(w io.Writer, server, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	if w != nil {
		cmd.Stdout = w
	}
	cmd.Stderr = os.Stderr
	if server != "" {
		cmd.Env = append(os.Environ(), "DDBTRACK_SERVER="+server)
	}
	return cmd
}

// outputOf returns a command's standard output, or "" when it fails: it is
// used for version strings, where a missing tool should not stop the
// report.
func outputOf(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// commandLine is the make command that reproduces a run.
func commandLine(o options) string {
	line := fmt.Sprintf("make bench BENCH_ROUNDS=%d BENCH_TASKS=%d BENCH_TIME=%s BENCH_QUERIES=%d BENCH_OPS_TASKS=%d", o.rounds, o.tasks, o.benchtime, boolInt(o.queries), o.opsTasks)
	if o.pool {
		line += fmt.Sprintf(" BENCH_POOL=1 BENCH_POOL_COUNT=%d", o.poolCount)
		if len(o.poolArgs) > 0 {
			line += fmt.Sprintf(" BENCH_POOL_ARGS='%s'", strings.Join(o.poolArgs, " "))
		}
	}
	return line
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
