package ddbtrack

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Counts is what [Tracker.Count] found.
type Counts[S Status] struct {
	// ByStatus holds the number of tasks in each status counted, zero
	// included.
	ByStatus map[S]int64
	// AsOf is when the counts were taken.
	AsOf time.Time
}

// Count counts the tasks in each of statuses, or, with none, in the five
// roles of Config and every status in Config.Startable. It sends a
// Select=COUNT query to each of the statuses' index partitions, two at
// once, and follows each one's pages; it never scans the table.
//
// A COUNT query returns no items, but DynamoDB still reads every item it
// counts: its cost in read units, and its time, grow with the number of
// tasks in the statuses (see the package documentation). The index is
// eventually consistent, so a status change of the last moment may not be
// counted yet.
//
// With Config.CountMaxAge set, Count returns the job's shared counts when
// they are at most that old, read with one GetItem, and Counts.AsOf says
// when they were taken. Counts that are older are refreshed by one caller
// at a time across every tracker of the job, which takes a lease on the
// refresh with a conditional write and renews it while it counts; the
// others return the counts they found meanwhile, or wait for the first
// ones. So the job is counted at
// most once per CountMaxAge, however many dashboards, command-line
// watchers and progress reports ask.
//
// A refresh reads every task in Pending, Running, Failed and
// Config.Startable, but of Succeeded and Ignored only the tasks that
// finished lately: since the last refresh, or in the 5 minutes before the
// newest one. The job's item keeps how many finished before, and tasks
// leave those statuses only through Reset, Requeue,
// Delete and DeleteByStatus, which record it. A refresh reads every task
// once an hour, after such a removal, for Succeeded while the table's time
// to live is on, and for a status that another tracker of the job starts
// tasks from (a pipeline's next step, through its Config.Startable). What
// else that rests on, and what it costs, is in docs/guarantees.md and
// docs/cost.md.
func (t *Tracker[S]) Count(ctx context.Context, statuses ...S) (Counts[S], error) {
	all := t.roles()
	if len(statuses) == 0 {
		statuses = all
	}
	if t.cfg.CountMaxAge > 0 && subset(statuses, all) {
		return t.sharedCount(ctx, t.cfg.CountMaxAge, statuses)
	}
	return t.count(ctx, statuses)
}

// roles returns the statuses the job's counts cover: the five roles and
// Config.Startable.
func (t *Tracker[S]) roles() []S {
	return append([]S{t.cfg.Pending, t.cfg.Running, t.cfg.Failed, t.cfg.Succeeded, t.cfg.Ignored}, t.cfg.Startable...)
}

// count counts statuses afresh.
func (t *Tracker[S]) count(ctx context.Context, statuses []S) (Counts[S], error) {
	return t.tally(ctx, statuses, t.cfg.Now(), func(ctx context.Context, part partition) (int64, error) {
		return t.countPartition(ctx, part, "", "")
	})
}

// tally counts statuses at, with countOne counting each of their index
// partitions, countLimit at once.
func (t *Tracker[S]) tally(ctx context.Context, statuses []S, at time.Time, countOne func(context.Context, partition) (int64, error)) (Counts[S], error) {
	parts, err := t.partitions(QueryOptions[S]{Statuses: statuses}, "statuses", time.Time{}, false)
	if err != nil {
		return Counts[S]{}, err
	}
	c := Counts[S]{ByStatus: make(map[S]int64, len(statuses)), AsOf: at}
	for _, s := range statuses {
		c.ByStatus[s] = 0
	}
	var mu sync.Mutex
	err = fanOut(ctx, len(parts), countLimit, func(ctx context.Context, i int) error {
		n, err := countOne(ctx, parts[i])
		if err != nil {
			return err
		}
		mu.Lock()
		c.ByStatus[S(parts[i].status)] += n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return Counts[S]{}, err
	}
	return c, nil
}

// countLimit bounds the partitions a count reads at once. A count's time
// is set by its biggest partition, whose pages follow one another, so
// reading every partition at once would save little; and each page reads
// 1 MB, so a count with fewer in flight leaves the table's capacity, and
// a local server's one process, to the other callers meanwhile.
const countLimit = 2

// countPartition counts one index partition's tasks whose sort keys are
// after after and up to upTo, "" meaning unbounded, page by page: DynamoDB
// stops a COUNT query's page after reading 1 MB, as it does any query's.
// The bounds are keys.OrderBound values, which no task's key equals, so
// whether a bound is inclusive makes no difference.
func (t *Tracker[S]) countPartition(ctx context.Context, part partition, after, upTo string) (int64, error) {
	in, err := t.indexQuery(part.keyRange(t.cfg.Job, after, upTo))
	if err != nil {
		return 0, fmt.Errorf("ddbtrack: build the count query of %s: %w", part.key(t.cfg.Job), err)
	}
	in.Select = types.SelectCount
	var n int64
	for {
		out, err := t.client.Query(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("ddbtrack: count index %s, partition %s: %w", indexName, part.key(t.cfg.Job), err)
		}
		n += int64(out.Count)
		if len(out.LastEvaluatedKey) == 0 {
			return n, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}
