// Package reqcount counts the requests that ddbtrack sends to DynamoDB, per
// operation, by wrapping its [ddbtrack.Client]. Tests and benchmarks use it to
// hold the library to its request budget: a task's create, claim and outcome
// are one write each, with no reads on the normal path.
//
// It counts calls to the client, that is operations as the library issues
// them. Retries made inside the SDK's retryer are not seen here, which is
// what a request budget is about: a retried request is the same request.
package reqcount

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack"
)

// Operation names, as DynamoDB's API spells them.
const (
	GetItem            = "GetItem"
	PutItem            = "PutItem"
	UpdateItem         = "UpdateItem"
	DeleteItem         = "DeleteItem"
	TransactWriteItems = "TransactWriteItems"
	Query              = "Query"
	CreateTable        = "CreateTable"
	DescribeTable      = "DescribeTable"
	DescribeTimeToLive = "DescribeTimeToLive"
	UpdateTimeToLive   = "UpdateTimeToLive"
)

// Counts maps an operation name to a number of calls. A missing operation
// counts zero.
type Counts map[string]int

// Total returns the number of calls of all operations.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Reads returns the number of item reads: GetItem and Query calls.
func (c Counts) Reads() int { return c[GetItem] + c[Query] }

// Writes returns the number of write requests: PutItem, UpdateItem,
// DeleteItem and TransactWriteItems calls.
func (c Counts) Writes() int {
	return c[PutItem] + c[UpdateItem] + c[DeleteItem] + c[TransactWriteItems]
}

// Add returns c plus other.
func (c Counts) Add(other Counts) Counts {
	out := Counts{}
	for op, n := range c {
		out[op] += n
	}
	for op, n := range other {
		out[op] += n
	}
	return out
}

// Sub returns c minus before, for counting what one step of a test sent.
func (c Counts) Sub(before Counts) Counts {
	out := make(Counts, len(c))
	for op, n := range c {
		if d := n - before[op]; d != 0 {
			out[op] = d
		}
	}
	return out
}

// String lists the non-zero counts in a stable order, e.g.
// "GetItem=1 UpdateItem=1", or "none".
func (c Counts) String() string {
	var parts []string
	for _, op := range slices.Sorted(maps.Keys(c)) {
		if c[op] != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", op, c[op]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// Client wraps a [ddbtrack.Client] and counts the calls made through it.
// Its methods are safe for concurrent use. Create it with [New].
//
// Every method of ddbtrack.Client is counted. The embedded interface only
// keeps Client compiling when ddbtrack.Client gains a method; this package's
// tests fail until the new method is counted too.
type Client struct {
	ddbtrack.Client

	// DropRefusedItem removes the item that a server returns with a refused
	// conditional write (ReturnValuesOnConditionCheckFailure). It makes a
	// server that supports returning it, such as moto or DynamoDB, behave
	// like one that does not, such as dynalite, so both paths of the
	// library can be measured on one server. Defaults to false.
	DropRefusedItem bool

	// MeasureCapacity asks the server for the capacity each successful request
	// consumed (ReturnConsumedCapacity TOTAL) and adds it up; see
	// [Client.CapacityUnits]. A refused write consumes capacity too but does not
	// report it, so refusals are not included. Defaults to false.
	MeasureCapacity bool

	mu       sync.Mutex
	counts   Counts
	capacity map[string]float64
	// selectCount is the number of Query calls with Select=COUNT, which
	// Counts has under Query too, and counted the items they read.
	selectCount int
	counted     int64
}

var _ ddbtrack.Client = (*Client)(nil)

// New returns a Client that counts the calls it passes to next.
func New(next ddbtrack.Client) *Client {
	return &Client{Client: next, counts: Counts{}, capacity: map[string]float64{}}
}

// Counts returns a copy of the counts so far.
func (c *Client) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// CapacityUnits returns the capacity units the server reported, per
// operation, when [Client].MeasureCapacity is set. The units are the server's own account:
// dynalite applies DynamoDB's rule for the table (1 write unit per KB of the
// larger of the item before and after the write, 1 read unit per 4 KB for a
// strongly consistent read) but reports nothing for indexes.
func (c *Client) CapacityUnits() map[string]float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.capacity)
}

// CountQueries returns how many of the Query calls so far were count
// queries (Select=COUNT). They are counted under Query as well; this tells
// the ones that read a status to count it, whose cost grows with the job,
// from listings.
func (c *Client) CountQueries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.selectCount
}

// CountedItems returns how many items the count queries so far read, by
// the servers' ScannedCount: what a count's cost and time grow with.
func (c *Client) CountedItems() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counted
}

// Reset sets every count and the capacity back to zero.
func (c *Client) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.counts)
	clear(c.capacity)
	c.selectCount, c.counted = 0, 0
}

func (c *Client) count(op string) {
	c.mu.Lock()
	c.counts[op]++
	c.mu.Unlock()
}

func (c *Client) addCapacity(op string, cc *types.ConsumedCapacity) {
	if cc == nil || cc.CapacityUnits == nil {
		return
	}
	c.mu.Lock()
	c.capacity[op] += *cc.CapacityUnits
	c.mu.Unlock()
}

// refused applies DropRefusedItem to a write's error.
func (c *Client) refused(err error) error {
	var ccf *types.ConditionalCheckFailedException
	if c.DropRefusedItem && errors.As(err, &ccf) {
		ccf.Item = nil
	}
	return err
}

func (c *Client) GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.count(GetItem)
	if c.MeasureCapacity {
		cp := *in
		cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
		in = &cp
	}
	out, err := c.Client.GetItem(ctx, in, optFns...)
	if err == nil && c.MeasureCapacity {
		c.addCapacity(GetItem, out.ConsumedCapacity)
	}
	return out, err
}

func (c *Client) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.count(PutItem)
	if c.MeasureCapacity {
		cp := *in
		cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
		in = &cp
	}
	out, err := c.Client.PutItem(ctx, in, optFns...)
	if err == nil && c.MeasureCapacity {
		c.addCapacity(PutItem, out.ConsumedCapacity)
	}
	return out, c.refused(err)
}

func (c *Client) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.count(UpdateItem)
	if c.MeasureCapacity {
		cp := *in
		cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
		in = &cp
	}
	out, err := c.Client.UpdateItem(ctx, in, optFns...)
	if err == nil && c.MeasureCapacity {
		c.addCapacity(UpdateItem, out.ConsumedCapacity)
	}
	return out, c.refused(err)
}

func (c *Client) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.count(TransactWriteItems)
	return c.Client.TransactWriteItems(ctx, in, optFns...)
}

func (c *Client) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	c.count(DeleteItem)
	if c.MeasureCapacity {
		cp := *in
		cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
		in = &cp
	}
	out, err := c.Client.DeleteItem(ctx, in, optFns...)
	if err == nil && c.MeasureCapacity {
		c.addCapacity(DeleteItem, out.ConsumedCapacity)
	}
	return out, c.refused(err)
}

func (c *Client) Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.count(Query)
	if in.Select == types.SelectCount {
		c.mu.Lock()
		c.selectCount++
		c.mu.Unlock()
	}
	if c.MeasureCapacity {
		cp := *in
		cp.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
		in = &cp
	}
	out, err := c.Client.Query(ctx, in, optFns...)
	if err == nil && in.Select == types.SelectCount {
		c.mu.Lock()
		c.counted += int64(out.ScannedCount)
		c.mu.Unlock()
	}
	if err == nil && c.MeasureCapacity {
		c.addCapacity(Query, out.ConsumedCapacity)
	}
	return out, err
}

func (c *Client) CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	c.count(CreateTable)
	return c.Client.CreateTable(ctx, in, optFns...)
}

func (c *Client) DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	c.count(DescribeTable)
	return c.Client.DescribeTable(ctx, in, optFns...)
}

func (c *Client) DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error) {
	c.count(DescribeTimeToLive)
	return c.Client.DescribeTimeToLive(ctx, in, optFns...)
}

func (c *Client) UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error) {
	c.count(UpdateTimeToLive)
	return c.Client.UpdateTimeToLive(ctx, in, optFns...)
}
