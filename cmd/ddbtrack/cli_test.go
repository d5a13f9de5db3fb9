package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ddbtrack/ddbtrack/ddbtracktest"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
	fixture "github.com/ddbtrack/ddbtrack/internal/dev/opsfixture"
)

// cursorRE matches a cursor, which encodes the random table name and so
// differs from run to run.
var cursorRE = regexp.MustCompile(`(--cursor |"next_cursor": ")[A-Za-z0-9_-]+`)

// transcript shows a run as a terminal would, for golden files.
func transcript(args []string, r result) string {
	var b strings.Builder
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = a
		if a == "" || strings.ContainsAny(a, " \"'<>$&;|\\\n") {
			quoted[i] = strconv.Quote(a)
		}
	}
	fmt.Fprintf(&b, "$ ddbtrack %s\n", strings.Join(quoted, " "))
	b.WriteString(r.stdout)
	if r.stderr != "" {
		b.WriteString("--- stderr\n")
		b.WriteString(r.stderr)
	}
	fmt.Fprintf(&b, "--- exit %d\n", r.code)
	return cursorRE.ReplaceAllString(b.String(), "${1}CURSOR")
}

// TestGolden runs the commands that read, and the dry runs, against one
// seeded job and compares their output with testdata/*.golden.
func TestGolden(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)

	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"stats", []string{"stats"}, exitOK},
		{"stats-json", []string{"stats", "--json"}, exitOK},
		{"ls", []string{"ls"}, exitOK},
		{"ls-failed-json", []string{"ls", "--status", "failed", "--json"}, exitOK},
		{"ls-stuck", []string{"ls", "--stuck"}, exitOK},
		{"ls-error", []string{"ls", "--status", "failed,s10_ignore", "--error-contains", "connection reset"}, exitOK},
		{"ls-since", []string{"ls", "--since", "25m", "--order", "oldest"}, exitOK},
		{"ls-page", []string{"ls", "--limit", "3"}, exitOK},
		{"ls-none", []string{"ls", "--status", "pending", "--error-contains", "nothing like this"}, exitOK},
		{"show", []string{"show", "t-fail-2"}, exitOK},
		{"show-ok", []string{"show", "t-ok"}, exitOK},
		{"show-stuck", []string{"show", "t-stuck"}, exitOK},
		{"show-json", []string{"show", "--json", "t-ok"}, exitOK},
		{"show-xss", []string{"show", fixture.XSS}, exitOK},
		{"show-missing", []string{"show", "t-nope"}, exitNotFound},
		{"requeue-dry-run", []string{"requeue"}, exitOK},
		{"requeue-dry-run-filter", []string{"requeue", "--error-contains", "connection reset", "--since", "1h"}, exitOK},
		{"requeue-dry-run-json", []string{"requeue", "--json", "--status", "ignored"}, exitOK},
		{"delete-dry-run", []string{"delete", "--status", "failed,ignored"}, exitOK},
		{"errors", []string{"errors"}, exitOK},
		{"errors-json", []string{"errors", "--json", "--status", "failed"}, exitOK},
		{"errors-none", []string{"errors", "--error-contains", "nothing like this"}, exitOK},
		{"requeue-group-dry-run", []string{"requeue", "--group", "9205e6d1c2"}, exitOK},
		{"reset-locked", []string{"reset", "t-running"}, exitLocked},
		{"help", []string{"help"}, exitOK},
		{"help-ls", []string{"ls", "--help"}, exitOK},
		{"help-requeue", []string{"help", "requeue"}, exitOK},
		{"help-statuses", []string{"help", "statuses"}, exitOK},
		{"help-exit-codes", []string{"help", "exit-codes"}, exitOK},
		{"usage-no-command", nil, exitUsage},
		{"usage-unknown-command", []string{"lss"}, exitUsage},
		{"usage-unknown-flag", []string{"ls", "--stat", "failed"}, exitUsage},
		{"usage-bad-status", []string{"ls", "--status", "broken"}, exitUsage},
		{"usage-bad-time", []string{"ls", "--since", "yesterday"}, exitUsage},
		{"usage-bad-cursor", []string{"ls", "--cursor", "xyz"}, exitUsage},
		{"usage-show-no-task", []string{"show"}, exitUsage},
		{"usage-stuck-and-status", []string{"requeue", "--stuck", "--status", "failed"}, exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t, fx)
			if strings.HasPrefix(tc.name, "help") {
				// Help shows the environment's values as defaults.
				c.env = nil
			}
			r := c.run(tc.args...)
			require.Equal(t, tc.code, r.code, "stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			golden(t, tc.name, transcript(tc.args, r))
		})
	}
}

// TestSlimIndex: on a table whose status index is slim (Config.SlimIndex),
// which the command does not need to be told, every command that lists or
// filters prints what it prints on a full index, since it uses only what a
// slim index holds, and show reads the whole task from the table.
func TestSlimIndex(t *testing.T) {
	t.Parallel()
	full, slim := fixture.New(t), fixture.NewSlim(t)
	full.Seed(t)
	slim.Seed(t)
	for _, args := range [][]string{
		{"stats"},
		{"ls"},
		{"ls", "--stuck"},
		{"ls", "--status", "failed,s10_ignore", "--error-contains", "connection reset"},
		{"ls", "--since", "25m", "--order", "oldest"},
		{"show", "t-fail-2"},
		{"show", "--json", "t-ok"},
		{"errors"},
		{"requeue", "--error-contains", "connection reset", "--since", "1h"},
		{"delete", "--status", "failed,ignored"},
	} {
		want, got := newCLI(t, full).run(args...), newCLI(t, slim).run(args...)
		require.Equal(t, exitOK, got.code, "ddbtrack %s on a slim index:\n%s", strings.Join(args, " "), got.stderr)
		require.Equal(t, want, got, "ddbtrack %s", strings.Join(args, " "))
	}
}

func TestUsageNeedsTableAndJob(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	c := newCLI(t, fx)
	delete(c.env, envTable)
	r := c.run("stats")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "pass --table NAME or set DDBTRACK_TABLE")

	c.env[envTable] = fx.Table
	delete(c.env, envJob)
	r = c.run("stats")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "pass --job NAME or set DDBTRACK_JOB")

	// Flags override the environment.
	r = c.run("stats", "--job", fixture.Job, "--table", fx.Table)
	require.Equal(t, exitOK, r.code, r.stderr)
}

func TestMissingTableSaysHowToCreateIt(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	c := newCLI(t, fx)
	c.env[envTable] = "ddbtrack-no-such-table"
	r := c.run("ls")
	require.Equal(t, exitNotFound, r.code, r.stderr)
	require.True(t, strings.HasPrefix(r.stderr, "ddbtrack ls: table \"ddbtrack-no-such-table\" does not exist at this endpoint and region: "+
		"check --table, --region and --endpoint-url, or create it with `ddbtrack create-table`\n  DynamoDB said: "), r.stderr)
}

func TestCreateTable(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	c := newCLI(t, fx)
	c.env[envTable] = ddbtracktest.Table(t)
	for range 2 { // The second run finds the table and leaves it.
		r := c.run("create-table")
		require.Equal(t, exitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, "is ready")
	}
	r := c.run("stats", "--json")
	require.Equal(t, exitOK, r.code, r.stderr)
}

func TestRequeueMovesMatchingTasks(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)

	args := []string{"requeue", "--error-contains", "connection reset", "--yes"}
	r := c.run(args...)
	require.Equal(t, exitOK, r.code, r.stderr)
	golden(t, "requeue-yes", transcript(args, r))
	require.Equal(t, "s00_todo", fx.Status(t, "t-fail-1"))
	require.Equal(t, "s00_todo", fx.Status(t, "t-fail-2"))
	require.Equal(t, "s06_failed", fx.Status(t, fixture.XSS), "a task whose error does not match stays")
	require.Equal(t, "s10_ignore", fx.Status(t, "t-ignored"), "a task whose error does not match stays")

	// Nothing is left to move.
	r = c.run("requeue", "--error-contains", "connection reset", "--yes", "--json")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.JSONEq(t, `{"dry_run": false, "matched": 0, "moved": 0, "skipped": 0, "refused": []}`, r.stdout)
}

func TestRequeueNamedTasks(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)

	// t-ok is not failed or ignored, and t-nope does not exist: each is
	// named, with the reason, and the command fails. The others move.
	r := c.run("requeue", "--yes", "t-ignored", "t-ok", "t-nope", "--", fixture.XSS)
	require.Equal(t, exitNotFound, r.code, r.stderr)
	require.Equal(t, "Requeued 2 tasks to s00_todo.\n", r.stdout)
	require.Equal(t, `ddbtrack requeue: task "t-nope" not found in job "nightly-import": check the ID, and --job and --table; `+"`ddbtrack ls --id-contains TEXT` finds IDs"+`
ddbtrack requeue: task "t-ok" is s09_success, not s06_failed or s10_ignore: requeue moves only those; `+"`ddbtrack reset` runs a task again from any status"+`
`, r.stderr)
	require.Equal(t, "s00_todo", fx.Status(t, "t-ignored"))
	require.Equal(t, "s00_todo", fx.Status(t, fixture.XSS))
	require.Equal(t, "s09_success", fx.Status(t, "t-ok"))
	require.Equal(t, "s06_failed", fx.Status(t, "t-fail-1"))

	// A dry run names them too, and so does --json.
	r = c.run("requeue", "--json", "t-fail-1", "t-ok")
	require.Equal(t, exitFailure, r.code, r.stderr)
	require.JSONEq(t, `{"dry_run": true, "matched": 1, "moved": 0, "skipped": 0, "refused": [
		{"id": "t-ok", "reason": "task \"t-ok\" is s09_success, not s06_failed or s10_ignore: requeue moves only those; `+"`ddbtrack reset` runs a task again from any status"+`"}]}`, r.stdout)
	require.Contains(t, r.stderr, `task "t-ok" is s09_success`)
}

func TestRequeueStuck(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)

	r := c.run("requeue", "--stuck", "--yes")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "Requeued 1 task to s00_todo.\n", r.stdout)
	require.Equal(t, "s00_todo", fx.Status(t, "t-stuck"))
	require.Equal(t, "s03_in_progress", fx.Status(t, "t-running"), "a live lease is left alone")
}

func TestRequeueDrawsProgressOnATerminal(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	var stdout, stderr strings.Builder
	c := newCLI(t, fx)
	a := &app{stdout: &stdout, stderr: &stderr, getenv: c.getenv, now: fx.Clock.Now, progress: true, dial: c.dial}
	code := a.run(t.Context(), []string{"requeue", "--yes"})
	require.Equal(t, exitOK, code, stderr.String())
	require.Contains(t, stderr.String(), "[##############################] 4/4 moved 4, skipped 0\n")
	require.Equal(t, "Requeued 4 tasks to s00_todo.\n", stdout.String())
}

func TestReset(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)

	r := c.run("reset", "t-ok", "t-ignored")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "Reset t-ok: it is s00_todo now.\nReset t-ignored: it is s00_todo now.\n", r.stdout)
	require.Equal(t, "s00_todo", fx.Status(t, "t-ok"))
	require.Equal(t, "s00_todo", fx.Status(t, "t-ignored"))

	// One missing task fails the command, but the others are still reset.
	r = c.run("reset", "t-nope", "t-fail-1")
	require.Equal(t, exitNotFound, r.code)
	require.Equal(t, "ddbtrack reset: task \"t-nope\" not found in job \"nightly-import\": check the ID, and --job and --table; `ddbtrack ls --id-contains TEXT` finds IDs\n", r.stderr)
	require.Equal(t, "s00_todo", fx.Status(t, "t-fail-1"))

	r = c.run("reset")
	require.Equal(t, exitUsage, r.code)
}

func TestDelete(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)

	// Without --yes, a dry run.
	r := c.run("delete", "t-ok", "t-stuck")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "Would delete t-ok (s09_success).\nWould delete t-stuck (s03_in_progress).\nDry run: nothing changed. Run again with --yes to delete them.\n", r.stdout)
	require.Equal(t, "s09_success", fx.Status(t, "t-ok"))

	r = c.run("delete", "--yes", "t-ok")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "Deleted t-ok.\n", r.stdout)
	_, err := fx.Tracker.Get(t.Context(), "t-ok")
	require.Error(t, err)

	r = c.run("delete", "--yes", "t-ok")
	require.Equal(t, exitNotFound, r.code)

	// A task that a worker holds under a live lease is refused, dry run or
	// not, unless --force.
	for _, args := range [][]string{{"delete", "t-running"}, {"delete", "--yes", "t-running"}} {
		r = c.run(args...)
		require.Equal(t, exitLocked, r.code, "%v: %s", args, r.stderr)
		require.Contains(t, r.stderr, `task "t-running" is s03_in_progress and worker worker-7 holds its lease until 2025-01-02 03:41:00Z`)
		require.Equal(t, "s03_in_progress", fx.Status(t, "t-running"))
	}
	r = c.run("delete", "--force", "t-running")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "Would delete t-running (s03_in_progress, held by worker worker-7 until 2025-01-02 03:41:00Z).\nDry run: nothing changed. Run again with --yes to delete it.\n", r.stdout)
	r = c.run("delete", "--yes", "--force", "t-running")
	require.Equal(t, exitOK, r.code, r.stderr)
	_, err = fx.Tracker.Get(t.Context(), "t-running")
	require.Error(t, err)
	require.Equal(t, exitUsage, c.run("delete", "--force", "--status", "failed").code)

	r = c.run("delete", "--status", "failed", "--yes")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "Deleted 3 tasks.\n", r.stdout)
	counts, err := fx.Tracker.Count(t.Context(), fixture.Failed)
	require.NoError(t, err)
	n := counts.ByStatus[fixture.Failed]
	require.Zero(t, n)

	require.Equal(t, exitUsage, c.run("delete").code)
	require.Equal(t, exitUsage, c.run("delete", "t-x", "--status", "failed").code)
}

// TestPaging follows the cursors of ls to the end and checks that every
// task comes exactly once, even when the clock moves between pages: the
// cursor pins the time the first page was read, so "--since" and "--stuck"
// mean the same on every page.
func TestPaging(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)

	all := c.lsIDs(t, "ls", "--limit", "0")
	require.Len(t, all, 8)

	for _, limit := range []string{"1", "3", "8"} {
		var got []string
		cursor := ""
		for page := 0; ; page++ {
			require.Less(t, page, 10, "paging does not end")
			args := []string{"ls", "--limit", limit, "--since", "40m"}
			if cursor != "" {
				args = append(args, "--cursor", cursor)
			}
			var out struct {
				Tasks []struct {
					ID string `json:"id"`
				} `json:"tasks"`
				NextCursor string `json:"next_cursor"`
			}
			r := c.run(append(args, "--json")...)
			require.Equal(t, exitOK, r.code, r.stderr)
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
			for _, task := range out.Tasks {
				got = append(got, task.ID)
			}
			fx.Clock.Advance(7 * time.Minute) // --since 40m would now cut tasks, were it not pinned.
			if cursor = out.NextCursor; cursor == "" {
				break
			}
		}
		fx.Clock.Set(fixture.Now)
		require.Equal(t, all, got, "limit %s", limit)
	}
}

func (c *cli) lsIDs(t *testing.T, args ...string) []string {
	t.Helper()
	r := c.run(append(args, "--json")...)
	require.Equal(t, exitOK, r.code, r.stderr)
	var out struct {
		Tasks []struct {
			ID string `json:"id"`
		} `json:"tasks"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	ids := make([]string, len(out.Tasks))
	for i, task := range out.Tasks {
		ids[i] = task.ID
	}
	return ids
}

func TestShowPrintsStacks(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Panic(t, "t-panic", nil)
	r := newCLI(t, fx).run("show", "t-panic")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "panic: assignment to entry in nil map")
	require.Contains(t, r.stdout, "    Stack:\n      goroutine ")
	require.Contains(t, r.stdout, "fixture.go")
}

func TestStatsWatchStopsOnInterrupt(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)
	var stdout, stderr syncBuffer
	a := &app{stdout: &stdout, stderr: &stderr, getenv: c.getenv, now: fx.Clock.Now, terminal: true, dial: c.dial}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"stats", "--watch", "--interval", "1s"}) }()
	// Interrupt it once it has shown the counts, however long the first
	// refresh takes on a loaded machine.
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "1 task stuck") }, time.Minute, 20*time.Millisecond,
		"no counts shown; stderr:\n%s", stderr.String())
	cancel()
	require.Equal(t, exitOK, <-done, stderr.String())
	require.Contains(t, stdout.String(), "\x1b[H\x1b[2J", "a terminal is cleared before each refresh")
	require.Contains(t, stdout.String(), "Job nightly-import in table")
	require.Contains(t, stdout.String(), "1 task stuck")
}

// TestCustomStatuses uses another enum, and an extra pipeline status,
// through DDBTRACK_STATUSES.
func TestCustomStatuses(t *testing.T) {
	// Not parallel: the names are process-wide (see Code), and these
	// give values of the default enum other names.
	defaults, err := parseStatuses(defaultStatuses)
	require.NoError(t, err)
	t.Cleanup(defaults.register)

	fx := fixture.New(t)
	c := newCLI(t, fx)
	c.env[envStatuses] = "pending:todo=1,running:doing=2,failed:broken=3,succeeded:done=4,ignored:skipped=5,exported=20"
	c.env[envJob] = "custom-job"
	r := c.run("stats")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, `STATUS    VALUE  ROLE       COUNT
todo      1      pending    0
doing     2      running    0
broken    3      failed     0
done      4      succeeded  0
skipped   5      ignored    0
exported  20                0
total                       0
`, r.stdout)

	r = c.run("ls", "--status", "exported,broken,4")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "No tasks match (exported or broken or done).\n", r.stdout)

	c.env[envStatuses] = "pending=0,running=3"
	r = c.run("stats")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "no status has the failed role")
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	r := newCLI(t, fx).run("completion", "bash")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "complete -o default -F _ddbtrack ddbtrack")
	require.Contains(t, r.stdout, "--error-contains")
	if bash, err := exec.LookPath("bash"); err == nil {
		out, err := exec.Command(bash, "-n", "-c", r.stdout).CombinedOutput()
		require.NoError(t, err, "the script is not valid bash: %s", out)
	}
}

// TestEveryCommandHasHelp checks that --help works for every command and
// documents every flag.
func TestEveryCommandHasHelp(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	c := newCLI(t, fx)
	for _, cmd := range commands {
		r := c.run(cmd.name, "--help")
		require.Equal(t, exitOK, r.code, "%s --help: %s", cmd.name, r.stderr)
		require.True(t, strings.HasPrefix(r.stdout, "Usage: ddbtrack "+cmd.name), r.stdout)
		require.Equal(t, r, c.run("help", cmd.name), "help %s and %s --help differ", cmd.name, cmd.name)
	}
}

// TestLoadClient reaches the test server the way a user would: through
// --endpoint-url and the SDK's own configuration.
func TestLoadClient(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	endpoint := fixture.Endpoint(t)
	if endpoint == "" {
		t.Skip("the tests run against real AWS, where --endpoint-url does not apply")
	}
	c := newCLI(t, fx)
	var stdout, stderr strings.Builder
	a := &app{stdout: &stdout, stderr: &stderr, getenv: c.getenv, now: fx.Clock.Now}
	code := a.run(t.Context(), []string{"ls", "--status", "ignored", "--endpoint-url", endpoint})
	require.Equal(t, exitOK, code, stderr.String())
	require.Contains(t, stdout.String(), "t-ignored")
}

func TestClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, line, text string }{
		{"plain", "plain", "plain"},
		{"two\nlines", `two\nlines`, "two\nlines"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`, `\x1b[31mred\x1b[0m`},
		{"bell\a", `bell\a`, `bell\a`},
		{"tab\there", "tab here", "tab\there"},
		{"bidi\u202eevil", `bidi\u202eevil`, `bidi\u202eevil`},
		{"bad \xff byte", `bad \xff byte`, `bad \xff byte`},
		{"ünïcødé ✓", "ünïcødé ✓", "ünïcødé ✓"},
	} {
		require.Equal(t, tc.line, clean(tc.in, false), "clean(%q, false)", tc.in)
		require.Equal(t, tc.text, clean(tc.in, true), "clean(%q, true)", tc.in)
	}
	require.Equal(t, "first …", cell("first\nsecond", 20))
	require.Equal(t, "abcd…", cell("abcdefgh", 5))
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		pos  []string
		json bool
	}{
		{[]string{"t-1"}, []string{"t-1"}, false},
		{[]string{"t-1", "--json"}, []string{"t-1"}, true},
		{[]string{"--json", "t-1", "t-2"}, []string{"t-1", "t-2"}, true},
		{[]string{"t-1", "--", "--json", "-x"}, []string{"t-1", "--json", "-x"}, false},
	} {
		fs := newFlagSet()
		asJSON := fs.Bool("json", false, "")
		pos, err := parseInterspersed(fs, tc.args)
		require.NoError(t, err, "%q", tc.args)
		require.Equal(t, tc.pos, pos, "%q", tc.args)
		require.Equal(t, tc.json, *asJSON, "%q", tc.args)
	}
}

// syncBuffer is a strings.Builder safe for the command's goroutine and
// the test's to share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServe starts the dashboard as `ddbtrack serve` does, fetches the
// overview, and stops it the way Ctrl-C does.
func TestServe(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)
	var stdout, stderr syncBuffer
	a := &app{stdout: &stdout, stderr: &stderr, getenv: c.getenv, now: fx.Clock.Now, dial: c.dial}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--read-only"}) }()

	urlRE := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`)
	var base string
	require.Eventually(t, func() bool {
		base = urlRE.FindString(stdout.String())
		return base != ""
	}, 10*time.Second, 10*time.Millisecond, "serve printed no URL; stderr: %s", stderr.String())
	require.Contains(t, stdout.String(), "Dashboard for job nightly-import in table "+fx.Table+" (read-only): ")

	resp, err := http.Get(base + "tasks?status=stuck")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "t-stuck")
	require.Contains(t, string(body), "read-only")

	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop when its context ended")
	}
	require.Empty(t, stderr.String(), "binding 127.0.0.1 gives no warning")
}

func TestServeRefusesBadFlags(t *testing.T) {
	t.Parallel()
	c := newCLI(t, fixture.New(t))
	r := c.run("serve", "--refresh", "1s")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "--refresh 1s is too short")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	r = c.run("serve", "--addr", ln.Addr().String())
	require.Equal(t, exitFailure, r.code)
	require.Contains(t, r.stderr, "pick another port with --addr")
}

// unquote reads a word as bash does, for tests of what the command prints
// for pasting.
func unquote(t *testing.T, word string) string {
	t.Helper()
	cmd := exec.Command("bash", "-c", "printf '%s' "+word)
	cmd.Env = append(cmd.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.Output()
	require.NoError(t, err, "bash could not read %s", word)
	return string(out)
}

func TestPasteID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{
		"t-17", "photos/00017.jpg", "a b", `it's "quoted"`, "back\\slash", "tab\there", "two\nlines",
		"esc\x1b[31m", "rtl-\u202Egnp.exe", "bad \xff byte", "ünïcødé ✓", "$(reboot)", "-dash", fixture.XSS,
	} {
		p := pasteID(id)
		require.Equal(t, id, unquote(t, p), "pasteID(%q) = %s", id, p)
		require.True(t, ops.IsVisible(p, false), "pasteID(%q) = %q is not safe to print", id, p)
	}
	require.Equal(t, "t-17", pasteID("t-17"), "plain IDs are left alone")
}

// TestLsIDsCanBePasted lists tasks whose IDs are long or hold a newline,
// quotes, markup or a bidirectional control, and pastes each ID that ls
// shows into show, through bash, as an operator would.
func TestLsIDsCanBePasted(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	fx.SeedHostile(t)
	c := newCLI(t, fx)
	r := c.run("ls", "--status", "failed")
	require.Equal(t, exitOK, r.code, r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	width := strings.Index(lines[0], "STATUS")
	var got []string
	for _, line := range lines[1:] {
		id := unquote(t, strings.TrimSpace(line[:width]))
		show := c.run("show", "--", id)
		require.Equal(t, exitOK, show.code, "%s: %s", line[:width], show.stderr)
		got = append(got, id)
	}
	require.ElementsMatch(t, []string{"t-fail-1", "t-fail-2", fixture.XSS, fixture.RTL, fixture.Newline, fixture.LongID}, got)
}

// flakyClient fails the next n count queries, as a network blip or
// throttling would, and passes the rest to the real client.
type flakyClient struct {
	ddbtrack.Client
	n atomic.Int32
}

func (c *flakyClient) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if in.Select == types.SelectCount && c.n.Add(-1) >= 0 {
		return nil, errors.New("dial tcp 127.0.0.1:8000: connect: connection refused")
	}
	return c.Client.Query(ctx, in, opts...)
}

// TestStatsWatchSurvivesAFailedRefresh fails the first refresh of a watch
// and checks that the watch says so, waits, and carries on.
func TestStatsWatchSurvivesAFailedRefresh(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	client := &flakyClient{Client: fx.Client}
	client.n.Store(1)
	c := newCLI(t, fx)
	var stdout, stderr syncBuffer
	a := &app{stdout: &stdout, stderr: &stderr, getenv: c.getenv, now: fx.Clock.Now,
		dial: func(context.Context, *common) (ddbtrack.Client, error) { return client, nil }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"stats", "--watch", "--interval", "1s"}) }()
	require.Eventually(t, func() bool { return strings.Contains(stdout.String(), "1 task stuck") }, 10*time.Second, 20*time.Millisecond,
		"the watch did not carry on after a failed refresh; stderr:\n%s", stderr.String())
	cancel()
	require.Equal(t, exitOK, <-done, stderr.String())
	require.Regexp(t, `^ddbtrack stats: .*connection refused\n`, stderr.String())
	require.Contains(t, stderr.String(), "Refresh 1 failed at 2025-01-02 03:35:00Z; retrying in 1s (Ctrl-C to stop).")
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		interval time.Duration
		n        int
		want     time.Duration
	}{
		{5 * time.Second, 1, 5 * time.Second},
		{5 * time.Second, 2, 10 * time.Second},
		{5 * time.Second, 4, 40 * time.Second},
		{5 * time.Second, 9, time.Minute},
		{2 * time.Minute, 3, 2 * time.Minute},
	} {
		require.Equal(t, tc.want, backoff(tc.interval, tc.n), "%v, %d", tc.interval, tc.n)
	}
}

// TestServeOnAllInterfacesPrintsAnAddressToOpen starts the dashboard on
// ":0", every interface, and opens the address it prints.
func TestServeOnAllInterfacesPrintsAnAddressToOpen(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)
	var stdout, stderr syncBuffer
	a := &app{stdout: &stdout, stderr: &stderr, getenv: c.getenv, now: fx.Clock.Now, dial: c.dial}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- a.run(ctx, []string{"serve", "--addr", ":0", "--read-only"}) }()
	urlRE := regexp.MustCompile(`: (http://\S+)\n`)
	var m []string
	require.Eventually(t, func() bool {
		m = urlRE.FindStringSubmatch(stdout.String())
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "serve printed no URL; stderr: %s", stderr.String())
	require.Regexp(t, `^http://localhost:\d+/$`, m[1])
	resp, err := http.Get(m[1] + "tasks?status=stuck")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, stderr.String(), "reachable from other machines")
	cancel()
	require.Equal(t, exitOK, <-done, stderr.String())
}

// TestErrorsAndRequeueGroup groups 2,000 failures with five causes, shows
// them as five lines, and requeues one group whole.
func TestErrorsAndRequeueGroup(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.FailMany(t, 2000, func(i int) (string, string) {
		msgs := []string{
			"timeout after %ds calling 10.0.3.%d:443",
			"dial tcp 10.1.%[2]d.%[1]d:5432: connect: connection refused (try %[2]d)",
			"row %d: column \"amount%d\" is text, want numeric",
			"open s3://bucket/part-%05d-%d.csv: no such key",
			"worker %d ran out of memory after %d MiB",
		}
		return fmt.Sprintf("task-%04d", i), fmt.Sprintf(msgs[i%5], i%250, i%7)
	})
	c := newCLI(t, fx)
	r := c.run("errors")
	require.Equal(t, exitOK, r.code, r.stderr)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 1+5+2, "a header, five groups, a blank line and the summary; the first lines:\n%s", strings.Join(lines[:min(len(lines), 12)], "\n"))
	require.Equal(t, "5 groups in 2000 tasks read (s06_failed or s10_ignore).", lines[7])
	var group string
	for _, line := range lines[1:6] {
		f := strings.Fields(line)
		require.Equal(t, "400", f[1], line)
		if strings.Contains(line, "connection refused") {
			group = f[0]
		}
	}
	require.NotEmpty(t, group)

	r = c.run("requeue", "--group", group)
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "400 tasks match (s06_failed or s10_ignore, error group "+group+").\nDry run: nothing changed.")
	r = c.run("requeue", "--group", group, "--yes")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Equal(t, "Requeued 400 tasks to s00_todo.\n", r.stdout)
	counts, err := fx.Tracker.Count(t.Context(), fixture.Failed)
	require.NoError(t, err)
	n := counts.ByStatus[fixture.Failed]
	require.Equal(t, int64(1600), n)
}

// TestServeFailsOnAMissingTable starts the dashboard on a table that does
// not exist: it must not start, and must say how to fix it.
func TestServeFailsOnAMissingTable(t *testing.T) {
	t.Parallel()
	c := newCLI(t, fixture.New(t))
	c.env[envTable] = "ddbtrack-no-such-table"
	r := c.run("serve", "--addr", "127.0.0.1:0")
	require.Equal(t, exitNotFound, r.code, r.stderr)
	require.Empty(t, r.stdout, "it printed an address to open")
	require.Contains(t, r.stderr, `ddbtrack serve: table "ddbtrack-no-such-table" does not exist at this endpoint and region: check --table, --region and --endpoint-url, or create it with `+"`ddbtrack create-table`")
}

// TestStatsWarnsOfTheWrongStatusesOrJob runs stats with the statuses of
// another enum, whose values the job uses under other names, and on a job
// with no tasks.
func TestStatsWarnsOfTheWrongStatusesOrJob(t *testing.T) {
	// Not parallel: --statuses names values process-wide (see Code).
	defaults, err := parseStatuses(defaultStatuses)
	require.NoError(t, err)
	t.Cleanup(defaults.register)
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)
	c.env[envStatuses] = "pending:queued=0,running:resizing=3,failed:retrying=6,succeeded:done=9,ignored:gave-up=10"
	r := c.run("stats")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stderr, `Warning: tasks with status 3 are stored as "s03_in_progress" (task "t-running"), but the configured statuses call 3 "resizing" (the running role): --statuses does not describe this job's enum`)
	require.Equal(t, 5, strings.Count(r.stderr, "Warning: "), r.stderr)

	delete(c.env, envStatuses)
	c.env[envJob] = "tset-job"
	r = c.run("stats")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "total                              0")
	require.Equal(t, "\nWarning: No tasks in job \"tset-job\" of table \"TABLE\"; the table holds the jobs \"nightly-import\".\n", r.stderr)
}

// TestStatsSaysHowOldTheCountsAre: counts that another viewer took a few
// seconds ago are shown with their age; fresh ones, and those refreshed
// because they were older than the command accepts, without.
func TestStatsSaysHowOldTheCountsAre(t *testing.T) {
	t.Parallel()
	fx := fixture.New(t)
	fx.Seed(t)
	c := newCLI(t, fx)
	r := c.run("stats")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.NotContains(t, r.stdout, "Counted")

	fx.Clock.Advance(7 * time.Second)
	r = c.run("stats")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.Contains(t, r.stdout, "\nCounted 7s ago (counts are shared by every viewer, and at most 10s old).\n")

	fx.Clock.Advance(4 * time.Second) // 11 s: older than the 10 s the command accepts.
	r = c.run("stats")
	require.Equal(t, exitOK, r.code, r.stderr)
	require.NotContains(t, r.stdout, "Counted")
}
