package ddbtrack_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ddbtrack/ddbtrack"
	"github.com/ddbtrack/ddbtrack/internal/keys"
)

// baseline is what a careful user would write by hand with the raw SDK to
// get ddbtrack's guarantees and nothing else: the same item layout and the
// same three conditional writes (a conditional PutItem to create, an
// UpdateItem to claim under the same condition, an UpdateItem fenced by the
// lease token to finish). Expressions are constants and the attribute-name
// maps are built once; values are built per call, as they must be. It logs
// nothing, keeps no error history and explains no refusal.
//
// The benchmarks run it beside ddbtrack against the same server or stub,
// so the ratio between the two is ddbtrack's own cost.
type baseline struct {
	client ddbtrack.Client
	table  string
	job    string
	owner  string
	shards int
	lease  time.Duration
}

func newBaseline(client ddbtrack.Client, cfg ddbtrack.Config[Step]) *baseline {
	return &baseline{client: client, table: cfg.Table, job: cfg.Job, owner: "baseline-worker", shards: 2, lease: 15 * time.Minute}
}

const (
	baselineCreateCond  = "attribute_not_exists(#pk)"
	baselineClaimUpdate = "SET #status = :status, #status_name = :status_name, #status_key = :status_key, #due_at = :expires, #order_key = :order_key, " +
		"#updated_at = :now, #started_at = :now, #lease_owner = :owner, #lease_token = :token, #lease_expires_at = :expires ADD #attempts :one, #fence :one"
	baselineClaimCond     = "attribute_exists(#pk) AND ((#status IN (:pending, :failed) AND #due_at <= :now) OR (#status = :status AND #lease_expires_at < :now))"
	baselineSucceedUpdate = "SET #status = :status, #status_name = :status_name, #status_key = :status_key, #due_at = :now, #order_key = :order_key, " +
		"#updated_at = :now, #succeeded_at = :now, #attempts = :zero REMOVE #lease_owner, #lease_token, #lease_expires_at, #last_error, #output"
	baselineFinishCond = "#lease_token = :token"
)

var (
	baselineCreateNames = map[string]string{"#pk": "pk"}
	baselineClaimNames  = map[string]string{
		"#pk": "pk", "#status": "status", "#status_name": "status_name", "#status_key": "status_key", "#updated_at": "updated_at",
		"#due_at": "due_at", "#order_key": "order_key", "#started_at": "started_at", "#lease_owner": "lease_owner", "#lease_token": "lease_token",
		"#lease_expires_at": "lease_expires_at", "#attempts": "attempts", "#fence": "fence",
	}
	baselineSucceedNames = map[string]string{
		"#status": "status", "#status_name": "status_name", "#status_key": "status_key", "#updated_at": "updated_at",
		"#due_at": "due_at", "#order_key": "order_key", "#succeeded_at": "succeeded_at", "#attempts": "attempts", "#lease_owner": "lease_owner", "#lease_token": "lease_token",
		"#lease_expires_at": "lease_expires_at", "#last_error": "last_error", "#output": "output",
	}
)

func bN(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
func bS(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func (b *baseline) key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": bS(keys.Task(b.job, id))}
}

func (b *baseline) statusKey(id string, s Step) string {
	return keys.Status(b.job, int(s), keys.Shard(id, b.shards))
}

// create stores a Pending task with the same attributes ddbtrack writes,
// with data marshalled as ddbtrack's Create marshals it.
func (b *baseline) create(ctx context.Context, id string, data any) error {
	av, err := attributevalue.Marshal(data)
	if err != nil {
		return err
	}
	ms := time.Now().UnixMilli()
	now := bN(ms)
	item := map[string]types.AttributeValue{
		"pk": bS(keys.Task(b.job, id)), "job": bS(b.job), "task_id": bS(id),
		"attempts": bN(0), "fence": bN(0), "created_at": now, "updated_at": now, "due_at": now, "order_key": bS(keys.Order(ms, id)),
		"status": bN(int64(Todo)), "status_name": bS(Todo.String()), "status_key": bS(b.statusKey(id, Todo)),
	}
	if data != nil {
		item["data"] = av
	}
	_, err = b.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(b.table),
		Item:                     item,
		ConditionExpression:      aws.String(baselineCreateCond),
		ExpressionAttributeNames: baselineCreateNames,
	})
	return err
}

// start claims the task, runs fn with the task's stored data, and records
// the success, fenced by the token.
func (b *baseline) start(ctx context.Context, id string, fn func(data types.AttributeValue) error) error {
	now := time.Now()
	token := rand.Text()
	out, err := b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(b.table),
		Key:                      b.key(id),
		UpdateExpression:         aws.String(baselineClaimUpdate),
		ConditionExpression:      aws.String(baselineClaimCond),
		ExpressionAttributeNames: baselineClaimNames,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":status": bN(int64(InProgress)), ":status_name": bS(InProgress.String()), ":status_key": bS(b.statusKey(id, InProgress)),
			":now": bN(now.UnixMilli()), ":owner": bS(b.owner), ":token": bS(token),
			":expires": bN(now.Add(b.lease).UnixMilli()), ":one": bN(1), ":order_key": bS(keys.Order(now.Add(b.lease).UnixMilli(), id)),
			":pending": bN(int64(Todo)), ":failed": bN(int64(Failed)),
		},
		ReturnValues: types.ReturnValueAllNew,
	})
	if err != nil {
		return err
	}
	if err := fn(out.Attributes["data"]); err != nil {
		return errors.New("baseline: records successes only")
	}
	done := time.Now().UnixMilli()
	_, err = b.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(b.table),
		Key:                      b.key(id),
		UpdateExpression:         aws.String(baselineSucceedUpdate),
		ConditionExpression:      aws.String(baselineFinishCond),
		ExpressionAttributeNames: baselineSucceedNames,
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":status": bN(int64(Success)), ":status_name": bS(Success.String()), ":status_key": bS(b.statusKey(id, Success)),
			":now": bN(done), ":zero": bN(0), ":token": bS(token), ":order_key": bS(keys.Order(done, id)),
		},
	})
	return err
}

func nopData(types.AttributeValue) error { return nil }
