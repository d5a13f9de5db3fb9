package ddbtrack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// IndexName is the name of the status index, the global secondary index
// that every status query reads.
const IndexName = "status-index"

// CreateTableInput returns the request that creates the tracker's table:
// a string partition key "pk", and the status index keyed by "status_key"
// (job, status and shard) and "updated_at" (epoch milliseconds), projecting
// all attributes so that a listing needs no read per row. Billing is
// pay-per-request. Infrastructure-as-code users can copy the schema from it.
func (t *Tracker[S]) CreateTableInput() *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName:   aws.String(t.cfg.Table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("status_key"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("updated_at"), AttributeType: types.ScalarAttributeTypeN},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName: aws.String(IndexName),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String("status_key"), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String("updated_at"), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	}
}

// CreateTable creates the table and its status index, and waits until the
// table is active. A table that already exists with the right schema is
// left as it is; one with another schema gives an error matching
// ErrTableSchema.
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
		if err := checkSchema(out.Table); err != nil {
			return fmt.Errorf("%w: table %q: %v; use another Config.Table, or migrate the data to a table created by CreateTable", ErrTableSchema, t.cfg.Table, err)
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
	t.log.Info("table ready", "table", t.cfg.Table)
	return nil
}

// checkSchema compares an existing table with the one CreateTableInput
// describes. Only keys matter; billing mode and extra indexes are the
// owner's business.
func checkSchema(d *types.TableDescription) error {
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
		if aws.ToString(g.IndexName) != IndexName {
			continue
		}
		if got, want := keySchema(g.KeySchema, attrTypes), "status_key:S:HASH updated_at:N:RANGE"; got != want {
			return fmt.Errorf("its index %s has key %s, not %s", IndexName, got, want)
		}
		if g.Projection == nil || g.Projection.ProjectionType != types.ProjectionTypeAll {
			return fmt.Errorf("its index %s does not project all attributes", IndexName)
		}
		return nil
	}
	return fmt.Errorf("it has no global secondary index named %s", IndexName)
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
