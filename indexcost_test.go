package ddbtrack_test

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/ddbtracktest"
	"github.com/ddbtrack/ddbtrack/internal/dev/reqcount"
)

// This file computes what the status index costs in write units, which no
// local server reports: dynalite and moto report the table's units only.
// It sizes the items a task's life writes by DynamoDB's rules, then applies
// DynamoDB's rules for a global secondary index to them, for the index as
// it is (every attribute projected) and for a slim projection without the
// task's data, output and error history (issue 15, point 3).

// writeUnits is the write units of writing size bytes: one per KB started,
// at least one.
func writeUnits(size int) int { return max(1, (size+1023)/1024) }

// The status index's key attributes, and the table's key, which every
// index entry holds whatever the projection.
var indexKeys = []string{"pk", "status_key", "order_key"}

// projection says which attributes of an item its index entry holds.
type projection struct {
	name    string
	without []string // attributes left out; none for the full projection
}

var (
	fullProjection = projection{name: "full (ALL)"}
	// slimProjection leaves out what decodeTask leaves empty for an item
	// read through a slim index: the data, the output and the error
	// history.
	slimProjection = projection{name: "slim", without: []string{"data", "output", "errors"}}
)

// entry returns the index entry of an item, or nil if the item is not in
// the index (it lacks a key attribute, or there is no item).
func (p projection) entry(item map[string]types.AttributeValue) map[string]types.AttributeValue {
	for _, k := range indexKeys {
		if item[k] == nil {
			return nil
		}
	}
	e := maps.Clone(item)
	for _, name := range p.without {
		delete(e, name)
	}
	return e
}

// indexWriteUnits is what a write that turned the item before into after
// costs the index, by DynamoDB's rules for global secondary indexes: a put
// when an entry appears, a delete when one goes, a delete and a put when
// its key changes, each at the size of the entry it writes or deletes; an
// update in place when only projected attributes change, at the larger of
// the entry's sizes before and after, as for the table; nothing otherwise.
func (p projection) indexWriteUnits(before, after map[string]types.AttributeValue) int {
	old, cur := p.entry(before), p.entry(after)
	switch {
	case old == nil && cur == nil:
		return 0
	case old == nil:
		return writeUnits(ddbtrack.ItemSize(cur))
	case cur == nil:
		return writeUnits(ddbtrack.ItemSize(old))
	}
	for _, k := range indexKeys[1:] {
		if !attrEqual(old[k], cur[k]) {
			return writeUnits(ddbtrack.ItemSize(old)) + writeUnits(ddbtrack.ItemSize(cur))
		}
	}
	if maps.EqualFunc(old, cur, attrEqual) {
		return 0
	}
	return writeUnits(max(ddbtrack.ItemSize(old), ddbtrack.ItemSize(cur)))
}

func attrEqual(a, b types.AttributeValue) bool {
	return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b)
}

// lifecycleStep is one write of a task's life, with the item before and
// after it and the table's write units the server reported (-1 when it
// reported none, such as for a step computed here rather than sent).
type lifecycleStep struct {
	name          string
	before, after map[string]types.AttributeValue
	reported      float64
}

// tableUnits is the step's table write units by DynamoDB's rule: the larger
// of the item's sizes before and after.
func (s lifecycleStep) tableUnits() int {
	return writeUnits(max(ddbtrack.ItemSize(s.before), ddbtrack.ItemSize(s.after)))
}

// TestIndexWriteUnits computes the write units of a task's normal life
// (create, claim, success) and of one lease renewal, on the table and on
// the status index under the full and the slim projection, for tasks with
// 200 bytes, 1 KB and 20 KB of data and no output. The items are the ones
// ddbtrack writes, read back after each step; on dynalite the table units
// computed from their sizes must equal the units the server reports, which
// checks the size rules. The renewal, which sets only lease_expires_at
// (lock.go's renewWrite), is computed from the claimed item. Run with -v
// for the table:
//
//	go test -run TestIndexWriteUnits -v .
func TestIndexWriteUnits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := config(t)
	newTracker(t, cfg)
	rc := reqcount.New(ddbtracktest.Client(t))
	rc.MeasureCapacity = true
	tr, err := ddbtrack.New(rc, cfg)
	require.NoError(t, err)
	raw := func(id string) map[string]types.AttributeValue {
		out, err := ddbtracktest.Client(t).GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(cfg.Table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: cfg.Job + "#" + id}},
		})
		require.NoError(t, err)
		require.NotNil(t, out.Item, "task %s", id)
		return out.Item
	}
	// written returns the table units the server reported since the last
	// call.
	var last float64
	written := func() float64 {
		units := rc.CapacityUnits()
		total := units[reqcount.PutItem] + units[reqcount.UpdateItem]
		d := total - last
		last = total
		return d
	}

	var report strings.Builder
	report.WriteString("\n| data | step | item bytes after | table WRU | index WRU, full | index WRU, slim |\n| --- | --- | ---: | ---: | ---: | ---: |\n")
	for _, tc := range []struct {
		name               string
		dataBytes          int
		fullLife, slimLife int // index units of create + claim + success
	}{
		{"200 B", 200, 5, 5},
		{"1 KB", 1 << 10, 10, 5},
		{"20 KB", 20 << 10, 105, 5},
	} {
		id := "task-" + strings.ReplaceAll(tc.name, " ", "")
		var steps []lifecycleStep
		require.NoError(t, tr.Create(ctx, ddbtrack.NewTask{ID: id, Data: map[string]string{"blob": strings.Repeat("x", tc.dataBytes)}}))
		created := raw(id)
		steps = append(steps, lifecycleStep{"create", nil, created, written()})
		var claimed map[string]types.AttributeValue
		var claimUnits float64
		require.NoError(t, tr.Start(ctx, id, func(context.Context, *ddbtrack.Task[Step]) error {
			claimUnits = written()
			claimed = raw(id)
			return nil
		}))
		steps = append(steps, lifecycleStep{"claim", created, claimed, claimUnits})
		steps = append(steps, lifecycleStep{"success", claimed, raw(id), written()})
		renewed := maps.Clone(claimed)
		expires, err := strconv.ParseInt(claimed["lease_expires_at"].(*types.AttributeValueMemberN).Value, 10, 64)
		require.NoError(t, err)
		renewed["lease_expires_at"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(expires+5*60*1000, 10)}
		renewal := lifecycleStep{"renewal (computed)", claimed, renewed, -1}

		var table, full, slim int
		for _, s := range append(steps, renewal) {
			f, sl := fullProjection.indexWriteUnits(s.before, s.after), slimProjection.indexWriteUnits(s.before, s.after)
			fmt.Fprintf(&report, "| %s | %s | %d | %d | %d | %d |\n", tc.name, s.name, ddbtrack.ItemSize(s.after), s.tableUnits(), f, sl)
			if s.reported >= 0 {
				table, full, slim = table+s.tableUnits(), full+f, slim+sl
				if serverKind() == "dynalite" {
					require.Equal(t, float64(s.tableUnits()), s.reported,
						"%s, %s: the table units computed from the item's size differ from dynalite's", tc.name, s.name)
				}
			}
		}
		fmt.Fprintf(&report, "| %s | **normal life** | | **%d** | **%d** | **%d** |\n", tc.name, table, full, slim)
		require.Equal(t, tc.fullLife, full, "%s: index units of a normal life, full projection", tc.name)
		require.Equal(t, tc.slimLife, slim, "%s: index units of a normal life, slim projection", tc.name)
	}
	t.Log(report.String())
}

// TestNumberSize checks numberSize against the sizes dynalite's formula
// gives, which follows DynamoDB's.
func TestNumberSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"0", 1},
		{"1", 2},
		{"10", 2},
		{"12", 2},
		{"123", 3},
		{"12345", 4},
		{"-1", 3},
		{"-12.5", 4},
		{"0.05", 2},
		{"1764000000000", 4},
		{"1764012345670", 8},
		{"1764012345678", 8},
	} {
		require.Equal(t, tc.want, ddbtrack.NumberSize(tc.in), "numberSize(%s)", tc.in)
	}
}
