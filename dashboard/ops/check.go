package ops

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/ddbtrack/ddbtrack"
)

// Mismatch is a status whose stored name differs from the configured one:
// the tasks were written by a tracker whose enum names the value
// otherwise, so the configuration (for the command, --statuses) describes
// another enum, and counts and lists put tasks under the wrong name.
type Mismatch[S ddbtrack.Status] struct {
	Status S
	// Configured is the configured name, and Role its role, if any.
	Configured string
	Role       Role
	// Stored is the status_name of a task stored with the value.
	Stored string
	// Example is that task's ID.
	Example string
}

func (m Mismatch[S]) String() string {
	role := ""
	if m.Role != "" {
		role = fmt.Sprintf(" (the %s role)", m.Role)
	}
	return fmt.Sprintf("tasks with status %d are stored as %q (task %q), but the configured statuses call %d %q%s",
		int(m.Status), Visible(m.Stored, false), m.Example, int(m.Status), m.Configured, role)
}

// Health is what [Job.Check] found.
type Health[S ddbtrack.Status] struct {
	// Mismatches lists the statuses whose stored name is not the configured
	// one.
	Mismatches []Mismatch[S]
	// Empty says no task was found in any of the job's statuses: the job
	// name is likely wrong, or the job has not started.
	Empty bool
}

// Check reads one task of each of the job's statuses. It fails when the
// table or its status index does not exist, which is what a mistyped table
// name gives, and reports statuses whose stored names disagree with the
// configured ones, and a job with no tasks at all. It costs one small
// query per status and shard.
func (j *Job[S]) Check(ctx context.Context) (Health[S], error) {
	statuses := j.st.All()
	samples := make([]*ddbtrack.Task[S], len(statuses))
	errs := make([]error, len(statuses))
	var wg sync.WaitGroup
	for i, c := range statuses {
		wg.Go(func() {
			page, err := j.tr.QueryPage(ctx, ddbtrack.QueryOptions[S]{Statuses: []S{c}, Limit: 1, NewestFirst: true}, "")
			if err != nil {
				errs[i] = err
				return
			}
			if len(page.Tasks) > 0 {
				samples[i] = page.Tasks[0]
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return Health[S]{}, err
		}
	}
	h := Health[S]{Empty: true}
	for i, t := range samples {
		if t == nil {
			continue
		}
		h.Empty = false
		c := statuses[i]
		if t.StatusName != "" && t.StatusName != j.st.Name(c) {
			h.Mismatches = append(h.Mismatches, Mismatch[S]{
				Status: c, Configured: j.st.Name(c), Role: j.st.RoleOf(c), Stored: t.StatusName, Example: t.ID,
			})
		}
	}
	return h, nil
}

// Jobs lists the jobs the job's table holds, so that a mistyped job name
// can be answered with the names there are. It is the library's
// Tracker.Jobs: one query of the status index, which lists every job whose
// trackers created the table, loaded tasks in bulk, processed them or
// shared counts.
func (j *Job[S]) Jobs(ctx context.Context) ([]string, error) {
	return j.tr.Jobs(ctx)
}

// NoTasks says that the job has no tasks, naming the jobs the table holds
// when they can be listed, so that a mistyped job name is plain.
func (j *Job[S]) NoTasks(ctx context.Context) string {
	msg := fmt.Sprintf("no tasks in job %q of table %q", j.Name(), j.Table())
	jobs, err := j.Jobs(ctx)
	switch {
	case err != nil:
		return msg + "; check the job's name (--job), or whether it has started (" + err.Error() + ")"
	case len(jobs) == 0:
		return msg + "; the table lists no jobs"
	}
	quoted := make([]string, len(jobs))
	for i, name := range jobs {
		quoted[i] = strconv.Quote(name)
	}
	return msg + "; the table holds the jobs " + strings.Join(quoted, ", ")
}
