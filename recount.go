package ddbtrack

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// This file keeps a refresh of the job's shared counts from reading every
// finished task again, which would make each refresh cost as much as the
// whole job.
//
// A task enters Succeeded or Ignored with the time of its outcome as its
// sort key in the status index, and stays there unless an operator takes it
// out (Reset, Requeue, Delete, DeleteByStatus) or a tracker claims from that
// status (a pipeline's next step). So while no tracker of the job claims
// from a finished status, and no operator has taken tasks out since, the
// tasks of its partition whose keys are at or before a bound some minutes
// in the past are the ones the last refresh counted there. Their number,
// the partition's base, is stored with the counts; the next refresh counts
// only the keys after the bound, and moves the bound up. Unfinished
// statuses change all the time, and are counted in full.

const (
	// countMargin keeps a partition's bound this far behind both the
	// refresher's clock and the partition's newest task. A task that
	// finishes later, on a worker whose clock is behind by less than this,
	// or that the index lists late, still lands after the bound.
	countMargin = 5 * time.Minute
	// fullCountEvery is how often a refresh counts every task anyway. It
	// bounds how long a base stays wrong when it went wrong unseen: a task
	// deleted by something other than ddbtrack, a worker whose clock is off
	// by more than countMargin, or a task that time to live deleted.
	fullCountEvery = time.Hour
	// removalLag is how long after an operator's removal a refresh must
	// have started for its base to be trusted: the index lists a removal
	// late, and the removal's writes follow the record of it. A removal
	// recorded after the refresh read the job's item makes the next
	// refresh count in full whatever the clocks say.
	removalLag = 10 * time.Second
)

// countBase is what a refresh leaves for the next one, in attrCountBase.
type countBase struct {
	at      int64 // epoch ms: when the refresh that stored it started
	full    int64 // epoch ms: when the last full count started
	removed int64 // the job's attrRemovedAt as that refresh read it
	// ttl says that time to live was on at the last full count, so that a
	// Succeeded task may vanish without a write of ddbtrack's.
	ttl   bool
	parts map[string]segment // by partition key
}

// segment is a finished partition's base: n tasks had keys up to bound.
// The zero segment is no base.
type segment struct {
	n     int64
	bound string
}

// removing records, before an operator's writes take tasks out of their
// status, that the shared counts' bases may no longer hold. An operation
// of many writes calls it before each batch and once after the last, so
// that no write lands more than a batch's time after the record.
func (t *Tracker[S]) removing(ctx context.Context) error {
	if _, err := t.send(ctx, t.removedWrite(t.cfg.Now())); err != nil && !isRefusal(err) {
		return err
	}
	return nil
}

// recount counts the job's roles for a refresh of its shared counts at
// now, from the bases in the job's item when they can be trusted, and
// returns the counts and the bases to leave for the next refresh.
func (t *Tracker[S]) recount(ctx context.Context, item map[string]types.AttributeValue, now time.Time) (Counts[S], *countBase, error) {
	prev := readBase(item, now)
	next := &countBase{at: now.UnixMilli(), full: now.UnixMilli(), removed: num(item, attrRemovedAt), parts: map[string]segment{}}
	if prev != nil {
		next.full, next.ttl = prev.full, prev.ttl
	} else {
		next.ttl = t.ttlOn(ctx)
	}
	settled := t.settled(item, next.ttl)
	var mu sync.Mutex
	c, err := t.tally(ctx, t.roles(), now, func(ctx context.Context, part partition) (int64, error) {
		if !settled[part.status] {
			return t.countPartition(ctx, part, "", "")
		}
		key := part.key(t.cfg.Job)
		var base segment
		if prev != nil {
			base = prev.parts[key]
		}
		n, seg, err := t.countSettled(ctx, part, base, now)
		if seg.bound != "" {
			mu.Lock()
			next.parts[key] = seg
			mu.Unlock()
		}
		return n, err
	})
	if err != nil {
		return Counts[S]{}, nil, err
	}
	return c, next, nil
}

// readBase returns the bases stored in the job's item, or nil when a
// refresh at now must count in full: there are none, the last full count
// is an hour old, or an operator removed tasks since, or just before, they
// were taken.
func readBase(item map[string]types.AttributeValue, now time.Time) *countBase {
	m, _ := item[attrCountBase].(*types.AttributeValueMemberM)
	if m == nil {
		return nil
	}
	b := &countBase{at: num(m.Value, "at"), full: num(m.Value, "full"), removed: num(m.Value, "removed"), parts: map[string]segment{}}
	if age := now.UnixMilli() - b.full; age < 0 || age >= fullCountEvery.Milliseconds() {
		return nil // A clock that went back is no reason to trust a base either.
	}
	if removed := num(item, attrRemovedAt); removed != b.removed || removed+removalLag.Milliseconds() >= b.at {
		return nil
	}
	if ttl, ok := m.Value["ttl"].(*types.AttributeValueMemberBOOL); ok {
		b.ttl = ttl.Value
	}
	parts, _ := m.Value["parts"].(*types.AttributeValueMemberM)
	if parts != nil {
		for key, v := range parts.Value {
			if seg, ok := v.(*types.AttributeValueMemberM); ok {
				b.parts[key] = segment{n: num(seg.Value, "n"), bound: str(seg.Value, "bound")}
			}
		}
	}
	return b
}

// av is the base as stored in attrCountBase.
func (b *countBase) av() types.AttributeValue {
	parts := make(map[string]types.AttributeValue, len(b.parts))
	for key, seg := range b.parts {
		parts[key] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"n": numAV(seg.n), "bound": strAV(seg.bound)}}
	}
	return &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
		"at":      numAV(b.at),
		"full":    numAV(b.full),
		"removed": numAV(b.removed),
		"ttl":     &types.AttributeValueMemberBOOL{Value: b.ttl},
		"parts":   &types.AttributeValueMemberM{Value: parts},
	}}
}

// settled returns the statuses whose bases a refresh may use: this
// tracker's Succeeded and Ignored, unless a tracker of the job claims from
// them, and Succeeded only while time to live cannot delete its tasks.
func (t *Tracker[S]) settled(item map[string]types.AttributeValue, ttl bool) map[int]bool {
	claimable := map[string]bool{}
	if ns, ok := item[attrClaimable].(*types.AttributeValueMemberNS); ok {
		for _, v := range ns.Value {
			claimable[v] = true
		}
	}
	out := make(map[int]bool, 2)
	for _, s := range []S{t.cfg.Succeeded, t.cfg.Ignored} {
		if claimable[strconv.Itoa(int(s))] || (s == t.cfg.Succeeded && ttl) {
			continue
		}
		out[int(s)] = true
	}
	return out
}

// ttlOn reports whether time to live may delete the table's items. When
// it cannot tell (a role without dynamodb:DescribeTimeToLive, say), it
// says yes, which costs a full count of Succeeded at every refresh rather
// than a count that misses deletions.
func (t *Tracker[S]) ttlOn(ctx context.Context) bool {
	out, err := t.client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(t.cfg.Table)})
	if err != nil || out.TimeToLiveDescription == nil {
		return true
	}
	return out.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusDisabled
}

// countSettled counts a finished partition from its base: the keys from
// the base's bound to a new one, then the keys after that. It returns the
// partition's count and its new base.
func (t *Tracker[S]) countSettled(ctx context.Context, part partition, base segment, now time.Time) (int64, segment, error) {
	newest, err := t.newestKey(ctx, part)
	if err != nil || newest == "" {
		return 0, segment{}, err
	}
	// The bound trails the partition's newest task as well as this clock,
	// so that a job whose workers' clocks run behind the refresher's (a
	// test's fake clock, say) still finds their new tasks after it.
	bound := keys.OrderBound(min(now.UnixMilli(), keys.OrderTime(newest)) - countMargin.Milliseconds())
	if bound > base.bound {
		n, err := t.countPartition(ctx, part, base.bound, bound)
		if err != nil {
			return 0, segment{}, err
		}
		base = segment{n: base.n + n, bound: bound}
	}
	rest, err := t.countPartition(ctx, part, base.bound, "")
	if err != nil {
		return 0, segment{}, err
	}
	return base.n + rest, base, nil
}

// newestKey returns the greatest sort key in a partition, or "" if it is
// empty.
func (t *Tracker[S]) newestKey(ctx context.Context, part partition) (string, error) {
	in, err := t.indexQuery(part.keyRange(t.cfg.Job, "", ""), attrOrderKey)
	if err != nil {
		return "", fmt.Errorf("ddbtrack: build the query of the newest task of %s: %w", part.key(t.cfg.Job), err)
	}
	in.ScanIndexForward, in.Limit = aws.Bool(false), aws.Int32(1)
	out, err := t.client.Query(ctx, in)
	if err != nil {
		return "", fmt.Errorf("ddbtrack: read the newest task of index %s, partition %s: %w", indexName, part.key(t.cfg.Job), err)
	}
	if len(out.Items) == 0 {
		return "", nil
	}
	return str(out.Items[0], attrOrderKey), nil
}
