package ddbtrack

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// This file is the job's own item: a record that the job exists, so that a
// table's jobs can be listed without a scan, and the job's shared counts.
// Its key is the job's name alone, which no task's key can be: a task's
// key always has a '#' after the job's name.

// countLease is how long a refresh of the shared counts may go without
// renewing its lease before another caller may take it over.
const countLease = time.Minute

// sharedCount returns the job's shared counts of statuses, refreshing them
// if they are older than maxAge.
func (t *Tracker[S]) sharedCount(ctx context.Context, maxAge time.Duration, statuses []S) (Counts[S], error) {
	wait := newPause(time.Second)
	for {
		item, err := t.readKey(ctx, map[string]types.AttributeValue{attrPK: strAV(t.cfg.Job)}, "job "+t.cfg.Job)
		if err != nil {
			return Counts[S]{}, err
		}
		now := t.cfg.Now()
		found, ok := t.summary(item, statuses)
		if ok && now.Sub(found.AsOf) <= maxAge {
			return found, nil
		}
		fresh, counted, err := t.refreshCounts(ctx, item, now, maxAge)
		switch {
		case err != nil:
			return Counts[S]{}, err
		case counted:
			return pick(fresh, statuses), nil
		case ok:
			return found, nil // Another caller is refreshing them: these will do meanwhile.
		}
		// The first counts of the job are being taken: wait for them.
		if err := sleep(ctx, wait.next()); err != nil {
			return Counts[S]{}, err
		}
	}
}

// refreshCounts counts the job, from the bases in its item (recount.go),
// unless another caller holds the refresh: then it reports counted false.
func (t *Tracker[S]) refreshCounts(ctx context.Context, item map[string]types.AttributeValue, now time.Time, maxAge time.Duration) (Counts[S], bool, error) {
	token := newToken()
	if _, err := t.send(ctx, t.countClaimWrite(token, now, maxAge)); isRefusal(err) {
		return Counts[S]{}, false, nil
	} else if err != nil {
		return Counts[S]{}, false, err
	}
	stop := t.keepCountLease(ctx, token)
	c, base, err := t.recount(ctx, item, now)
	stop()
	if err != nil {
		// Give the refresh up at once, or the next caller would wait out
		// its lease for counts that are not coming.
		_, _ = t.send(context.WithoutCancel(ctx), t.countStoreWrite(token, nil, nil, time.Time{}))
		return Counts[S]{}, false, err
	}
	byName := make(map[string]types.AttributeValue, len(c.ByStatus))
	for s, n := range c.ByStatus {
		byName[strconv.Itoa(int(s))] = numAV(n)
	}
	// A refresh that outlived its lease may be refused; its counts are as
	// good as any for this caller.
	if _, err := t.send(ctx, t.countStoreWrite(token, byName, base, c.AsOf)); err != nil && !isRefusal(err) {
		return Counts[S]{}, false, err
	}
	return c, true, nil
}

// keepCountLease renews the lease on the refresh that token holds every
// third of countLease, until the returned function is called, so that a
// count that takes longer than the lease, as a full count of millions of
// tasks may, is not taken over by the next caller and run twice.
func (t *Tracker[S]) keepCountLease(ctx context.Context, token string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			tick, stopTick := t.sched.After(countLease / 3)
			select {
			case <-ctx.Done():
				stopTick()
				return
			case <-tick:
			}
			// An error is tried again at the next tick, while the lease
			// still has a third left; a refusal means the lease was lost.
			if _, err := t.send(ctx, t.countRenewWrite(token, t.cfg.Now().Add(countLease))); isRefusal(err) {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// summary reads the counts of statuses from the job's item, and reports
// whether it holds them all.
func (t *Tracker[S]) summary(item map[string]types.AttributeValue, statuses []S) (Counts[S], bool) {
	m, _ := item[attrCounts].(*types.AttributeValueMemberM)
	if m == nil {
		return Counts[S]{}, false
	}
	c := Counts[S]{ByStatus: make(map[S]int64, len(statuses)), AsOf: millis(item, attrCountedAt)}
	for _, s := range statuses {
		key := strconv.Itoa(int(s))
		if _, ok := m.Value[key]; !ok {
			return Counts[S]{}, false
		}
		c.ByStatus[s] = num(m.Value, key)
	}
	return c, true
}

// pick returns the counts of statuses only.
func pick[S Status](c Counts[S], statuses []S) Counts[S] {
	out := Counts[S]{ByStatus: make(map[S]int64, len(statuses)), AsOf: c.AsOf}
	for _, s := range statuses {
		out.ByStatus[s] = c.ByStatus[s]
	}
	return out
}

func subset[S Status](some, all []S) bool {
	for _, s := range some {
		if !slices.Contains(all, s) {
			return false
		}
	}
	return true
}

// register records that the job exists, so that Jobs lists it, with the
// statuses this tracker claims from. It is one write, safe to repeat, made
// by CreateTable, each CreateMany and each Process, but never by Create or
// by Start, which keep a task's path at three writes, except once (see
// announce).
func (t *Tracker[S]) register(ctx context.Context) error {
	if _, err := t.send(ctx, t.registerWrite(t.cfg.Now())); err != nil {
		return err
	}
	t.registered.Store(true)
	return nil
}

// announce registers the job before the first claim of a tracker with
// Config.Startable, which may take tasks from another tracker's Succeeded
// or Ignored: a refresh of the shared counts must then count that status
// in full (see recount.go). It is one write in the tracker's life, and
// none for a tracker that claims only from its own Pending and Failed.
func (t *Tracker[S]) announce(ctx context.Context) error {
	if len(t.cfg.Startable) == 0 || t.registered.Load() {
		return nil
	}
	return t.register(ctx)
}

// Jobs lists the jobs of the tracker's table, by name, in byte order. It
// reads the status index, where each job has an entry of its own, so it
// costs one query whatever the size of the jobs. A job is listed once
// one of its trackers has run CreateTable, CreateMany or Process, or Start
// with Config.Startable set; Create and Start alone add no write to a
// task's path, so a job made only by them is not.
func (t *Tracker[S]) Jobs(ctx context.Context) ([]string, error) {
	in, err := t.indexQuery(expression.Key(attrStatusKey).Equal(expression.Value(jobsKey)), attrJob)
	if err != nil {
		return nil, fmt.Errorf("ddbtrack: build the query of jobs: %w", err)
	}
	var jobs []string
	for {
		out, err := t.client.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("ddbtrack: list the jobs of table %q: %w", t.cfg.Table, err)
		}
		for _, item := range out.Items {
			jobs = append(jobs, str(item, attrJob))
		}
		if len(out.LastEvaluatedKey) == 0 {
			return jobs, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}
