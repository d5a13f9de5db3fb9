package ops

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/ddbtrack/ddbtrack"
)

// StatusCount is the number of tasks in one status.
type StatusCount struct {
	Status Code   `json:"status"`
	Name   string `json:"name"`
	Role   Role   `json:"role,omitempty"`
	Count  int64  `json:"count"`
}

// Counts is a job's task count per status at one time.
type Counts struct {
	At       time.Time     `json:"at"`
	Statuses []StatusCount `json:"statuses"`
	Total    int64         `json:"total"`
	// Stuck counts Running tasks whose lease has expired. They are part
	// of the Running count too.
	Stuck int `json:"stuck"`
}

// Count returns the job's counts: every listed status, in value order,
// including those with no tasks, and any other status the tracker counted.
// Stuck tasks are found by reading the Running tasks, which are few in a
// healthy job, since only a task's lease tells whether it is stuck.
func Count(ctx context.Context, tr *ddbtrack.Tracker[Code], st *Statuses, now time.Time) (Counts, error) {
	counts, err := tr.Count(ctx)
	if err != nil {
		return Counts{}, err
	}
	byStatus := counts.ByStatus
	seen := map[Code]bool{}
	c := Counts{At: now}
	add := func(code Code) {
		seen[code] = true
		n := byStatus[code]
		c.Statuses = append(c.Statuses, StatusCount{Status: code, Name: st.Name(code), Role: st.RoleOf(code), Count: n})
		c.Total += n
	}
	for _, code := range st.All() {
		add(code)
	}
	for _, code := range slices.Sorted(maps.Keys(byStatus)) {
		if !seen[code] {
			add(code)
		}
	}
	for _, err := range tr.Query(ctx, Filter{Stuck: true}.Query(st, now, ddbtrack.OldestFirst, 0)) {
		if err != nil {
			return Counts{}, err
		}
		c.Stuck++
	}
	return c, nil
}
