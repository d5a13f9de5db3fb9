package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

var cmdCreateTable = &command{
	name:  "create-table",
	args:  "[flags]",
	short: "Create the table and its status index, and wait until it is active.",
	long: `
A table that already exists with the right schema is left as it is, so
running it twice is safe. One table holds many jobs.`,
	define: func(fs *flag.FlagSet) runFunc {
		return func(ctx context.Context, s *session, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if err := s.tracker.CreateTable(ctx); err != nil {
				return err
			}
			index := aws.ToString(s.tracker.CreateTableInput().GlobalSecondaryIndexes[0].IndexName)
			fmt.Fprintf(s.stdout, "Table %s is ready, with its index %s.\n", s.common.table, index)
			return nil
		}
	},
}

var cmdStats = &command{
	name:  "stats",
	args:  "[flags]",
	short: "Count the job's tasks in each status, and the stuck ones.",
	long: `
A stuck task is Running under a lease that has expired: its worker died or
hung. Another worker takes it over when it next tries to start it; until
then 'ddbtrack ls --stuck' lists it and 'ddbtrack requeue --stuck' requeues
it.

Counting reads the whole status index for the job (DynamoDB bills a count
like a read), so --watch with a short --interval on a large job costs money.

A refresh that fails does not end --watch: it prints the error and tries
again after --interval, doubling the wait while it keeps failing, up to a
minute.`,
	define: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print JSON (one object per refresh with --watch)")
		watch := fs.Bool("watch", false, "refresh until interrupted")
		interval := fs.Duration("interval", 5*time.Second, "refresh `interval` for --watch")
		return func(ctx context.Context, s *session, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if *interval < time.Second {
				return usagef("--interval %v is too short: use at least 1s", *interval)
			}
			if err := s.checkJob(ctx); err != nil {
				return err
			}
			failures := 0
			for {
				c, err := s.job.Count(ctx, s.now())
				switch {
				case err != nil && *watch && ctx.Err() != nil:
					return nil // Interrupting --watch is how it ends.
				case err != nil && !*watch:
					return err
				case err != nil:
					// A watch is left running to keep an eye on things, so
					// one failed refresh (a network blip, throttling) must
					// not end it: say so, and try again, less often while
					// it keeps failing.
					failures++
					wait := backoff(*interval, failures)
					fmt.Fprintf(s.stderr, "ddbtrack stats: %s\n  Refresh %d failed at %s; retrying in %s (Ctrl-C to stop).\n",
						ops.Visible(s.message(err), true), failures, formatTime(s.now()), wait)
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(wait):
					}
					continue
				}
				failures = 0
				if *watch && s.terminal && !*asJSON {
					fmt.Fprint(s.stdout, "\x1b[H\x1b[2J") // Home and clear, as watch(1) does.
				}
				if *asJSON {
					err = s.printStatsJSON(c, *watch)
				} else {
					err = s.printStats(c, *watch)
				}
				if err != nil {
					return err
				}
				if c.Total == 0 {
					fmt.Fprintf(s.stderr, "\nWarning: %s.\n", capitalize(s.job.NoTasks(ctx)))
				}
				if !*watch {
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(*interval):
				}
			}
		}
	},
}

// checkJob reads one task of each status before a command reports on the
// job. It fails when the table or its index does not exist, and warns
// when the names stored with the tasks are not the ones --statuses gives,
// since counts and lists would then file tasks under the wrong names, as
// they did for a job whose enum used the default's values otherwise.
func (s *session) checkJob(ctx context.Context) error {
	h, err := s.job.Check(ctx)
	if err != nil {
		return err
	}
	for _, m := range h.Mismatches {
		fmt.Fprintf(s.stderr, "Warning: %s: --statuses does not describe this job's enum, so tasks are counted and listed under the wrong names; give the job's own names and values (see `ddbtrack help statuses`).\n", m)
	}
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// maxBackoff bounds how long stats --watch waits between failed refreshes.
const maxBackoff = time.Minute

// backoff is the wait after the nth failed refresh in a row: the interval,
// doubled with each further failure, up to a minute (or the interval, if
// that is longer).
func backoff(interval time.Duration, n int) time.Duration {
	d := interval
	for range n - 1 {
		if d >= maxBackoff {
			break
		}
		d *= 2
	}
	return min(d, max(maxBackoff, interval))
}

func (s *session) printStats(c ops.Counts[Code], watch bool) error {
	if watch {
		fmt.Fprintf(s.stdout, "Job %s in table %s at %s (Ctrl-C to stop)\n\n", s.common.job, s.common.table, formatTime(s.now()))
	}
	rows := make([][]string, 0, len(c.Statuses)+1)
	for _, sc := range c.Statuses {
		rows = append(rows, []string{sc.Name, strconv.Itoa(int(sc.Status)), string(sc.Role), strconv.FormatInt(sc.Count, 10)})
	}
	rows = append(rows, []string{"total", "", "", strconv.FormatInt(c.Total, 10)})
	if err := printTable(s.stdout, []string{"STATUS", "VALUE", "ROLE", "COUNT"}, rows); err != nil {
		return err
	}
	if age := s.now().Sub(c.At).Round(time.Second); age >= time.Second {
		fmt.Fprintf(s.stdout, "\nCounted %s ago (counts are shared by every viewer, and at most %s old).\n", age, countMaxAge)
	}
	if c.Stuck > 0 {
		fmt.Fprintf(s.stdout, "\n%s stuck: %s with an expired lease. List them with `ddbtrack ls --stuck`.\n",
			plural(int64(c.Stuck), "task"), s.st.Name(s.st.Of(ops.Running)))
	}
	return nil
}

func (s *session) printStatsJSON(c ops.Counts[Code], compact bool) error {
	out := struct {
		Job   string `json:"job"`
		Table string `json:"table"`
		ops.Counts[Code]
	}{s.common.job, s.common.table, c}
	if compact {
		return json.NewEncoder(s.stdout).Encode(out)
	}
	return printJSON(s.stdout, out)
}

// filterFlags are the flags that select tasks, shared by ls, requeue and
// delete.
type filterFlags struct {
	status, since, until, errorContains, idContains string
	stuck, scheduled                                bool
	fs                                              *flag.FlagSet
}

func registerFilter(fs *flag.FlagSet, defaultStatus, statusHelp string) *filterFlags {
	f := &filterFlags{fs: fs}
	fs.StringVar(&f.status, "status", defaultStatus, statusHelp)
	fs.BoolVar(&f.stuck, "stuck", false, "only Running tasks whose lease has expired (their worker died)")
	fs.BoolVar(&f.scheduled, "scheduled", false, "only tasks not due yet: scheduled for later, or failed and waiting out their retry delay")
	fs.StringVar(&f.since, "since", "", "only tasks due at or after `time` (for a finished task, when it finished; for a waiting one, when it may start): an age (90m, 6h, 2d) or a UTC time (2025-01-02, 2025-01-02T15:04:05Z)")
	fs.StringVar(&f.until, "until", "", "only tasks due before `time`, in the same forms as --since")
	fs.StringVar(&f.errorContains, "error-contains", "", "only tasks whose last error contains `text` (case-sensitive)")
	fs.StringVar(&f.idContains, "id-contains", "", "only tasks whose ID contains `text`")
	return f
}

// build turns the flags into a filter, reading ages such as "6h" as of now.
func (f *filterFlags) build(s *session, ids []string, now time.Time) (ops.Filter[Code], error) {
	var (
		out ops.Filter[Code]
		err error
	)
	if out.Since, err = ops.ParseTime(f.since, now); err != nil {
		return out, usagef("--since: %v", err)
	}
	if out.Until, err = ops.ParseTime(f.until, now); err != nil {
		return out, usagef("--until: %v", err)
	}
	switch {
	case f.stuck && f.scheduled:
		return out, usagef("--stuck selects running tasks and --scheduled waiting ones: give one of them")
	case f.stuck && flagSet(f.fs, "status"):
		return out, usagef("--stuck selects Running tasks: leave out --status")
	case f.stuck:
		out.Stuck = true
	case f.status == "" || f.status == "all":
		out.Statuses = s.st.All()
	default:
		if out.Statuses, err = s.st.LookupList(f.status); err != nil {
			return out, usagef("--status: %v", err)
		}
	}
	if f.scheduled {
		out.Scheduled = true
		if !flagSet(f.fs, "status") {
			// The command's default statuses, such as requeue's failed
			// and ignored, narrowed to those whose tasks wait: an
			// explicit --status that names others is refused instead.
			out.Statuses = slices.DeleteFunc(out.Statuses, func(c Code) bool { return !s.st.Waiting(c) })
		}
	}
	out.ErrorContains, out.IDContains, out.IDs = f.errorContains, f.idContains, ids
	if err := out.Check(s.st); err != nil {
		return out, usagef("%v", err)
	}
	return out, nil
}

var cmdLs = &command{
	name:  "ls",
	args:  "[flags]",
	short: "List tasks by status, time and error, a page at a time.",
	long: `
Tasks are read from the status index, which sorts each status by due
time: for a finished task, when it finished; for a waiting one, when it may
start. The newest come first. --since and --until bound the index read;
--error-contains and --id-contains filter what is read, so they narrow the
output but not what DynamoDB bills.

--scheduled lists the tasks that wait for a time, the soonest due first:
pending tasks scheduled or snoozed until later, and failed ones waiting out
their retry delay. It reads only those tasks. A DUE column says when each
listed task may start ("retry in 3m 20s", "scheduled for ... (in 2d 3h)",
"due now") whenever a listed task is not due yet or was cancelled.

When more tasks match, ls prints the command for the next page with
--cursor. --limit 0 lists every match without paging.

Task IDs are printed whole, and quoted as a shell reads them back when
they hold spaces, quotes or control characters ($'...' for the latter), so
an ID can be pasted into show, reset or requeue.

Examples:
  ddbtrack ls --status failed --since 6h
  ddbtrack ls --status failed,ignored --error-contains timeout --json
  ddbtrack ls --stuck
  ddbtrack ls --scheduled
  ddbtrack ls --scheduled --status failed`,
	define: func(fs *flag.FlagSet) runFunc {
		filter := registerFilter(fs, "all", "statuses to list: `list` of roles, names or numbers, or all")
		limit := fs.Int("limit", 50, "tasks per page; 0 lists all")
		cursor := fs.String("cursor", "", "continue after the page that printed this `cursor`")
		order := fs.String("order", "newest", "newest or oldest due time first; with --scheduled, oldest (the soonest due) unless given")
		asJSON := fs.Bool("json", false, `print {"tasks": [...], "next_cursor": "..."}`)
		return func(ctx context.Context, s *session, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			// A later page is read as of the time of the first, so that
			// ages and "stuck" select the same tasks on every page.
			now := s.now()
			pinned, libCursor, err := ops.DecodeCursor(*cursor)
			if err != nil {
				return usagef("--cursor: %v", err)
			}
			if !pinned.IsZero() {
				now = pinned
			}
			f, err := filter.build(s, nil, now)
			if err != nil {
				return err
			}
			var newest bool
			if f.Scheduled && !flagSet(fs, "order") {
				*order = "oldest"
			}
			switch *order {
			case "newest":
				newest = true
			case "oldest":
			default:
				return usagef("--order %q: use newest or oldest", *order)
			}
			if *limit < 0 {
				return usagef("--limit %d: use a positive number, or 0 for all", *limit)
			}
			if *limit == 0 && *cursor != "" {
				return usagef("--cursor pages through results: give a --limit too")
			}
			var page ddbtrack.Page[Code]
			if *limit == 0 {
				for t, err := range s.job.All(ctx, f, now, newest) {
					if err != nil {
						return err
					}
					page.Tasks = append(page.Tasks, t)
				}
			} else if page, err = s.job.Page(ctx, f, now, newest, *limit, libCursor); err != nil {
				return err
			}
			next := ops.EncodeCursor(now, page.Cursor)
			if *asJSON {
				tasks := page.Tasks
				if tasks == nil {
					tasks = []*ddbtrack.Task[Code]{}
				}
				return printJSON(s.stdout, struct {
					Tasks      []*ddbtrack.Task[Code] `json:"tasks"`
					NextCursor string                 `json:"next_cursor,omitempty"`
				}{tasks, next})
			}
			if len(page.Tasks) == 0 {
				fmt.Fprintf(s.stdout, "No tasks match (%s).\n", f.Describe(s.st))
				return nil
			}
			if err := s.printTasks(page.Tasks, now); err != nil {
				return err
			}
			if next != "" {
				fmt.Fprintf(s.stderr, "\nMore tasks match: run the same command with --cursor %s for the next page.\n", next)
			}
			return nil
		}
	},
}

func (s *session) printTasks(tasks []*ddbtrack.Task[Code], now time.Time) error {
	// The lease and due columns are shown only when a task has something
	// to say in them, so that a list of failures stays narrow: "due now"
	// on every row would say nothing.
	withLease, withDue := false, false
	for _, t := range tasks {
		withLease = withLease || t.LeaseOwner != ""
		withDue = withDue || s.st.NotDue(t, now) || !t.CancelledAt.IsZero()
	}
	header := []string{"TASK", "STATUS", "ATTEMPTS", "UPDATED"}
	if withLease {
		header = append(header, "LEASE")
	}
	if withDue {
		header = append(header, "DUE")
	}
	header = append(header, "LAST ERROR")
	rows := make([][]string, len(tasks))
	for i, t := range tasks {
		// The ID is printed whole, in a form a shell reads back, so that
		// it can be pasted into show, reset or requeue.
		r := []string{pasteID(t.ID), s.st.Name(t.Status), strconv.Itoa(t.Attempts), formatTime(t.UpdatedAt)}
		if withLease {
			r = append(r, formatLease(t, now))
		}
		if withDue {
			r = append(r, cmp.Or(s.st.When(t, now), "-"))
		}
		rows[i] = append(r, cell(t.LastError, 60))
	}
	return printTable(s.stdout, header, rows)
}

var cmdShow = &command{
	name:  "show",
	args:  "[flags] TASK",
	short: "Show one task in full: data, output, lease and error history with stacks.",
	define: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print the task as JSON")
		return func(ctx context.Context, s *session, args []string) error {
			if len(args) != 1 {
				return usagef("show takes one task ID, got %d: ddbtrack show TASK", len(args))
			}
			t, err := s.job.Get(ctx, args[0])
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(s.stdout, t)
			}
			return s.printTask(t)
		}
	},
}

// printTask prints everything the task holds: its fields, its data and
// output, and its error history.
func (s *session) printTask(t *ddbtrack.Task[Code]) error {
	data, output, err := ops.Payloads(t)
	if err != nil {
		return err
	}
	w := s.stdout
	for _, r := range s.taskRows(t, s.now()) {
		fmt.Fprintf(w, "%-11s %s\n", r[0], r[1])
	}
	section := func(title, body string) {
		fmt.Fprintf(w, "\n%s\n", title)
		if body == "" {
			fmt.Fprintln(w, "  (none)")
			return
		}
		for line := range strings.Lines(clean(body, true)) {
			fmt.Fprintf(w, "  %s", strings.TrimRight(line, "\n")+"\n")
		}
	}
	section("Data:", data)
	section("Output:", output)
	s.printErrors(t.Errors)
	return nil
}

// taskRows returns the task's fields as `show` prints them, label first.
func (s *session) taskRows(t *ddbtrack.Task[Code], now time.Time) [][]string {
	status := fmt.Sprintf("%s (%d)", s.st.Name(t.Status), int(t.Status))
	if r := s.st.RoleOf(t.Status); r != "" && string(r) != s.st.Name(t.Status) {
		status = fmt.Sprintf("%s (%d, %s)", s.st.Name(t.Status), int(t.Status), r)
	}
	if s.st.IsStuck(t, now) {
		status += ", STUCK: its lease expired"
	}
	lease := "-"
	if t.LeaseOwner != "" {
		lease = fmt.Sprintf("%s until %s (%s)", clean(t.LeaseOwner, false), formatTime(t.LeaseExpiresAt),
			strings.TrimPrefix(formatLease(t, now), clean(t.LeaseOwner, false)+", "))
	}
	rows := [][]string{
		{"Task:", clean(t.ID, false)},
		{"Job:", clean(t.Job, false)},
		{"Status:", status},
		{"Attempts:", strconv.Itoa(t.Attempts)},
		{"Fence:", strconv.FormatInt(t.Fence, 10)},
		{"Created:", formatTime(t.CreatedAt)},
		{"Updated:", formatTime(t.UpdatedAt)},
		{"Started:", formatTime(t.StartedAt)},
		{"Succeeded:", formatTime(t.SucceededAt)},
		{"Lease:", lease},
	}
	switch due := s.st.Due(t, now); {
	case due == "":
	case !s.st.NotDue(t, now):
		rows = append(rows, []string{"Due:", "now"})
	case t.Status == s.st.Of(ops.Failed):
		rows = append(rows, []string{"Due:", due + " (at " + formatTime(t.DueAt) + ")"})
	default:
		rows = append(rows, []string{"Due:", due})
	}
	if c := s.st.Cancel(t, now); c != "" {
		if t.Status == s.st.Of(ops.Running) {
			c += "; its worker stops it at its next lease renewal"
		}
		rows = append(rows, []string{"Cancel:", c})
	}
	if !t.ExpiresAt.IsZero() {
		rows = append(rows, []string{"Expires:", formatTime(t.ExpiresAt) + " (time to live may delete it from then)"})
	}
	if t.LastError != "" {
		rows = append(rows, []string{"Last error:", cell(t.LastError, 200)})
	}
	return rows
}

// printErrors prints a task's error history, oldest first.
func (s *session) printErrors(errs []ddbtrack.ErrorRecord) {
	w := s.stdout
	if len(errs) == 0 {
		fmt.Fprintf(w, "\nError history: none\n")
		return
	}
	fmt.Fprintf(w, "\nError history (%d, oldest first):\n", len(errs))
	for _, e := range errs {
		fmt.Fprintf(w, "\n  Attempt %d at %s\n", e.Attempt, formatTime(e.At))
		for line := range strings.Lines(clean(e.Message, true)) {
			fmt.Fprintf(w, "    %s\n", strings.TrimRight(line, "\n"))
		}
		if e.Stack != "" {
			fmt.Fprintln(w, "    Stack:")
			for line := range strings.Lines(clean(e.Stack, true)) {
				fmt.Fprintf(w, "      %s\n", strings.TrimRight(line, "\n"))
			}
		}
	}
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q: this command takes only flags", args[0])
	}
	return nil
}
