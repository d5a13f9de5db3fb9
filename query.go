package ddbtrack

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// This file reads the status index. Each status of a job is spread over
// Config.Shards index partitions, each sorted by its tasks' due time and
// then ID, so a query over several statuses reads one stream per (status,
// shard) and merges them into one globally ordered stream (merge.go).

// QueryOptions selects the tasks that [Tracker.Query] returns.
type QueryOptions[S Status] struct {
	// Statuses lists the statuses to return tasks from. It is required
	// unless Unfinished is set: an empty list is an error, not "every
	// status", because a query over every status of a big job is rarely
	// what a caller means.
	Statuses []S

	// Unfinished selects the tasks that still have to run instead of
	// Statuses: those in Pending, Failed or one of Config.Startable, and
	// those in Running whose lease had expired when the query was made,
	// which are stuck because their worker died. It may not be combined
	// with Statuses. Defaults to false.
	Unfinished bool

	// Since and Until bound the tasks' DueAt: Since is inclusive and Until
	// exclusive. For a finished task DueAt is when it finished; for a
	// waiting one, when it may start. The index sorts on DueAt, so both
	// bounds cut the reads, not only the results. Defaults to unbounded at
	// either end.
	Since, Until time.Time

	// NewestFirst returns the tasks due latest first. Defaults to false:
	// the tasks due earliest first, those due in the same millisecond by
	// ascending ID. One order is exactly the reverse of the other.
	NewestFirst bool

	// Limit caps the number of tasks returned, across all statuses and
	// shards. Defaults to 0, no limit.
	Limit int

	// Filter keeps only the tasks that match it, and may test any
	// attribute the index holds, including fields inside data and output,
	// e.g. expression.Name("last_error").Contains("timeout") or
	// expression.Name("data.region").Equal(expression.Value("eu")).
	// DynamoDB applies it after reading, so filtered-out tasks still cost
	// read capacity. Defaults to none.
	Filter expression.ConditionBuilder

	// PageSize is how many items each request to DynamoDB reads. It trades
	// the number of requests against the work wasted when the caller stops
	// early. A query with no filter and a Limit reads at most Limit items
	// per request. Defaults to 100.
	PageSize int32
}

// Page is one page of results from [Tracker.QueryPage].
type Page[S Status] struct {
	// Tasks holds at most QueryOptions.Limit tasks.
	Tasks []*Task[S]
	// Cursor resumes the query after the last task of this page. It is
	// URL-safe and opaque. It is "" when there are no more tasks.
	Cursor string
}

// Query returns the tasks that opts selects, in the order that opts.NewestFirst chooses
// across every status and shard. Nothing is read until the caller ranges
// over the result, and reading stops when the loop does: breaking out of
// the loop sends no further requests.
//
// The first request of each (status, shard) stream is sent at once, up to
// 16 in flight; after that a stream reads its next page only when the merge
// has used up the previous one. A query with a Limit and no filter thus
// sends one request per stream, and reads at most Limit items from each,
// whatever the size of the job. An error is yielded once, as the last
// element.
//
// The status index is eventually consistent, as every global secondary
// index is: a task written a moment ago may not be listed yet, and a task
// whose status changes during the query may be listed under its old status,
// its new one, both or neither.
func (t *Tracker[S]) Query(ctx context.Context, opts QueryOptions[S]) iter.Seq2[*Task[S], error] {
	p, err := t.newPlan(opts, "QueryOptions", t.cfg.Now())
	if err != nil {
		return func(yield func(*Task[S], error) bool) { yield(nil, err) }
	}
	return p.seq(ctx, "")
}

// QueryPage returns one page of the tasks Query would return, for a
// command-line tool or web page that must resume later. opts.Limit is the
// page size and must be positive. Pass "" as cursor for the first page,
// then the previous page's Cursor, with the same opts, for the next.
//
// A cursor records the place of the last task returned, so it stays valid
// for as long as the caller keeps it. A task that changes between two pages
// moves to its new place in the order: it may be returned again later, or
// not at all if its new place is behind the cursor. A cursor made for other
// options is refused with an [*OptionError]; that includes time bounds, so
// a caller whose bounds are relative to now ("the last six hours") must fix
// them when it reads the first page and pass the same absolute times with
// every later page.
func (t *Tracker[S]) QueryPage(ctx context.Context, opts QueryOptions[S], cursor string) (Page[S], error) {
	if opts.Limit <= 0 {
		return Page[S]{}, optionError("QueryOptions.Limit", fmt.Sprintf("is %d", opts.Limit), "QueryPage returns Limit tasks per page: set it to the page size, such as 50")
	}
	p, err := t.newPlan(opts, "QueryOptions", t.cfg.Now())
	if err != nil {
		return Page[S]{}, err
	}
	after, err := p.decodeCursor(cursor)
	if err != nil {
		return Page[S]{}, err
	}
	// One task more than the page shows whether there is another page, so
	// that the last page says so instead of leading to an empty one.
	p.limit++
	var page Page[S]
	for task, err := range p.seq(ctx, after) {
		if err != nil {
			return Page[S]{}, err
		}
		if len(page.Tasks) == opts.Limit {
			last := page.Tasks[len(page.Tasks)-1]
			page.Cursor = p.encodeCursor(keys.Order(last.DueAt.UnixMilli(), last.ID))
			break
		}
		page.Tasks = append(page.Tasks, task)
	}
	return page, nil
}

// partition is one index partition a query reads: a status on a shard.
// extra, if set, is a condition that only this partition's tasks must meet.
type partition struct {
	status int
	shard  int
	extra  expression.ConditionBuilder
}

// key returns the partition's status_key.
func (part partition) key(job string) string { return keys.Status(job, part.status, part.shard) }

// keyRange returns the key condition of the partition's tasks whose order
// keys are from lo to hi, both inclusive, "" meaning unbounded.
func (part partition) keyRange(job, lo, hi string) expression.KeyConditionBuilder {
	kc := expression.Key(attrStatusKey).Equal(expression.Value(part.key(job)))
	switch order := expression.Key(attrOrderKey); {
	case lo != "" && hi != "":
		kc = kc.And(order.Between(expression.Value(lo), expression.Value(hi)))
	case lo != "":
		kc = kc.And(order.GreaterThanEqual(expression.Value(lo)))
	case hi != "":
		kc = kc.And(order.LessThanEqual(expression.Value(hi)))
	}
	return kc
}

// indexQuery returns a query of the status index with the key condition
// kc that returns only the attributes named, or all of them if none is.
// It serves the reads that need no plan: counts, a partition's newest
// task, and the jobs.
func (t *Tracker[S]) indexQuery(kc expression.KeyConditionBuilder, names ...string) (*dynamodb.QueryInput, error) {
	b := expression.NewBuilder().WithKeyCondition(kc)
	if len(names) > 0 {
		proj := expression.NamesList(expression.Name(names[0]))
		for _, name := range names[1:] {
			proj = proj.AddNames(expression.Name(name))
		}
		b = b.WithProjection(proj)
	}
	e, err := b.Build()
	if err != nil {
		return nil, err
	}
	return &dynamodb.QueryInput{
		TableName:                 aws.String(t.cfg.Table),
		IndexName:                 aws.String(indexName),
		KeyConditionExpression:    e.KeyCondition(),
		ProjectionExpression:      e.Projection(),
		ExpressionAttributeNames:  e.Names(),
		ExpressionAttributeValues: e.Values(),
	}, nil
}

// plan is a checked query: the partitions to read, the bounds on the
// index's sort key, and how to order, filter and limit the results.
type plan[S Status] struct {
	t        *Tracker[S]
	parts    []partition
	lo, hi   string // Inclusive bounds on order_key; "" means unbounded.
	desc     bool
	limit    int // 0 means none.
	pageSize int32
	filter   expression.ConditionBuilder
	// fingerprint identifies the query for cursors: the statuses, the
	// bounds, the order and the filter, but not the limit or the page
	// size, which may change from page to page.
	fingerprint string
}

// newPlan checks opts and returns the plan that runs them at now, which
// decides which leases count as expired for Unfinished. name is the
// options' type as the caller knows it, for errors.
func (t *Tracker[S]) newPlan(opts QueryOptions[S], name string, now time.Time) (*plan[S], error) {
	return t.newPlanOf(opts, name, now, opts.Unfinished)
}

// newPlanOf is newPlan that, with expiredOnly, reads only the Running
// tasks whose lease had expired at now, as Unfinished and Requeue do.
func (t *Tracker[S]) newPlanOf(opts QueryOptions[S], name string, now time.Time, expiredOnly bool) (*plan[S], error) {
	p := &plan[S]{t: t, limit: opts.Limit, pageSize: opts.PageSize, filter: opts.Filter}
	parts, err := t.partitions(opts, name, now, expiredOnly)
	if err != nil {
		return nil, err
	}
	p.parts = parts
	p.desc = opts.NewestFirst
	if opts.Limit < 0 {
		return nil, optionError(name+".Limit", fmt.Sprintf("is %d", opts.Limit), "use a positive number, or 0 for no limit")
	}
	switch {
	case opts.PageSize < 0:
		return nil, optionError(name+".PageSize", fmt.Sprintf("is %d", opts.PageSize), "use a positive number, or 0 for the default (100)")
	case opts.PageSize == 0:
		p.pageSize = 100
	}
	if !opts.Since.IsZero() && !opts.Until.IsZero() && opts.Until.Before(opts.Since) {
		return nil, optionError(name+".Until", fmt.Sprintf("(%s) is before Since (%s)", opts.Until.Format(time.RFC3339Nano), opts.Since.Format(time.RFC3339Nano)),
			"Since is the start of the range and Until its end: swap them")
	}
	if !opts.Since.IsZero() {
		p.lo = keys.Order(ceilMillis(opts.Since), "")
	}
	if !opts.Until.IsZero() {
		p.hi = keys.OrderBound(ceilMillis(opts.Until) - 1)
	}
	if err := p.fingerprintOf(opts, name); err != nil {
		return nil, err
	}
	if p.lo != "" && p.hi != "" && p.lo > p.hi {
		p.parts = nil // An empty window: nothing to read.
	}
	return p, nil
}

// partitions lists the index partitions that opts reads, each once.
func (t *Tracker[S]) partitions(opts QueryOptions[S], name string, now time.Time, expiredOnly bool) ([]partition, error) {
	statuses := opts.Statuses
	switch {
	case opts.Unfinished && len(statuses) > 0:
		return nil, optionError(name+".Unfinished", "is set together with Statuses", "set one of them: Unfinished chooses its own statuses")
	case opts.Unfinished:
		statuses = append([]S{t.cfg.Pending, t.cfg.Failed, t.cfg.Running}, t.cfg.Startable...)
	case len(statuses) == 0:
		return nil, optionError(name+".Statuses", "is empty", fmt.Sprintf("list at least one status to read, such as Config.Failed (%s)", t.cfg.Failed))
	}
	var parts []partition
	seen := make(map[S]bool, len(statuses))
	for _, s := range statuses {
		if seen[s] {
			continue
		}
		seen[s] = true
		var extra expression.ConditionBuilder
		if s == t.cfg.Running && expiredOnly {
			extra = expression.Name(attrLeaseExpiresAt).LessThan(expression.Value(now.UnixMilli()))
		}
		for shard := range t.cfg.Shards {
			parts = append(parts, partition{status: int(s), shard: shard, extra: extra})
		}
	}
	return parts, nil
}

// fingerprintOf builds the filter once, so that a bad one is reported
// before any request, and records the query's identity for cursors.
func (p *plan[S]) fingerprintOf(opts QueryOptions[S], name string) error {
	fp := struct {
		Table, Job  string
		Statuses    []int
		Lo, Hi      string
		Desc        bool
		Filter      string
		Names       map[string]string
		Values      map[string]any
		ExtraFilter []bool
	}{Table: p.t.cfg.Table, Job: p.t.cfg.Job, Lo: p.lo, Hi: p.hi, Desc: p.desc}
	if opts.Filter.IsSet() {
		e, err := expression.NewBuilder().WithFilter(opts.Filter).Build()
		if err != nil {
			return optionError(name+".Filter", fmt.Sprintf("cannot be built: %v", err),
				`build it from expression.Name and expression.Value, e.g. expression.Name("last_error").Contains("timeout")`)
		}
		if err := p.t.slimCheck(aws.ToString(e.Filter()), e.Names(), name); err != nil {
			return err
		}
		fp.Filter, fp.Names, fp.Values = aws.ToString(e.Filter()), e.Names(), make(map[string]any, len(e.Values()))
		for k, v := range e.Values() {
			fp.Values[k] = plain(v)
		}
	}
	for _, part := range p.parts {
		if part.shard == 0 {
			fp.Statuses = append(fp.Statuses, part.status)
			fp.ExtraFilter = append(fp.ExtraFilter, part.extra.IsSet())
		}
	}
	b, err := json.Marshal(fp)
	if err != nil {
		return fmt.Errorf("ddbtrack: encode query for its cursor: %w", err)
	}
	sum := sha256.Sum256(b)
	p.fingerprint = base64.RawURLEncoding.EncodeToString(sum[:9])
	return nil
}

// slimCheck refuses a filter that tests an attribute a slim index does not
// hold: DynamoDB would find it missing on every task, and quietly return
// nothing. Only the first name of each path counts: "data.region" names
// the attribute data.
func (t *Tracker[S]) slimCheck(filter string, names map[string]string, field string) error {
	if !t.cfg.SlimIndex {
		return nil
	}
	held := map[string]bool{attrPK: true, attrStatusKey: true, attrOrderKey: true}
	for _, a := range slimAttrs {
		held[a] = true
	}
	for i := 0; i < len(filter); i++ {
		if filter[i] != '#' || i > 0 && filter[i-1] == '.' {
			continue
		}
		j := i + 1
		for j < len(filter) && (filter[j] == '_' || filter[j] >= '0' && filter[j] <= '9' || filter[j] >= 'a' && filter[j] <= 'z' || filter[j] >= 'A' && filter[j] <= 'Z') {
			j++
		}
		if attr := names[filter[i:j]]; attr != "" && !held[attr] {
			return optionError(field+".Filter", fmt.Sprintf("tests %s, which the slim status index (Config.SlimIndex) does not hold", attr),
				"filter on the attributes a listing shows, such as last_error, or read each task with Tracker.Get to test its data")
		}
		i = j - 1
	}
	return nil
}

// ceilMillis returns the first whole millisecond at or after t. Stored
// times are whole milliseconds, so "at >= t" holds exactly for those at or
// after ceilMillis(t).
func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// cursorJSON is what a cursor encodes: the query's fingerprint and the
// order key of the last task returned. A place in the global order is
// enough to resume every stream, because order keys are unique.
type cursorJSON struct {
	V   int    `json:"v"`
	Q   string `json:"q"`
	Key string `json:"k"`
}

const cursorVersion = 2

func (p *plan[S]) encodeCursor(key string) string {
	b, _ := json.Marshal(cursorJSON{V: cursorVersion, Q: p.fingerprint, Key: key}) // Strings and numbers always encode.
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns the order key a cursor resumes after, or "" for the
// empty cursor.
func (p *plan[S]) decodeCursor(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	const fix = `pass the Cursor of the previous Page unchanged, or "" for the first page`
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", optionError("cursor", fmt.Sprintf("%q is not base64url: %v", s, err), fix)
	}
	var c cursorJSON
	if err := json.Unmarshal(b, &c); err != nil || c.V != cursorVersion || c.Key == "" {
		return "", optionError("cursor", fmt.Sprintf("%q was not made by QueryPage", s), fix)
	}
	if c.Q != p.fingerprint {
		return "", optionError("cursor", "belongs to a query with other options (table, job, statuses, Since, Until, NewestFirst or Filter)",
			"pass the same options as for the first page, or start again with an empty cursor")
	}
	return c.Key, nil
}

// input returns the request that reads part, from after the order key
// after if it is not "".
func (p *plan[S]) input(part partition, after string) (*dynamodb.QueryInput, error) {
	pk := part.key(p.t.cfg.Job)
	b := expression.NewBuilder().WithKeyCondition(part.keyRange(p.t.cfg.Job, p.lo, p.hi))
	filter := p.filter
	switch {
	case filter.IsSet() && part.extra.IsSet():
		filter = filter.And(part.extra)
	case part.extra.IsSet():
		filter = part.extra
	}
	if filter.IsSet() {
		b = b.WithFilter(filter)
	}
	e, err := b.Build()
	if err != nil {
		return nil, optionError("QueryOptions.Filter", fmt.Sprintf("cannot be built for partition %s: %v", pk, err), "build it from expression.Name and expression.Value")
	}
	limit := p.pageSize
	if p.limit > 0 && p.limit < int(p.pageSize) && !filter.IsSet() {
		// Without a filter every item read is returned, so no stream needs
		// more than the limit. A filter hides how many items a page will
		// keep, so filtered streams read full pages.
		limit = int32(p.limit)
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(p.t.cfg.Table),
		IndexName:                 aws.String(indexName),
		KeyConditionExpression:    e.KeyCondition(),
		FilterExpression:          e.Filter(),
		ExpressionAttributeNames:  e.Names(),
		ExpressionAttributeValues: e.Values(),
		ScanIndexForward:          aws.Bool(!p.desc),
		Limit:                     aws.Int32(limit),
	}
	if after != "" {
		// Order keys are unique, so the key of the last task returned is a
		// place in every partition's order; DynamoDB starts after it
		// whether or not the partition holds that task.
		in.ExclusiveStartKey = map[string]types.AttributeValue{
			attrStatusKey: strAV(pk),
			attrOrderKey:  strAV(after),
			attrPK:        strAV(keys.Task(p.t.cfg.Job, keys.OrderID(after))),
		}
	}
	return in, nil
}

// inBatches runs the plan and hands its tasks to fn in batches, for bulk
// operations that write what they read.
func (p *plan[S]) inBatches(ctx context.Context, fn func(context.Context, []*Task[S]) error) error {
	batch := make([]*Task[S], 0, bulkBatch)
	for task, err := range p.seq(ctx, "") {
		if err != nil {
			return err
		}
		batch = append(batch, task)
		if len(batch) == bulkBatch {
			if err := fn(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		return fn(ctx, batch)
	}
	return nil
}
