package ddbtrack

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Count returns the number of tasks in status. It sends a Select=COUNT
// query to each of the status's index partitions, several at once, and
// follows each one's pages; it never scans the table.
//
// A COUNT query returns no items, but DynamoDB still reads every item it
// counts: its cost in read units, and its time, grow with the number of
// tasks in the status (see the package documentation). The index is
// eventually consistent, so a status change of the last moment may not be
// counted yet.
func (t *Tracker[S]) Count(ctx context.Context, status S) (int64, error) {
	counts, err := t.count(ctx, []S{status})
	if err != nil {
		return 0, err
	}
	return counts[status], nil
}

// Stats returns the number of tasks in each of the job's statuses: the
// five roles of Config and every status in Config.Startable, each present
// even when its count is zero. It counts as [Tracker.Count] does, with the
// queries of all statuses and shards sharing one bound on requests in
// flight.
//
// Statuses outside Config, such as another pipeline step's, are not
// counted; use Count for them.
func (t *Tracker[S]) Stats(ctx context.Context) (map[S]int64, error) {
	statuses := []S{t.cfg.Pending, t.cfg.Running, t.cfg.Failed, t.cfg.Succeeded, t.cfg.Ignored}
	statuses = append(statuses, t.cfg.Startable...)
	return t.count(ctx, statuses)
}

// count counts the tasks in every partition of statuses.
func (t *Tracker[S]) count(ctx context.Context, statuses []S) (map[S]int64, error) {
	parts, err := t.partitions(statuses, time.Time{})
	if err != nil {
		return nil, err
	}
	counts := make(map[S]int64, len(statuses))
	for _, s := range statuses {
		counts[s] = 0
	}
	var mu sync.Mutex
	err = fanOut(ctx, len(parts), func(ctx context.Context, i int) error {
		n, err := t.countPartition(ctx, parts[i])
		if err != nil {
			return err
		}
		mu.Lock()
		counts[S(parts[i].status)] += n
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// countPartition counts one index partition, page by page: DynamoDB stops
// a COUNT query's page after reading 1 MB, as it does any query's.
func (t *Tracker[S]) countPartition(ctx context.Context, part partition) (int64, error) {
	e, err := expression.NewBuilder().
		WithKeyCondition(expression.Key("status_key").Equal(expression.Value(part.key(t.cfg.Job)))).
		Build()
	if err != nil {
		return 0, fmt.Errorf("ddbtrack: build the count query of %s: %w", part.key(t.cfg.Job), err)
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(t.cfg.Table),
		IndexName:                 aws.String(IndexName),
		KeyConditionExpression:    e.KeyCondition(),
		ExpressionAttributeNames:  e.Names(),
		ExpressionAttributeValues: e.Values(),
		Select:                    types.SelectCount,
	}
	var n int64
	for {
		out, err := t.client.Query(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("ddbtrack: count index %s, partition %s: %w", IndexName, part.key(t.cfg.Job), err)
		}
		n += int64(out.Count)
		if len(out.LastEvaluatedKey) == 0 {
			return n, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}
