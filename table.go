package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// indexName is the name of the status index, the global secondary index
// that every status query reads.
const indexName = "status-index"

// CreateTableInput returns the request that creates the tracker's table:
// a string partition key "pk", and the status index keyed by "status_key"
// (job, status and shard) and "order_key" (the task's due time as 15 zero-
// padded digits of epoch milliseconds, "#", and its ID), projecting all
// attributes so that a listing needs no read per row, or, with
// Config.SlimIndex, only those a listing shows. Billing is pay-per-request.
// Infrastructure-as-code users can copy the schema from it.
func (t *Tracker[S]) CreateTableInput() *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(t.cfg.Table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrStatusKey), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrOrderKey), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(indexName),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(attrStatusKey), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(attrOrderKey), KeyType: types.KeyTypeRange},
			},
			Projection: t.projection(),
		}},
	}
}

// projection is the status index's projection for the Config.
func (t *Tracker[S]) projection() *types.Projection {
	if !t.cfg.SlimIndex {
		return &types.Projection{ProjectionType: types.ProjectionTypeAll}
	}
	return &types.Projection{ProjectionType: types.ProjectionTypeInclude, NonKeyAttributes: slimAttrs}
}

// CreateTable creates the table and its status index, waits until the
// table is active, and records the tracker's job in it (see Tracker.Jobs). A table that already exists with the right schema is
// left as it is; one with another schema gives an error matching
// ErrTableSchema. With Config.Retention set, it also turns time to live on
// for "expires_at", on a new table or an existing one.
func (t *Tracker[S]) CreateTable(ctx context.Context) error {
	in := t.CreateTableInput()
	_, err := t.client.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	switch {
	case errors.As(err, &inUse):
		out, err := t.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName})
		if err != nil {
			return fmt.Errorf("ddbtrack: describe existing table %q: %w", t.cfg.Table, err)
		}
		if err := checkSchema(out.Table, t.cfg.SlimIndex); err != nil {
			return fmt.Errorf("%w: table %q: %v; use another Config.Table for a new table, or copy the tasks to a table that CreateTable made", ErrTableSchema, t.cfg.Table, err)
		}
	case err != nil:
		return fmt.Errorf("ddbtrack: create table %q: %w", t.cfg.Table, err)
	}
	// The SDK's waiter defaults to a 20-second minimum delay, tuned for
	// AWS; a local server is ready in milliseconds.
	w := dynamodb.NewTableExistsWaiter(t.client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 2*time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName}, 5*time.Minute); err != nil {
		return fmt.Errorf("ddbtrack: wait for table %q to become active: %w", t.cfg.Table, err)
	}
	if t.cfg.Retention > 0 {
		if err := t.enableTTL(ctx); err != nil {
			return err
		}
	}
	if err := t.register(ctx); err != nil {
		return err
	}
	t.log.InfoContext(ctx, "table ready", logTable, t.cfg.Table)
	return nil
}

// enableTTL turns time to live on for attrExpiresAt. A server without time
// to live, such as dynalite, gets a warning rather than an error: tasks
// still carry their expiry, and are kept until someone deletes them, which
// is what a local test server should do anyway.
func (t *Tracker[S]) enableTTL(ctx context.Context) error {
	name := aws.String(t.cfg.Table)
	out, err := t.client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: name})
	switch {
	case unsupported(err):
	case err != nil:
		return fmt.Errorf("ddbtrack: describe time to live of table %q: %w", t.cfg.Table, err)
	case out.TimeToLiveDescription != nil:
		d := out.TimeToLiveDescription
		if d.TimeToLiveStatus != types.TimeToLiveStatusEnabled && d.TimeToLiveStatus != types.TimeToLiveStatusEnabling {
			break
		}
		if got := aws.ToString(d.AttributeName); got != attrExpiresAt {
			return fmt.Errorf("%w: table %q expires items by attribute %q, but Config.Retention writes %q and a table has only one: "+
				"turn its time to live off, or set Retention to 0 and expire tasks yourself", ErrTableSchema, t.cfg.Table, got, attrExpiresAt)
		}
		return nil
	}
	_, err = t.client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: name,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrExpiresAt),
			Enabled:       aws.Bool(true),
		},
	})
	switch {
	case unsupported(err):
		t.log.WarnContext(ctx, "the server has no time to live; succeeded tasks are kept beyond Config.Retention", logTable, t.cfg.Table)
		return nil
	case err != nil:
		return fmt.Errorf("ddbtrack: turn on time to live for table %q, which Config.Retention needs: %w", t.cfg.Table, err)
	}
	t.log.InfoContext(ctx, "time to live on", logTable, t.cfg.Table, logAttribute, attrExpiresAt, logRetention, t.cfg.Retention)
	return nil
}

// unsupported reports whether err is a server saying it does not know the
// operation, as DynamoDB-compatible servers do for what they leave out.
func unsupported(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "UnknownOperationException"
}

// checkSchema compares an existing table with the one CreateTableInput
// describes. Only keys matter; billing mode and extra indexes are the
// owner's business.
func checkSchema(d *types.TableDescription, slim bool) error {
	if d == nil {
		return errors.New("DescribeTable returned no description")
	}
	attrTypes := map[string]types.ScalarAttributeType{}
	for _, a := range d.AttributeDefinitions {
		attrTypes[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	if got := keySchema(d.KeySchema, attrTypes); got != "pk:S:HASH" {
		return fmt.Errorf("its key is %s, not pk:S:HASH", got)
	}
	for _, g := range d.GlobalSecondaryIndexes {
		if aws.ToString(g.IndexName) != indexName {
			continue
		}
		got, want := keySchema(g.KeySchema, attrTypes), "status_key:S:HASH order_key:S:RANGE"
		if got == "status_key:S:HASH updated_at:N:RANGE" {
			return fmt.Errorf("its index %s has the key of an earlier ddbtrack (%s), which cannot order tasks by due time", indexName, got)
		}
		if got != want {
			return fmt.Errorf("its index %s has key %s, not %s", indexName, got, want)
		}
		return checkProjection(g.Projection, slim)
	}
	return fmt.Errorf("it has no global secondary index named %s", indexName)
}

// checkProjection reports an index that holds less than a Config needs:
// every attribute, or, with SlimIndex, those of a slim index. An index that
// holds more than a slim Config needs works, at a higher cost per write.
func checkProjection(p *types.Projection, slim bool) error {
	if p == nil {
		return fmt.Errorf("its index %s has no projection", indexName)
	}
	if p.ProjectionType == types.ProjectionTypeAll {
		return nil
	}
	if !slim {
		return fmt.Errorf("its index %s holds only some attributes (%s), as a slim index does: set Config.SlimIndex to use it", indexName, p.ProjectionType)
	}
	held := map[string]bool{}
	for _, a := range p.NonKeyAttributes {
		held[a] = true
	}
	for _, a := range slimAttrs {
		if !held[a] {
			return fmt.Errorf("its index %s does not hold %s, which a slim index needs", indexName, a)
		}
	}
	return nil
}

func keySchema(ks []types.KeySchemaElement, attrTypes map[string]types.ScalarAttributeType) string {
	s := ""
	for i, k := range ks {
		if i > 0 {
			s += " "
		}
		name := aws.ToString(k.AttributeName)
		s += fmt.Sprintf("%s:%s:%s", name, attrTypes[name], k.KeyType)
	}
	return s
}
