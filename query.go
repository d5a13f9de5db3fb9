package ddbtrack

import (
	"cmp"
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// This file reads the status index. Each status of a job is spread over
// Config.Shards index partitions, each sorted by update time, so a query
// over several statuses reads one stream per (status, shard) and merges
// them into one globally ordered stream. Every stream reads one page per
// request, and only when the merge needs its next item, so a caller that
// stops early stops the requests too.

// Order is the order in which a query returns tasks.
type Order int

const (
	// OldestFirst returns the least recently updated tasks first, tasks
	// updated in the same millisecond by ascending ID.
	OldestFirst Order = iota
	// NewestFirst returns the most recently updated tasks first, tasks
	// updated in the same millisecond by descending ID: exactly the reverse
	// of OldestFirst.
	NewestFirst
)

// DefaultPageSize is the number of items a query asks DynamoDB for per
// request when QueryOptions.PageSize is zero.
const DefaultPageSize = 100

// queryConcurrency bounds the requests a query, count or bulk operation has
// in flight at once. A query's first request to every stream is sent
// together, because the merge can yield nothing until it has seen the head
// of every stream; later pages are read one at a time, as needed.
const queryConcurrency = 16

var (
	// ErrInvalidQuery means QueryOptions or RequeueOptions cannot be run as
	// given; the error says which field and how to fix it.
	ErrInvalidQuery = errors.New("ddbtrack: invalid query")
	// ErrInvalidCursor means a cursor passed to [Tracker.QueryPage] was not
	// one it returned for the same query.
	ErrInvalidCursor = errors.New("ddbtrack: invalid cursor")
)

// QueryOptions selects the tasks that [Tracker.Query] returns.
type QueryOptions[S Status] struct {
	// Statuses lists the statuses to return tasks from. It is required:
	// an empty list is an error, not "every status", because a query over
	// every status of a big job is rarely what a caller means.
	Statuses []S

	// Since and Until bound the tasks' last update time (the time of the
	// last status change): Since is inclusive and Until exclusive. The
	// index sorts on update time, so both bounds cut the reads, not only
	// the results. Defaults to unbounded at either end.
	Since, Until time.Time

	// Order is the order of the results, by update time and then by task
	// ID. Defaults to OldestFirst.
	Order Order

	// Limit caps the number of tasks returned, across all statuses and
	// shards. Defaults to 0, no limit.
	Limit int

	// Filter keeps only the tasks that match it, and may test any
	// attribute, including fields inside data and output, e.g.
	// expression.Name("last_error").Contains("timeout") or
	// expression.Name("data.region").Equal(expression.Value("eu")).
	// DynamoDB applies it after reading, so filtered-out tasks still cost
	// read capacity. Defaults to none.
	Filter expression.ConditionBuilder

	// PageSize is how many items each request to DynamoDB reads. It trades
	// the number of requests against the work wasted when the caller stops
	// early. A query with no filter and a Limit of at most PageSize reads
	// Limit+1 items per request instead: the extra one shows where the
	// last update time ends. Defaults to 100.
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

// Query returns the tasks in opts.Statuses, in the order of opts.Order
// across every status and shard. Nothing is read until the caller ranges
// over the result, and reading stops when the loop does: breaking out of
// the loop sends no further requests.
//
// The first request of each (status, shard) stream is sent at once, up to
// 16 in flight; after that a stream reads its next page only when the merge
// has used up the previous one. An error is yielded once, as the last
// element.
//
// The status index is eventually consistent, as every global secondary
// index is: a task written a moment ago may not be listed yet, and a task
// whose status changes during the query may be listed under its old status,
// its new one, both or neither.
func (t *Tracker[S]) Query(ctx context.Context, opts QueryOptions[S]) iter.Seq2[*Task[S], error] {
	parts, err := t.partitions(opts.Statuses, time.Time{})
	if err != nil {
		return errSeq[S](err)
	}
	p, err := t.newPlan(opts, parts, "QueryOptions")
	if err != nil {
		return errSeq[S](err)
	}
	return p.seq(ctx, nil)
}

// Unfinished returns the tasks that still have to run: those in Pending,
// Failed or one of Config.Startable, and those in Running whose lease had
// expired at Config.Now() when Unfinished was called, which are stuck
// because their worker died. It ignores opts.Statuses and honours every
// other option.
func (t *Tracker[S]) Unfinished(ctx context.Context, opts QueryOptions[S]) iter.Seq2[*Task[S], error] {
	statuses := []S{t.cfg.Pending, t.cfg.Failed, t.cfg.Running}
	statuses = append(statuses, t.cfg.Startable...)
	parts, err := t.partitions(statuses, t.cfg.Now())
	if err != nil {
		return errSeq[S](err)
	}
	p, err := t.newPlan(opts, parts, "QueryOptions")
	if err != nil {
		return errSeq[S](err)
	}
	return p.seq(ctx, nil)
}

// QueryPage returns one page of the tasks Query would return, for a
// command-line tool or web page that must resume later. opts.Limit is the
// page size and must be positive. Pass "" as cursor for the first page,
// then the previous page's Cursor, with the same opts, for the next.
//
// A cursor records the update time and ID of the last task returned, so it
// stays valid for as long as the caller keeps it. A task updated between two
// pages moves to its new place in the order: it may be returned again
// later, or not at all if its new place is behind the cursor. A cursor made
// for other options is refused with an error matching ErrInvalidCursor;
// that includes time bounds, so a caller whose bounds are relative to now
// ("the last six hours") must fix them when it reads the first page and
// pass the same absolute times with every later page.
func (t *Tracker[S]) QueryPage(ctx context.Context, opts QueryOptions[S], cursor string) (Page[S], error) {
	if opts.Limit <= 0 {
		return Page[S]{}, queryError("QueryOptions.Limit", fmt.Sprintf("is %d", opts.Limit), "QueryPage returns Limit tasks per page: set it to the page size, such as 50")
	}
	parts, err := t.partitions(opts.Statuses, time.Time{})
	if err != nil {
		return Page[S]{}, err
	}
	p, err := t.newPlan(opts, parts, "QueryOptions")
	if err != nil {
		return Page[S]{}, err
	}
	var after *position
	if cursor != "" {
		if after, err = p.decodeCursor(cursor); err != nil {
			return Page[S]{}, err
		}
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
			page.Cursor = p.encodeCursor(position{ms: last.UpdatedAt.UnixMilli(), id: last.ID})
			break
		}
		page.Tasks = append(page.Tasks, task)
	}
	return page, nil
}

// queryShard returns the tasks of one index partition, those in status on
// shard, in the order of opts.Order, reading one page per request as the
// caller pulls. opts.Statuses is ignored; Since, Until, Order, Limit,
// Filter and PageSize apply. It is the building block of Query, for callers
// that pick work from one partition at a time.
func (t *Tracker[S]) queryShard(ctx context.Context, status S, shard int, opts QueryOptions[S]) iter.Seq2[*Task[S], error] {
	if shard < 0 || shard >= t.cfg.Shards {
		return errSeq[S](fmt.Errorf("%w: shard %d is out of range: Config.Shards is %d", ErrInvalidQuery, shard, t.cfg.Shards))
	}
	p, err := t.newPlan(opts, []partition{{status: int(status), shard: shard}}, "QueryOptions")
	if err != nil {
		return errSeq[S](err)
	}
	return p.seq(ctx, nil)
}

// sampleShard reads one page of at most opts.Limit tasks from one index
// partition, in index order, with one request. It is for callers that need
// some tasks of a partition, not a resumable order: unlike queryShard it
// does not read on to complete a run of tasks updated in the same
// millisecond, which tasks created together form, and which would
// otherwise cost a request for every opts.Limit of them. opts.Filter must
// be unset, because a filtered page can come back empty from a partition
// that has matching tasks.
func (t *Tracker[S]) sampleShard(ctx context.Context, status S, shard int, opts QueryOptions[S]) ([]*Task[S], error) {
	if opts.Filter.IsSet() || opts.Limit <= 0 {
		return nil, fmt.Errorf("%w: sampleShard needs a limit and no filter", ErrInvalidQuery)
	}
	part := partition{status: int(status), shard: shard}
	p, err := t.newPlan(opts, []partition{part}, "QueryOptions")
	if err != nil {
		return nil, err
	}
	in, _, err := p.input(part, nil)
	if err != nil {
		return nil, err
	}
	in.Limit = aws.Int32(int32(opts.Limit))
	out, err := t.client.Query(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("ddbtrack: query index %s, partition %s: %w", IndexName, part.key(t.cfg.Job), err)
	}
	tasks := make([]*Task[S], 0, len(out.Items))
	for _, item := range out.Items {
		task, err := decodeTask[S](item)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, task)
	}
	return tasks, nil
}

func errSeq[S Status](err error) iter.Seq2[*Task[S], error] {
	return func(yield func(*Task[S], error) bool) { yield(nil, err) }
}

// queryError names a field, such as "QueryOptions.Limit", its problem and
// the fix.
func queryError(field, problem, fix string) error {
	return fmt.Errorf("%w: %s %s: %s", ErrInvalidQuery, field, problem, fix)
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

// partitions lists the index partitions of statuses, each once. If
// expiredAt is not zero, the partitions of Running get a filter that keeps
// only tasks whose lease had expired at that time, as Unfinished and
// Requeue need.
func (t *Tracker[S]) partitions(statuses []S, expiredAt time.Time) ([]partition, error) {
	if len(statuses) == 0 {
		return nil, queryError("QueryOptions.Statuses", "is empty", fmt.Sprintf("list at least one status to read, such as Config.Failed (%s)", t.cfg.Failed))
	}
	var parts []partition
	seen := make(map[S]bool, len(statuses)+1)
	add := func(s S, extra expression.ConditionBuilder) {
		if seen[s] {
			return
		}
		seen[s] = true
		for shard := range t.cfg.Shards {
			parts = append(parts, partition{status: int(s), shard: shard, extra: extra})
		}
	}
	for _, s := range statuses {
		var extra expression.ConditionBuilder
		if s == t.cfg.Running && !expiredAt.IsZero() {
			extra = expression.Name("lease_expires_at").LessThan(expression.Value(expiredAt.UnixMilli()))
		}
		add(s, extra)
	}
	return parts, nil
}

// plan is a checked query: the partitions to read, the bounds on update
// time, and how to order, filter and limit the results.
type plan[S Status] struct {
	t        *Tracker[S]
	parts    []partition
	lo, hi   int64 // Inclusive bounds on updated_at, in epoch milliseconds.
	desc     bool
	limit    int // 0 means none.
	pageSize int32
	filter   expression.ConditionBuilder
	// fingerprint identifies the query for cursors: the statuses, the
	// bounds, the order and the filter, but not the limit or the page
	// size, which may change from page to page.
	fingerprint string
}

// newPlan checks opts and returns the plan that reads parts. name is the
// options' type as the caller knows it, for errors.
func (t *Tracker[S]) newPlan(opts QueryOptions[S], parts []partition, name string) (*plan[S], error) {
	p := &plan[S]{t: t, parts: parts, lo: math.MinInt64, hi: math.MaxInt64, limit: opts.Limit, pageSize: opts.PageSize, filter: opts.Filter}
	switch opts.Order {
	case OldestFirst:
	case NewestFirst:
		p.desc = true
	default:
		return nil, queryError(name+".Order", fmt.Sprintf("is %d", opts.Order), "use OldestFirst or NewestFirst")
	}
	if opts.Limit < 0 {
		return nil, queryError(name+".Limit", fmt.Sprintf("is %d", opts.Limit), "use a positive number, or 0 for no limit")
	}
	switch {
	case opts.PageSize < 0:
		return nil, queryError(name+".PageSize", fmt.Sprintf("is %d", opts.PageSize), fmt.Sprintf("use a positive number, or 0 for the default (%d)", DefaultPageSize))
	case opts.PageSize == 0:
		p.pageSize = DefaultPageSize
	}
	if !opts.Since.IsZero() {
		p.lo = ceilMillis(opts.Since)
	}
	if !opts.Until.IsZero() {
		p.hi = ceilMillis(opts.Until) - 1
	}
	if !opts.Since.IsZero() && !opts.Until.IsZero() && opts.Until.Before(opts.Since) {
		return nil, queryError(name+".Until", fmt.Sprintf("(%s) is before Since (%s)", opts.Until.Format(time.RFC3339Nano), opts.Since.Format(time.RFC3339Nano)),
			"Since is the start of the range and Until its end: swap them")
	}

	// Build the filter once here, so a bad one is reported before any
	// request, and so the cursor can name it.
	fp := struct {
		Table, Job  string
		Statuses    []int
		Lo, Hi      int64
		Desc        bool
		Filter      string
		Names       map[string]string
		Values      map[string]any
		ExtraFilter []string
	}{Table: t.cfg.Table, Job: t.cfg.Job, Lo: p.lo, Hi: p.hi, Desc: p.desc}
	if opts.Filter.IsSet() {
		e, err := expression.NewBuilder().WithFilter(opts.Filter).Build()
		if err != nil {
			return nil, queryError(name+".Filter", fmt.Sprintf("cannot be built: %v", err), "build it from expression.Name and expression.Value, e.g. expression.Name(\"last_error\").Contains(\"timeout\")")
		}
		fp.Filter, fp.Names, fp.Values = aws.ToString(e.Filter()), e.Names(), make(map[string]any, len(e.Values()))
		for k, v := range e.Values() {
			fp.Values[k] = plain(v)
		}
	}
	for _, part := range parts {
		if part.shard == 0 {
			fp.Statuses = append(fp.Statuses, part.status)
			fp.ExtraFilter = append(fp.ExtraFilter, fmt.Sprint(part.extra.IsSet()))
		}
	}
	b, err := json.Marshal(fp)
	if err != nil {
		return nil, fmt.Errorf("ddbtrack: encode query for its cursor: %w", err)
	}
	sum := sha256.Sum256(b)
	p.fingerprint = base64.RawURLEncoding.EncodeToString(sum[:9])
	return p, nil
}

// ceilMillis returns the first whole millisecond at or after t. Stored
// times are whole milliseconds, so "updated_at >= t" holds exactly for
// those at or after ceilMillis(t).
func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// position is a place in a query's order: just after the task with this
// update time and ID.
type position struct {
	ms int64
	id string
}

// cursorJSON is what a cursor encodes. A position in the global order is
// enough to resume every stream: each has returned exactly its tasks up to
// that position, whatever order the pages came in.
type cursorJSON struct {
	V  int    `json:"v"`
	Q  string `json:"q"`
	Ms int64  `json:"t"`
	ID string `json:"id"`
}

const cursorVersion = 1

func (p *plan[S]) encodeCursor(pos position) string {
	b, _ := json.Marshal(cursorJSON{V: cursorVersion, Q: p.fingerprint, Ms: pos.ms, ID: pos.id}) // Strings and numbers always encode.
	return base64.RawURLEncoding.EncodeToString(b)
}

func (p *plan[S]) decodeCursor(s string) (*position, error) {
	const fix = "pass the Cursor of the previous Page unchanged, or \"\" for the first page"
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not base64url: %v; %s", ErrInvalidCursor, s, err, fix)
	}
	var c cursorJSON
	if err := json.Unmarshal(b, &c); err != nil || c.V != cursorVersion || c.ID == "" {
		return nil, fmt.Errorf("%w: %q was not made by QueryPage; %s", ErrInvalidCursor, s, fix)
	}
	if c.Q != p.fingerprint {
		return nil, fmt.Errorf("%w: the cursor belongs to a query with other options (table, job, statuses, Since, Until, Order or Filter): "+
			"pass the same options as for the first page, or start again with an empty cursor", ErrInvalidCursor)
	}
	return &position{ms: c.Ms, id: c.ID}, nil
}

// entry is one item read from the index, with its sort keys decoded.
type entry struct {
	ms   int64
	id   string
	item map[string]types.AttributeValue
}

// compare orders entries as the query returns them.
func compareEntries(a, b entry, desc bool) int {
	c := cmp.Or(cmp.Compare(a.ms, b.ms), cmp.Compare(a.id, b.id))
	if desc {
		return -c
	}
	return c
}

// stream reads one index partition page by page.
//
// DynamoDB sorts a partition by update time, but leaves the order of tasks
// updated in the same millisecond to itself. The stream sorts each such
// group by ID before handing it out, so it holds back a group that may
// continue on the next page until that page has been read.
type stream struct {
	name  string               // The partition's status_key, for errors.
	in    *dynamodb.QueryInput // ExclusiveStartKey advances page by page.
	desc  bool
	after *position // Entries at or before it are skipped: a cursor's resume.
	buf   []entry
	pos   int  // buf[pos] is the next entry to hand out.
	ready int  // buf[pos:ready] is sorted and complete.
	done  bool // No page is left to read.
}

// fill reads pages until the stream has a ready entry or has no more.
func (s *stream) fill(ctx context.Context, c Client) error {
	for s.pos == s.ready && !s.done {
		if s.pos > 0 {
			n := copy(s.buf, s.buf[s.pos:])
			clear(s.buf[n:])
			s.buf, s.ready, s.pos = s.buf[:n], s.ready-s.pos, 0
		}
		if err := s.fetch(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (s *stream) fetch(ctx context.Context, c Client) error {
	out, err := c.Query(ctx, s.in)
	if err != nil {
		return fmt.Errorf("ddbtrack: query index %s, partition %s: %w", IndexName, s.name, err)
	}
	for _, item := range out.Items {
		e := entry{ms: num(item, "updated_at"), id: str(item, "task_id"), item: item}
		if s.after != nil && compareEntries(e, entry{ms: s.after.ms, id: s.after.id}, s.desc) <= 0 {
			continue
		}
		s.buf = append(s.buf, e)
	}
	s.in.ExclusiveStartKey = out.LastEvaluatedKey
	s.done = len(out.LastEvaluatedKey) == 0
	end := len(s.buf)
	if !s.done {
		// The last group of equal update times may go on in the next page.
		for end > s.ready && s.buf[end-1].ms == s.buf[len(s.buf)-1].ms {
			end--
		}
	}
	slices.SortFunc(s.buf[s.ready:end], func(a, b entry) int { return compareEntries(a, b, s.desc) })
	s.ready = end
	return nil
}

func (s *stream) head() entry { return s.buf[s.pos] }

// merge is a min-heap of streams by their next entry.
type merge struct {
	streams []*stream
	desc    bool
}

func (m *merge) Len() int { return len(m.streams) }
func (m *merge) Less(i, j int) bool {
	return compareEntries(m.streams[i].head(), m.streams[j].head(), m.desc) < 0
}
func (m *merge) Swap(i, j int) { m.streams[i], m.streams[j] = m.streams[j], m.streams[i] }
func (m *merge) Push(x any)    { m.streams = append(m.streams, x.(*stream)) }
func (m *merge) Pop() any {
	s := m.streams[len(m.streams)-1]
	m.streams = m.streams[:len(m.streams)-1]
	return s
}

// input returns the request that reads part from the start, or from after
// a position.
func (p *plan[S]) input(part partition, after *position) (*dynamodb.QueryInput, bool, error) {
	lo, hi := p.lo, p.hi
	if after != nil {
		// Tasks updated in the cursor's millisecond may be on either side
		// of it, so that millisecond is read again and filtered by ID.
		if p.desc {
			hi = min(hi, after.ms)
		} else {
			lo = max(lo, after.ms)
		}
	}
	if lo > hi {
		return nil, false, nil
	}
	kc := expression.Key("status_key").Equal(expression.Value(part.key(p.t.cfg.Job)))
	switch {
	case lo != math.MinInt64 && hi != math.MaxInt64:
		kc = kc.And(expression.Key("updated_at").Between(expression.Value(lo), expression.Value(hi)))
	case lo != math.MinInt64:
		kc = kc.And(expression.Key("updated_at").GreaterThanEqual(expression.Value(lo)))
	case hi != math.MaxInt64:
		kc = kc.And(expression.Key("updated_at").LessThanEqual(expression.Value(hi)))
	}
	b := expression.NewBuilder().WithKeyCondition(kc)
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
		return nil, false, fmt.Errorf("%w: build the query of partition %d/%d: %w", ErrInvalidQuery, part.status, part.shard, err)
	}
	limit := p.pageSize
	if p.limit > 0 && p.limit <= int(p.pageSize) && !filter.IsSet() {
		// Without a filter every item read is returned, so no stream needs
		// more than the limit, plus one: a stream holds back its last
		// update time until it has seen the next one, so the extra item
		// saves a second request when one stream supplies the whole limit.
		// A resumed stream may skip a few items of the cursor's millisecond
		// and then need one more page; a filter hides how many items a page
		// will keep, so filtered streams read full pages.
		limit = int32(p.limit + 1)
	}
	return &dynamodb.QueryInput{
		TableName:                 aws.String(p.t.cfg.Table),
		IndexName:                 aws.String(IndexName),
		KeyConditionExpression:    e.KeyCondition(),
		FilterExpression:          e.Filter(),
		ExpressionAttributeNames:  e.Names(),
		ExpressionAttributeValues: e.Values(),
		ScanIndexForward:          aws.Bool(!p.desc),
		Limit:                     aws.Int32(limit),
	}, true, nil
}

// seq runs the query, resuming after a position if one is given.
func (p *plan[S]) seq(ctx context.Context, after *position) iter.Seq2[*Task[S], error] {
	return func(yield func(*Task[S], error) bool) {
		streams := make([]*stream, 0, len(p.parts))
		for _, part := range p.parts {
			in, ok, err := p.input(part, after)
			if err != nil {
				yield(nil, err)
				return
			}
			if ok {
				streams = append(streams, &stream{name: part.key(p.t.cfg.Job), in: in, desc: p.desc, after: after})
			}
		}
		client := p.t.client
		if err := fanOut(ctx, len(streams), func(ctx context.Context, i int) error {
			return streams[i].fill(ctx, client)
		}); err != nil {
			yield(nil, err)
			return
		}
		m := &merge{desc: p.desc}
		for _, s := range streams {
			if s.pos < s.ready {
				m.streams = append(m.streams, s)
			}
		}
		heap.Init(m)
		// dry is the stream whose last ready entry was just handed out. It
		// is refilled only when the caller asks for the next task, so that
		// a break, or the limit, leaves its next page unread.
		var dry *stream
		for n := 0; p.limit == 0 || n < p.limit; n++ {
			if dry != nil {
				if err := dry.fill(ctx, client); err != nil {
					yield(nil, err)
					return
				}
				if dry.pos < dry.ready {
					heap.Push(m, dry)
				}
				dry = nil
			}
			if m.Len() == 0 {
				return
			}
			s := m.streams[0]
			e := s.head()
			s.pos++
			if s.pos < s.ready {
				heap.Fix(m, 0)
			} else {
				dry = heap.Pop(m).(*stream)
			}
			task, err := decodeTask[S](e.item)
			if !yield(task, err) || err != nil {
				return
			}
		}
	}
}

// fanOut calls fn for 0 ≤ i < n with at most queryConcurrency calls at
// once. The first error cancels the context of the others and is returned.
func fanOut(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
		sem      = make(chan struct{}, queryConcurrency)
	)
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { firstErr = err; cancel(err) })
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return context.Cause(ctx)
}
