// Package ddbstub is an in-process, in-memory stand-in for DynamoDB that
// implements just enough of [ddbtrack.Client] for a task's whole lifecycle:
// CreateTable, DescribeTable, GetItem, PutItem, UpdateItem and DeleteItem,
// with their condition and update expressions evaluated as DynamoDB
// evaluates them, ReturnValues NONE, ALL_OLD and ALL_NEW, and the refusing
// item returned with a ConditionalCheckFailedException on request.
//
// It exists to measure ddbtrack's own CPU time and allocations without a
// server, a network or the SDK's serialization in the way: a benchmark that
// drives it measures the caller's code plus the stub's small, constant
// cost. It is not an emulator: it has no secondary indexes, no Query, no
// size limits, no capacity accounting, and it supports only the subset of
// the expression language listed in expr.go. What it does not support it
// refuses with a ValidationException that says so; methods of
// ddbtrack.Client it does not implement at all panic.
//
// Items are stored as given and returned as shallow copies: callers must not
// modify the attribute values inside them, which the SDK's own callers never
// do.
package ddbstub

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/ddbtrack/ddbtrack"
)

// Stub is the in-memory store. The zero value is not usable; call [New].
// Its methods are safe for concurrent use; each request is applied
// atomically, as in DynamoDB.
type Stub struct {
	// Client is nil: it only makes Stub satisfy ddbtrack.Client when that
	// interface gains methods the stub does not implement. Calling one
	// panics.
	ddbtrack.Client

	// ReturnRefusedItem controls whether a refused write returns the item
	// when asked to (ReturnValuesOnConditionCheckFailure ALL_OLD). DynamoDB
	// and moto do; dynalite does not. Defaults to true in New.
	ReturnRefusedItem bool

	mu     sync.Mutex
	tables map[string]*table

	// exprs caches parsed expressions by their text. ddbtrack builds the
	// same few strings again and again, so after the first request of each
	// kind the stub's cost is a map lookup, not a parse.
	exprs sync.Map // string -> *parsed
}

type table struct {
	desc  types.TableDescription
	hash  string
	rang  string
	items map[string]map[string]types.AttributeValue
}

type parsed struct {
	cond   cond
	update *update
	ph     placeholders
	err    error
}

var _ ddbtrack.Client = (*Stub)(nil)

// New returns an empty stub.
func New() *Stub {
	return &Stub{ReturnRefusedItem: true, tables: map[string]*table{}}
}

func validation(format string, args ...any) error {
	return &smithy.GenericAPIError{Code: "ValidationException", Message: "ddbstub: " + fmt.Sprintf(format, args...), Fault: smithy.FaultClient}
}

func (s *Stub) table(name *string) (*table, error) {
	t, ok := s.tables[aws.ToString(name)]
	if !ok {
		return nil, &types.ResourceNotFoundException{Message: aws.String("ddbstub: no table " + aws.ToString(name) + ": create it first")}
	}
	return t, nil
}

// key encodes an item's primary key.
func (t *table) key(item map[string]types.AttributeValue) (string, error) {
	k, err := keyPart(item, t.hash)
	if err != nil || t.rang == "" {
		return k, err
	}
	r, err := keyPart(item, t.rang)
	return k + "\x00" + r, err
}

func keyPart(item map[string]types.AttributeValue, name string) (string, error) {
	switch v := item[name].(type) {
	case *types.AttributeValueMemberS:
		return "S" + v.Value, nil
	case *types.AttributeValueMemberN:
		return "N" + v.Value, nil
	case *types.AttributeValueMemberB:
		return "B" + string(v.Value), nil
	}
	return "", validation("the key attribute %s is missing or not a string, number or binary", name)
}

func (s *Stub) CreateTable(_ context.Context, in *dynamodb.CreateTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := aws.ToString(in.TableName)
	if _, ok := s.tables[name]; ok {
		return nil, &types.ResourceInUseException{Message: aws.String("ddbstub: table " + name + " exists")}
	}
	t := &table{items: map[string]map[string]types.AttributeValue{}}
	for _, k := range in.KeySchema {
		if k.KeyType == types.KeyTypeHash {
			t.hash = aws.ToString(k.AttributeName)
		} else {
			t.rang = aws.ToString(k.AttributeName)
		}
	}
	if t.hash == "" {
		return nil, validation("CreateTable needs a HASH key")
	}
	var gsis []types.GlobalSecondaryIndexDescription
	for _, g := range in.GlobalSecondaryIndexes {
		gsis = append(gsis, types.GlobalSecondaryIndexDescription{
			IndexName: g.IndexName, KeySchema: g.KeySchema, Projection: g.Projection, IndexStatus: types.IndexStatusActive,
		})
	}
	t.desc = types.TableDescription{
		TableName:              in.TableName,
		TableStatus:            types.TableStatusActive,
		KeySchema:              in.KeySchema,
		AttributeDefinitions:   in.AttributeDefinitions,
		GlobalSecondaryIndexes: gsis,
	}
	s.tables[name] = t
	desc := t.desc
	return &dynamodb.CreateTableOutput{TableDescription: &desc}, nil
}

func (s *Stub) DescribeTable(_ context.Context, in *dynamodb.DescribeTableInput, _ ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.table(in.TableName)
	if err != nil {
		return nil, err
	}
	desc := t.desc
	return &dynamodb.DescribeTableOutput{Table: &desc}, nil
}

func (s *Stub) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.table(in.TableName)
	if err != nil {
		return nil, err
	}
	k, err := t.key(in.Key)
	if err != nil {
		return nil, err
	}
	return &dynamodb.GetItemOutput{Item: maps.Clone(t.items[k])}, nil
}

func (s *Stub) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, k, old, err := s.target(in.TableName, in.Item)
	if err != nil {
		return nil, err
	}
	if err := s.check(in.ConditionExpression, nil, old, in.ExpressionAttributeNames, in.ExpressionAttributeValues, in.ReturnValuesOnConditionCheckFailure); err != nil {
		return nil, err
	}
	attrs, err := returned("PutItem", in.ReturnValues, old, nil)
	if err != nil {
		return nil, err
	}
	t.items[k] = maps.Clone(in.Item)
	return &dynamodb.PutItemOutput{Attributes: attrs}, nil
}

func (s *Stub) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, k, old, err := s.target(in.TableName, in.Key)
	if err != nil {
		return nil, err
	}
	if in.UpdateExpression == nil {
		return nil, validation("UpdateItem needs an UpdateExpression")
	}
	if err := s.check(in.ConditionExpression, in.UpdateExpression, old, in.ExpressionAttributeNames, in.ExpressionAttributeValues, in.ReturnValuesOnConditionCheckFailure); err != nil {
		return nil, err
	}
	u := s.parse(*in.UpdateExpression, false)
	base := old
	if base == nil {
		// An update of a missing item creates it from its key.
		base = maps.Clone(in.Key)
	}
	item, err := u.update.apply(&env{item: base, names: in.ExpressionAttributeNames, values: in.ExpressionAttributeValues})
	if err != nil {
		return nil, err
	}
	for name, v := range in.Key {
		if !equal(item[name], v) {
			return nil, validation("UpdateItem may not change the key attribute %s", name)
		}
	}
	attrs, err := returned("UpdateItem", in.ReturnValues, old, item)
	if err != nil {
		return nil, err
	}
	t.items[k] = item
	return &dynamodb.UpdateItemOutput{Attributes: attrs}, nil
}

func (s *Stub) DeleteItem(_ context.Context, in *dynamodb.DeleteItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, k, old, err := s.target(in.TableName, in.Key)
	if err != nil {
		return nil, err
	}
	if err := s.check(in.ConditionExpression, nil, old, in.ExpressionAttributeNames, in.ExpressionAttributeValues, in.ReturnValuesOnConditionCheckFailure); err != nil {
		return nil, err
	}
	attrs, err := returned("DeleteItem", in.ReturnValues, old, nil)
	if err != nil {
		return nil, err
	}
	delete(t.items, k)
	return &dynamodb.DeleteItemOutput{Attributes: attrs}, nil
}

// target finds the table a write names, the key of the item it addresses
// and the item stored there, if any. The caller holds s.mu.
func (s *Stub) target(name *string, key map[string]types.AttributeValue) (*table, string, map[string]types.AttributeValue, error) {
	t, err := s.table(name)
	if err != nil {
		return nil, "", nil, err
	}
	k, err := t.key(key)
	if err != nil {
		return nil, "", nil, err
	}
	return t, k, t.items[k], nil
}

// returned gives the attributes a write returns for ReturnValues rv: none,
// the item before it, or the item after it, which only UpdateItem has
// (item is nil for the others).
func returned(op string, rv types.ReturnValue, old, item map[string]types.AttributeValue) (map[string]types.AttributeValue, error) {
	switch {
	case rv == types.ReturnValueNone || rv == "":
		return nil, nil
	case rv == types.ReturnValueAllOld:
		return maps.Clone(old), nil
	case rv == types.ReturnValueAllNew && item != nil:
		return maps.Clone(item), nil
	}
	if item != nil {
		return nil, validation("%s supports ReturnValues NONE, ALL_OLD and ALL_NEW, not %s", op, rv)
	}
	return nil, validation("%s supports ReturnValues NONE and ALL_OLD, not %s", op, rv)
}

func (s *Stub) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return nil, validation("Query is not implemented: ddbstub has no indexes; use a local server (internal/ddbtest) for queries")
}

// parse returns the cached parse of an expression.
func (s *Stub) parse(src string, isCond bool) *parsed {
	if p, ok := s.exprs.Load(src); ok {
		return p.(*parsed)
	}
	p := &parsed{}
	if isCond {
		p.cond, p.ph, p.err = parseCondition(src)
	} else {
		p.update, p.ph, p.err = parseUpdate(src)
	}
	s.exprs.Store(src, p)
	return p
}

// check parses the request's expressions, refuses names and values they do
// not use (as DynamoDB does), and evaluates the condition against old.
func (s *Stub) check(condExpr, updateExpr *string, old map[string]types.AttributeValue,
	names map[string]string, values map[string]types.AttributeValue, rv types.ReturnValuesOnConditionCheckFailure) error {
	var c, u *parsed
	if condExpr != nil {
		c = s.parse(*condExpr, true)
		if c.err != nil {
			return c.err
		}
	}
	if updateExpr != nil {
		u = s.parse(*updateExpr, false)
		if u.err != nil {
			return u.err
		}
	}
	for n := range names {
		if !(c != nil && c.ph.names[n]) && !(u != nil && u.ph.names[n]) {
			return validation("ExpressionAttributeNames has %s, which no expression uses", n)
		}
	}
	for v := range values {
		if !(c != nil && c.ph.values[v]) && !(u != nil && u.ph.values[v]) {
			return validation("ExpressionAttributeValues has %s, which no expression uses", v)
		}
	}
	if c == nil {
		return nil
	}
	ok, err := c.cond.eval(&env{item: old, names: names, values: values})
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	ccf := &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}
	if s.ReturnRefusedItem && rv == types.ReturnValuesOnConditionCheckFailureAllOld {
		ccf.Item = maps.Clone(old)
	}
	return ccf
}
