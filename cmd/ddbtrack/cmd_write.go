package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

var cmdRequeue = &command{
	name:  "requeue",
	args:  "[flags] [TASK...]",
	short: "Move failed or ignored tasks back to pending, so workers run them again.",
	long: `
Without --yes, requeue is a dry run: it counts the tasks that would move and
changes nothing. With --yes, each matching task moves with one conditional
write, so a task that changed status or was claimed by a worker since it
matched is skipped, never overwritten.

Name tasks to requeue only those (at most 1,000), still only if they are in
one of the --status statuses and match the other filters. Each named task
that is not moved is named, with the reason, and the command then exits
non-zero. --group requeues the tasks of one error group, as 'ddbtrack
errors' lists them. Named tasks and groups are read first and moved in
batches of 100.

Examples:
  ddbtrack requeue --error-contains "connection reset" --since 2h
  ddbtrack requeue --error-contains "connection reset" --since 2h --yes
  ddbtrack requeue --stuck --yes
  ddbtrack requeue --group 3f2a1b9c0d --yes
  ddbtrack requeue --yes t-17 t-42`,
	define: func(fs *flag.FlagSet) runFunc {
		filter := registerFilter(fs, "failed,ignored", "statuses to requeue from: `list` of roles, names or numbers")
		group := fs.String("group", "", "only tasks whose last error is in this error `group`, as 'ddbtrack errors' shows it")
		yes := fs.Bool("yes", false, "requeue; without it, only count what would move")
		asJSON := fs.Bool("json", false, `print {"dry_run", "matched", "moved", "skipped", "refused"}`)
		return func(ctx context.Context, s *session, args []string) error {
			now := s.now()
			f, err := filter.build(s, args, now)
			if err != nil {
				return err
			}
			f.Group = *group
			var bar *progressBar
			if *yes && s.progress && !*asJSON {
				// Count first, so the bar knows where it ends.
				total, err := s.job.Requeue(ctx, f, now, true, nil)
				if err != nil {
					return err
				}
				bar = &progressBar{w: s.stderr, total: total.Matched}
			}
			var progress func(ddbtrack.RequeueResult)
			if bar != nil {
				progress = bar.update
			}
			res, err := s.job.Requeue(ctx, f, now, !*yes, progress)
			if bar != nil {
				bar.done()
			}
			if err != nil {
				return fmt.Errorf("%w (moved %d of %d matched before the error; rerun to continue)", err, res.Moved, res.Matched)
			}
			// Named tasks that were not moved make the command fail, each
			// on its own line with the reason: the operator asked for them.
			var refused []error
			for _, r := range res.Refused {
				refused = append(refused, r.Err)
			}
			if *asJSON {
				if res.Refused == nil {
					res.Refused = []ops.Refusal{}
				}
				if err := printJSON(s.stdout, struct {
					DryRun  bool          `json:"dry_run"`
					Matched int           `json:"matched"`
					Moved   int           `json:"moved"`
					Skipped int           `json:"skipped"`
					Refused []ops.Refusal `json:"refused"`
				}{!*yes, res.Matched, res.Moved, res.Skipped, res.Refused}); err != nil {
					return err
				}
				return joinErrors(refused)
			}
			pending := s.st.Name(s.st.Of(ops.Pending))
			switch {
			case res.Matched == 0:
				fmt.Fprintf(s.stdout, "No tasks match (%s).\n", f.Describe(s.st))
			case !*yes:
				fmt.Fprintf(s.stdout, "%s (%s).\nDry run: nothing changed. Run again with --yes to move %s to %s.\n",
					matches(res.Matched), f.Describe(s.st), them(res.Matched), pending)
			default:
				fmt.Fprintf(s.stdout, "Requeued %s to %s.\n", plural(int64(res.Moved), "task"), pending)
				if res.Skipped > 0 {
					fmt.Fprintf(s.stdout, "Skipped %s that changed status or were claimed by a worker after matching.\n",
						plural(int64(res.Skipped), "task"))
				}
			}
			return joinErrors(refused)
		}
	},
}

// progressBar draws a requeue's progress on a terminal, at most ten times
// a second.
type progressBar struct {
	w     io.Writer
	total int

	mu    sync.Mutex
	last  time.Time
	drawn bool
	res   ddbtrack.RequeueResult
}

func (b *progressBar) update(r ddbtrack.RequeueResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.res = r
	if time.Since(b.last) >= 100*time.Millisecond {
		b.draw()
	}
}

func (b *progressBar) draw() {
	const width = 30
	done := b.res.Moved + b.res.Skipped
	total := max(b.total, b.res.Matched, done, 1)
	n := width * done / total
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d moved %d, skipped %d", strings.Repeat("#", n), strings.Repeat(".", width-n),
		done, total, b.res.Moved, b.res.Skipped)
	b.last, b.drawn = time.Now(), true
}

func (b *progressBar) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn || b.res != (ddbtrack.RequeueResult{}) {
		b.draw()
		fmt.Fprintln(b.w)
	}
}

var cmdReset = &command{
	name:  "reset",
	args:  "[flags] TASK...",
	short: "Move tasks back to pending with no failed attempts, whatever their status.",
	long: `
Reset runs a task again from the start: even a succeeded or ignored task
becomes pending with its attempt count at zero. Its data, last output and
error history are kept. A task that a worker holds under a live lease is
refused (exit code 4); wait for the worker, or for its lease to expire.

To requeue many failed tasks at once, use 'ddbtrack requeue'.`,
	define: func(fs *flag.FlagSet) runFunc {
		return func(ctx context.Context, s *session, args []string) error {
			if len(args) == 0 {
				return usagef("name the tasks to reset: ddbtrack reset TASK...")
			}
			var errs []error
			for _, id := range args {
				if err := s.job.Reset(ctx, id); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(s.stdout, "Reset %s: it is %s now.\n", clean(id, false), s.st.Name(s.st.Of(ops.Pending)))
			}
			return joinErrors(errs)
		}
	},
}

var cmdDelete = &command{
	name:  "delete",
	args:  "[flags] TASK... | --status LIST [--yes]",
	short: "Delete tasks by ID, or every task in some statuses.",
	long: `
Without --yes, delete is a dry run: it says what would be deleted and
changes nothing. A named task that a worker holds under a live lease is
refused (exit code 4) even with --yes, because deleting it throws away the
worker's work; --force deletes it anyway, and the worker then finds its
lease lost when it records its result. Deleting by --status always leaves
tasks that workers hold.

Examples:
  ddbtrack delete t-17 t-42
  ddbtrack delete --yes t-17 t-42
  ddbtrack delete --status ignored
  ddbtrack delete --status ignored --yes`,
	define: func(fs *flag.FlagSet) runFunc {
		status := fs.String("status", "", "delete every task in these statuses: `list` of roles, names or numbers")
		yes := fs.Bool("yes", false, "delete; without it, only say what would be deleted")
		force := fs.Bool("force", false, "with named tasks, delete even those a worker holds under a live lease")
		return func(ctx context.Context, s *session, args []string) error {
			switch {
			case len(args) > 0 && *status != "":
				return usagef("give task IDs or --status, not both")
			case *force && *status != "":
				return usagef("--force applies to named tasks only: deleting by --status always leaves the tasks workers hold")
			case len(args) > 0:
				return s.deleteNamed(ctx, args, *yes, *force)
			case *status == "":
				return usagef("name the tasks to delete, or give --status: ddbtrack delete TASK... or ddbtrack delete --status LIST")
			}
			statuses, err := s.st.LookupList(*status)
			if err != nil {
				return usagef("--status: %v", err)
			}
			if *yes {
				n, err := s.job.DeleteByStatus(ctx, statuses...)
				if err != nil {
					return fmt.Errorf("%w (deleted %d before the error; rerun to continue)", err, n)
				}
				fmt.Fprintf(s.stdout, "Deleted %s.\n", plural(int64(n), "task"))
				return nil
			}
			counts, err := s.job.CountStatuses(ctx, statuses...)
			if err != nil {
				return err
			}
			var (
				total int64
				parts []string
			)
			for _, c := range statuses {
				total += counts[c]
				parts = append(parts, fmt.Sprintf("%s: %d", s.st.Name(c), counts[c]))
			}
			fmt.Fprintf(s.stdout, "%s would be deleted (%s).\nDry run: nothing changed. Run again with --yes to delete them.\n",
				plural(total, "task"), strings.Join(parts, ", "))
			return nil
		}
	},
}

// deleteNamed deletes the named tasks, or with dryRun says what it would
// delete. Each task that cannot be deleted is reported on its own line,
// and the others are still deleted.
func (s *session) deleteNamed(ctx context.Context, ids []string, yes, force bool) error {
	now := s.now()
	var errs []error
	would := 0
	for _, id := range ids {
		if yes {
			if err := s.job.Delete(ctx, id, now, force); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(s.stdout, "Deleted %s.\n", pasteID(id))
			continue
		}
		t, err := s.job.Get(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		held := ""
		if t.LeaseOwner != "" && now.Before(t.LeaseExpiresAt) {
			if !force {
				errs = append(errs, ops.LockedError("delete", t))
				continue
			}
			held = fmt.Sprintf(", held by worker %s until %s", clean(t.LeaseOwner, false), formatTime(t.LeaseExpiresAt))
		}
		fmt.Fprintf(s.stdout, "Would delete %s (%s%s).\n", pasteID(id), s.st.Name(t.Status), held)
		would++
	}
	if !yes && would > 0 {
		fmt.Fprintf(s.stdout, "Dry run: nothing changed. Run again with --yes to delete %s.\n", them(would))
	}
	return joinErrors(errs)
}
