package ops

import (
	"context"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// StatusCount is the number of tasks in one status.
type StatusCount[S ddbtrack.Status] struct {
	Status S      `json:"status"`
	Name   string `json:"name"`
	Role   Role   `json:"role,omitempty"`
	Count  int64  `json:"count"`
}

// Counts is a job's task count per status at one time.
type Counts[S ddbtrack.Status] struct {
	// At is when the statuses were counted: a while ago when they come
	// from the job's shared counts (Config.CountMaxAge).
	At       time.Time        `json:"at"`
	Statuses []StatusCount[S] `json:"statuses"`
	Total    int64            `json:"total"`
	// Stuck counts Running tasks whose lease has expired. They are part
	// of the Running count too.
	Stuck int `json:"stuck"`
}

// Count returns the job's counts: every status the tracker knows, in value
// order, including those with no tasks. Stuck tasks are found by reading
// the Running tasks, which are few in a healthy job, since only a task's
// lease tells whether it is stuck.
func (j *Job[S]) Count(ctx context.Context, now time.Time) (Counts[S], error) {
	counted, err := j.tr.Count(ctx)
	if err != nil {
		return Counts[S]{}, err
	}
	c := Counts[S]{At: counted.AsOf}
	for _, code := range j.st.All() {
		n := counted.ByStatus[code]
		c.Statuses = append(c.Statuses, StatusCount[S]{Status: code, Name: j.st.Name(code), Role: j.st.RoleOf(code), Count: n})
		c.Total += n
	}
	for _, err := range j.tr.Query(ctx, Filter[S]{Stuck: true}.query(j.st, now, ddbtrack.OldestFirst, 0)) {
		if err != nil {
			return Counts[S]{}, err
		}
		c.Stuck++
	}
	return c, nil
}
