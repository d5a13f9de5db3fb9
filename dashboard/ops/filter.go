package ops

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/ddbtrack/ddbtrack"
)

// MaxIDs bounds Filter.IDs. Requeues send them to DynamoDB in batches of
// idBatch, so the bound is not DynamoDB's; it only keeps one form or
// command line from turning into an unbounded amount of work.
const MaxIDs = 1000

// idBatch is how many IDs one request names: DynamoDB's IN takes at most
// 100 operands.
const idBatch = 100

// Filter selects tasks the way an operator describes them. The statuses
// and the time range go to the status index; the rest becomes a filter
// expression, which DynamoDB applies after reading, so it narrows what is
// returned but not what is read (or billed).
type Filter[S ddbtrack.Status] struct {
	// Statuses are the statuses to read. Stuck replaces them with the
	// Running status.
	Statuses []S
	// Stuck keeps only Running tasks whose lease has expired: their worker
	// died or hung, and no other worker has taken them over yet.
	Stuck bool
	// Scheduled keeps only tasks that wait for a time: in a waiting
	// status (see [Statuses.Waiting]) and not due yet, such as a task
	// scheduled for later or a failed one waiting out its retry delay.
	// It raises Since to just after now, so the status index reads only
	// them. With no Statuses it reads every waiting status.
	Scheduled bool
	// Since and Until bound the task's due time, which the status index
	// sorts on: for a finished task, when it finished; for a waiting one,
	// when it may start. Zero means unbounded.
	Since, Until time.Time
	// ErrorContains keeps tasks whose last error contains the text.
	ErrorContains string
	// IDContains keeps tasks whose ID contains the text.
	IDContains string
	// IDs keeps only the tasks with these IDs, at most MaxIDs of them.
	IDs []string
	// Group keeps only the tasks whose last error normalises to the group
	// with this ID (see [GroupID]). DynamoDB cannot test that, so a filter
	// with a group reads every task the rest of the filter selects.
	Group string
}

// Check reports a filter that cannot be sent, or that selects nothing by
// construction, such as scheduled tasks in a status that never waits.
func (f Filter[S]) Check(st *Statuses[S]) error {
	switch {
	case f.Scheduled && f.Stuck:
		return errors.New("stuck tasks are running and scheduled ones waiting: select one or the other")
	case f.Scheduled:
		for _, c := range f.Statuses {
			if !st.Waiting(c) {
				return fmt.Errorf("scheduled tasks wait to run, and %s tasks never do: select among %s", st.Name(c), Filter[S]{Statuses: st.WaitingStatuses()}.Describe(st))
			}
		}
	}
	if len(f.IDs) > MaxIDs {
		return fmt.Errorf("%d task IDs selected, but one request takes at most %d: select fewer, or use a filter", len(f.IDs), MaxIDs)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return fmt.Errorf("the time range ends (%s) before it starts (%s): swap --since and --until",
			f.Until.UTC().Format(time.RFC3339), f.Since.UTC().Format(time.RFC3339))
	}
	return nil
}

// statuses returns the statuses to read.
func (f Filter[S]) statuses(st *Statuses[S]) []S {
	switch {
	case f.Stuck:
		return []S{st.Of(Running)}
	case f.Scheduled && len(f.Statuses) == 0:
		return st.WaitingStatuses()
	}
	return f.Statuses
}

// since returns the start of the due times to read. A scheduled task is
// due after now: a claim takes a task whose due time, in whole
// milliseconds, is at most now's, so the first millisecond after now's is
// the first a task can wait for.
func (f Filter[S]) since(now time.Time) time.Time {
	if !f.Scheduled {
		return f.Since
	}
	first := time.UnixMilli(now.UnixMilli() + 1)
	if f.Since.After(first) {
		return f.Since
	}
	return first
}

// condition returns the filter expression, which is unset when the filter
// has nothing beyond statuses and time. IDs go in whole only when they fit
// one request; Job.Requeue sends more in batches.
func (f Filter[S]) condition(now time.Time) expression.ConditionBuilder {
	var conds []expression.ConditionBuilder
	if f.Stuck {
		conds = append(conds, expression.Name("lease_expires_at").LessThan(expression.Value(now.UnixMilli())))
	}
	if f.ErrorContains != "" {
		conds = append(conds, expression.Name("last_error").Contains(f.ErrorContains))
	}
	if f.IDContains != "" {
		conds = append(conds, expression.Name("task_id").Contains(f.IDContains))
	}
	if len(f.IDs) > 0 && len(f.IDs) <= idBatch {
		ids := make([]expression.OperandBuilder, len(f.IDs))
		for i, id := range f.IDs {
			ids[i] = expression.Value(id)
		}
		conds = append(conds, expression.Name("task_id").In(ids[0], ids[1:]...))
	}
	switch len(conds) {
	case 0:
		return expression.ConditionBuilder{}
	case 1:
		return conds[0]
	default:
		return expression.And(conds[0], conds[1], conds[2:]...)
	}
}

// until returns the end of the due times to read. A Running task is due
// when its claim's first lease runs out, and renewals extend the lease,
// never the due time, so a stuck task, whose lease ran out before now, is
// due before now too. Ending the read there keeps a search for stuck
// tasks, which every count of the overview and of stats makes, from
// reading every live Running task of a big fleet; the filter on the lease
// still decides.
//
// A scheduled filter whose Until falls before the tasks it waits for
// selects nothing: it ends the read where it starts, rather than before,
// which the library would refuse as bounds given the wrong way round.
func (f Filter[S]) until(now time.Time) time.Time {
	switch {
	case f.Stuck && (f.Until.IsZero() || now.Before(f.Until)):
		return now
	case f.Scheduled && !f.Until.IsZero() && f.Until.Before(f.since(now)):
		return f.since(now)
	}
	return f.Until
}

// query returns the query options for the filter.
func (f Filter[S]) query(st *Statuses[S], now time.Time, newestFirst bool, limit int) ddbtrack.QueryOptions[S] {
	return ddbtrack.QueryOptions[S]{
		Statuses:    f.statuses(st),
		Since:       f.since(now),
		Until:       f.until(now),
		NewestFirst: newestFirst,
		Limit:       limit,
		Filter:      f.condition(now),
	}
}

// requeue returns the requeue options for the filter.
func (f Filter[S]) requeue(st *Statuses[S], now time.Time, dryRun bool, progress func(ddbtrack.RequeueResult)) ddbtrack.RequeueOptions[S] {
	return ddbtrack.RequeueOptions[S]{
		Statuses: f.statuses(st),
		Since:    f.since(now),
		Until:    f.until(now),
		Filter:   f.condition(now),
		DryRun:   dryRun,
		Progress: progress,
	}
}

// Describe says in words which tasks the filter selects, for confirmations
// such as "12 tasks (s06_failed or s10_ignore, error contains "timeout")".
func (f Filter[S]) Describe(st *Statuses[S]) string {
	var parts []string
	if f.Stuck {
		parts = append(parts, "stuck in "+st.Name(st.Of(Running))+" with an expired lease")
	} else {
		statuses := f.statuses(st)
		names := make([]string, len(statuses))
		for i, c := range statuses {
			names[i] = st.Name(c)
		}
		parts = append(parts, strings.Join(names, " or "))
	}
	if f.Scheduled {
		parts = append(parts, "not due yet")
	}
	if !f.Since.IsZero() {
		parts = append(parts, "due since "+FormatTime(f.Since))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "due before "+FormatTime(f.Until))
	}
	if f.ErrorContains != "" {
		parts = append(parts, "error contains "+strconv.Quote(f.ErrorContains))
	}
	if f.IDContains != "" {
		parts = append(parts, "ID contains "+strconv.Quote(f.IDContains))
	}
	if f.Group != "" {
		parts = append(parts, "error group "+f.Group)
	}
	if len(f.IDs) > 0 {
		parts = append(parts, fmt.Sprintf("among %d selected", len(f.IDs)))
	}
	return strings.Join(parts, ", ")
}

// TimeLayout is how times are shown to people: UTC, to the second, in a
// form that sorts as text.
const TimeLayout = "2006-01-02 15:04:05Z"

// FormatTime formats t with TimeLayout, or "-" for the zero time.
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(TimeLayout)
}

// timeLayouts are the absolute forms ParseTime accepts, tried in order.
// Those without a zone are UTC, as the dashboard and command show times.
var timeLayouts = []string{
	time.RFC3339Nano,
	TimeLayout,
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime reads a time as an operator types it: an age such as "90m",
// "6h" or "2d", meaning that long before now, or an absolute time such as
// "2025-01-02", "2025-01-02 15:04" or RFC 3339, UTC unless it says
// otherwise. An empty string gives the zero time.
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, ok := parseAge(s); ok {
		return now.Add(-d), nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read time %q: use an age such as 90m, 6h or 2d, or a UTC time such as 2025-01-02 or 2025-01-02T15:04:05Z", s)
}

// parseAge reads a positive duration, adding a "d" unit of 24 hours to
// what time.ParseDuration knows.
func parseAge(s string) (time.Duration, bool) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, false
		}
		return time.Duration(n * float64(24*time.Hour)), true
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, false
	}
	return d, true
}
