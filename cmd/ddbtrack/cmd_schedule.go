package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

// This file holds the commands that change when, or whether, a task runs:
// cancel and due-now.

var cmdCancel = &command{
	name:  "cancel",
	args:  "[flags] --reason TEXT TASK... | --reason TEXT (--status LIST | --scheduled | --stuck) [--yes]",
	short: "Stop tasks for good, with a reason; a dry run unless --yes.",
	long: `
Without --yes, cancel is a dry run: it says what would be cancelled and
changes nothing. --reason is required, dry run or not, and is stored with
each task, so that whoever finds it later knows why it did not run.

A task that waits to run (pending, failed, scheduled) becomes ignored at
once, with the time and reason of the cancel; its last error reads
"cancelled: REASON", and ls and show say when it was cancelled. A running
task cannot be taken from its worker: the cancel is stored as a request,
which the worker sees at its next lease renewal, within a third of the
job's lease; it then cancels the task's context and records the task as
ignored. A task that has finished (succeeded or ignored) is refused.
'ddbtrack requeue' or 'ddbtrack reset' runs a cancelled task again.

Name tasks to cancel only those (at most 1,000), or select tasks with
--status, --scheduled or --stuck and the other filters. Without --status,
every status whose tasks wait or run is taken. Each named task that is not
cancelled is named, with the reason, and the command then exits non-zero.

Examples:
  ddbtrack cancel --reason "customer closed the account" t-17
  ddbtrack cancel --reason "customer closed the account" --yes t-17
  ddbtrack cancel --scheduled --id-contains 2025-01-03 --reason "bad import file" --yes`,
	define: func(fs *flag.FlagSet) runFunc {
		filter := registerFilter(fs, "", "statuses to cancel from: `list` of roles, names or numbers; defaults to every status whose tasks wait or run")
		reason := fs.String("reason", "", "why the tasks are cancelled: `text` stored with each (required)")
		yes := fs.Bool("yes", false, "cancel; without it, only say what would be cancelled")
		asJSON := fs.Bool("json", false, `print {"dry_run", "matched", "cancelled", "running", "skipped", "refused"}`)
		return func(ctx context.Context, s *session, args []string) error {
			if *reason == "" {
				return usagef(`--reason is required: say why, such as --reason "superseded by a newer import"; it is stored with each task`)
			}
			selected := filter.stuck || filter.scheduled || flagSet(fs, "status")
			if len(args) == 0 && !selected {
				return usagef("name the tasks to cancel, or select them with --status, --scheduled or --stuck: ddbtrack cancel --reason TEXT TASK...")
			}
			now := s.now()
			f, err := filter.build(s, args, now)
			if err != nil {
				return err
			}
			if !flagSet(fs, "status") && !f.Stuck {
				f.Statuses = nil // ops.Job.Cancel takes every status that waits or runs.
			}
			for _, c := range f.Statuses {
				if !slices.Contains(s.st.Cancellable(), c) {
					return usagef("--status: %s tasks have finished, and cancel takes only tasks that wait to run or run (%s)",
						s.st.Name(c), ops.Filter[Code]{Statuses: s.st.Cancellable()}.Describe(s.st))
				}
			}
			res, err := s.job.Cancel(ctx, f, *reason, now, !*yes)
			if err != nil && res.Cancelled > 0 {
				return fmt.Errorf("%w (cancelled %d of %d matched before the error; rerun to continue)", err, res.Cancelled, res.Matched)
			}
			if err != nil {
				return err
			}
			var refused []error
			refusedIDs := map[string]bool{}
			for _, r := range res.Refused {
				refused = append(refused, r.Err)
				refusedIDs[r.ID] = true
			}
			if *asJSON {
				if res.Refused == nil {
					res.Refused = []ops.Refusal{}
				}
				if err := printJSON(s.stdout, struct {
					DryRun bool `json:"dry_run"`
					ops.CancelResult[Code]
				}{!*yes, res}); err != nil {
					return err
				}
				return joinErrors(refused)
			}
			ignored := s.st.Name(s.st.Of(ops.Ignored))
			switch {
			case len(args) > 0:
				s.printCancelled(res.Tasks, refusedIDs, now, *yes)
			case res.Matched == 0:
				fmt.Fprintf(s.stdout, "No tasks match (%s).\n", f.Describe(s.st))
			case !*yes:
				fmt.Fprintf(s.stdout, "%s (%s)%s.\nDry run: nothing changed. Run again with --yes to cancel %s.\n",
					matches(res.Matched), f.Describe(s.st), runningNote(res.Running), them(res.Matched))
			default:
				fmt.Fprintf(s.stdout, "Cancelled %s: they are %s now%s.\n", plural(int64(res.Cancelled), "task"), ignored, runningNote(res.Running))
				if res.Skipped > 0 {
					fmt.Fprintf(s.stdout, "Skipped %s that finished or were deleted after matching.\n", plural(int64(res.Skipped), "task"))
				}
			}
			return joinErrors(refused)
		}
	},
}

// runningNote says how many of the tasks a cancel matched are running,
// whose workers stop them later.
func runningNote(n int) string {
	switch n {
	case 0:
		return ""
	case 1:
		return ", but 1 was running: its worker stops it at its next lease renewal"
	}
	return fmt.Sprintf(", but %d were running: their workers stop them at their next lease renewal", n)
}

// printCancelled says what a cancel of named tasks did, or would do, to
// each task it matched.
func (s *session) printCancelled(tasks []*ddbtrack.Task[Code], refused map[string]bool, now time.Time, done bool) {
	ignored := s.st.Name(s.st.Of(ops.Ignored))
	n := 0
	for _, t := range tasks {
		if refused[t.ID] {
			continue
		}
		n++
		held := t.LeaseOwner != "" && now.Before(t.LeaseExpiresAt)
		switch {
		case !done && held:
			fmt.Fprintf(s.stdout, "Would ask worker %s to stop %s (%s, lease until %s); it stops at its next lease renewal.\n",
				clean(t.LeaseOwner, false), pasteID(t.ID), s.st.Name(t.Status), formatTime(t.LeaseExpiresAt))
		case !done:
			what := s.st.Name(t.Status)
			if due := s.st.Due(t, now); due != "" {
				what += ", " + due
			}
			fmt.Fprintf(s.stdout, "Would cancel %s (%s).\n", pasteID(t.ID), what)
		case held:
			fmt.Fprintf(s.stdout, "Asked worker %s to stop %s: it stops at its next lease renewal, and records it as %s.\n",
				clean(t.LeaseOwner, false), pasteID(t.ID), ignored)
		default:
			fmt.Fprintf(s.stdout, "Cancelled %s: it is %s now.\n", pasteID(t.ID), ignored)
		}
	}
	if !done && n > 0 {
		fmt.Fprintf(s.stdout, "Dry run: nothing changed. Run again with --yes to cancel %s.\n", them(n))
	}
}

var cmdDueNow = &command{
	name:  "due-now",
	args:  "[flags] TASK...",
	short: "Make scheduled or backing-off tasks due now.",
	long: `
A pending task scheduled or snoozed until later becomes due now. A failed
task waiting out its retry delay moves back to pending, due now, as a
requeue moves it: only if it is still as it was read, so that one a worker
claimed meanwhile is named and left alone.

Either way its attempt count restarts at zero, because the library makes a
task due early only by resetting or requeueing it: a failed task gets all
of its attempts again. Its data, output and error history are kept.

A task that is due already is left as it is. One that runs or has finished
is refused: 'ddbtrack reset' runs a task again from any status. To make
every backing-off task due, run 'ddbtrack requeue --scheduled --status
failed', which counts them first and moves them with --yes.

Examples:
  ddbtrack ls --scheduled
  ddbtrack due-now t-17 t-42`,
	define: func(fs *flag.FlagSet) runFunc {
		return func(ctx context.Context, s *session, args []string) error {
			if len(args) == 0 {
				return usagef("name the tasks to make due now: ddbtrack due-now TASK... ('ddbtrack ls --scheduled' lists them)")
			}
			pending := s.st.Name(s.st.Of(ops.Pending))
			var errs []error
			for _, id := range args {
				now := s.now()
				was, err := s.job.DueNow(ctx, id, now)
				switch {
				case errors.Is(err, ops.ErrAlreadyDue):
					fmt.Fprintf(s.stdout, "%s is due already (since %s): nothing changed.\n", pasteID(id), formatTime(was.DueAt))
				case err != nil:
					errs = append(errs, err)
				case was.Status == s.st.Of(ops.Pending):
					fmt.Fprintf(s.stdout, "%s is due now (it was %s).\n", pasteID(id), s.st.Due(was, now))
				default:
					fmt.Fprintf(s.stdout, "%s is due now: it moved from %s to %s, with its attempt count restarted (it had %s; it was %s).\n",
						pasteID(id), s.st.Name(was.Status), pending, plural(int64(was.Attempts), "failed attempt"), s.st.Due(was, now))
				}
			}
			return joinErrors(errs)
		}
	},
}
