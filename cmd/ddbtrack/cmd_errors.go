package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/ddbtrack/ddbtrack/dashboard/ops"
)

var cmdErrors = &command{
	name:  "errors",
	args:  "[flags]",
	short: "Group failed and ignored tasks by their error, the commonest cause first.",
	long: `
Each task's last error is normalised: numbers, hex, UUIDs, quoted values,
times and addresses are masked, so that "timeout after 30s calling
10.0.3.7:443" and "timeout after 31s calling 10.0.3.9:443" are one cause.
Each group shows how many tasks it holds, when the first and the last of
them failed, and an example task to open with 'ddbtrack show'.

Requeue a whole group with 'ddbtrack requeue --group GROUP', which counts
first and moves them only with --yes.

errors reads every task it groups (at most --max, newest first), so narrow
big jobs with --since.

Examples:
  ddbtrack errors
  ddbtrack errors --since 6h --status failed
  ddbtrack requeue --group 3f2a1b9c0d --yes`,
	define: func(fs *flag.FlagSet) runFunc {
		filter := registerFilter(fs, "failed,ignored", "statuses to read: `list` of roles, names or numbers")
		limit := fs.Int("max", ops.DefaultErrorLimit, "read at most this many tasks, the newest first")
		asJSON := fs.Bool("json", false, `print {"groups": [...], "tasks", "truncated"}`)
		return func(ctx context.Context, s *session, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if *limit < 1 {
				return usagef("--max %d: use a positive number", *limit)
			}
			now := s.now()
			f, err := filter.build(s, nil, now)
			if err != nil {
				return err
			}
			rep, err := s.job.Errors(ctx, f, now, *limit)
			if err != nil {
				return err
			}
			if *asJSON {
				if rep.Groups == nil {
					rep.Groups = []ops.ErrorGroup{}
				}
				return printJSON(s.stdout, rep)
			}
			if len(rep.Groups) == 0 {
				fmt.Fprintf(s.stdout, "No errors (%s).\n", f.Describe(s.st))
				return nil
			}
			rows := make([][]string, len(rep.Groups))
			for i, g := range rep.Groups {
				rows[i] = []string{g.ID, strconv.Itoa(g.Count), formatTime(g.FirstSeen), formatTime(g.LastSeen), pasteID(g.Example), cell(g.Pattern, 100)}
			}
			if err := printTable(s.stdout, []string{"GROUP", "TASKS", "FIRST SEEN", "LAST SEEN", "EXAMPLE", "ERROR"}, rows); err != nil {
				return err
			}
			more := ""
			if rep.Truncated {
				more = fmt.Sprintf(", the newest %d only: narrow with --since or raise --max", *limit)
			}
			fmt.Fprintf(s.stdout, "\n%s in %s read (%s)%s.\n", plural(int64(len(rep.Groups)), "group"), plural(int64(rep.Tasks), "task"), f.Describe(s.st), more)
			fmt.Fprintf(s.stderr, "Requeue a group with `ddbtrack requeue --group GROUP`: it counts first, and moves them with --yes.\n")
			return nil
		}
	},
}
