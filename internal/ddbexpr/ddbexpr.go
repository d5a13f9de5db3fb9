// Package ddbexpr builds the expressions of ddbtrack's conditional writes.
//
// DynamoDB refuses a request whose expression names a placeholder that has
// no value, and also one that carries a name or value the expression does
// not use. Writing the strings and the maps by hand invites both mistakes,
// so [Expr] derives the name map from the expressions themselves and
// [Expr.Build] checks the values against them.
package ddbexpr

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Expr collects the parts of an update and its condition. Attribute names
// are written as #name and values as :name; every #name stands for the
// attribute of the same name. The zero value is ready to use.
type Expr struct {
	set, remove, add []string
	cond             string
	values           map[string]types.AttributeValue
}

// Set adds "#attr = :attr" to the SET clause with v as the value.
func (e *Expr) Set(attr string, v types.AttributeValue) *Expr {
	e.set = append(e.set, "#"+attr+" = :"+attr)
	return e.Value(attr, v)
}

// SetExpr adds a raw SET action, such as "#started_at = :now", whose values
// are given with [Expr.Value].
func (e *Expr) SetExpr(action string) *Expr {
	e.set = append(e.set, action)
	return e
}

// Remove adds attributes to the REMOVE clause.
func (e *Expr) Remove(attrs ...string) *Expr {
	for _, a := range attrs {
		e.remove = append(e.remove, "#"+a)
	}
	return e
}

// Add adds "#attr :attr" to the ADD clause with v as the value.
func (e *Expr) Add(attr string, v types.AttributeValue) *Expr {
	e.add = append(e.add, "#"+attr+" :"+attr)
	return e.Value(attr, v)
}

// Where sets the condition expression.
func (e *Expr) Where(cond string) *Expr {
	e.cond = cond
	return e
}

// Value gives the value of the placeholder :name.
func (e *Expr) Value(name string, v types.AttributeValue) *Expr {
	if e.values == nil {
		e.values = make(map[string]types.AttributeValue, 8)
	}
	e.values[":"+name] = v
	return e
}

// Built holds the pieces of a request, ready to copy into an SDK input.
// Update is empty when the Expr had no actions.
type Built struct {
	Update    *string
	Condition *string
	Names     map[string]string
	Values    map[string]types.AttributeValue
}

var (
	nameRE  = regexp.MustCompile(`#[A-Za-z0-9_]+`)
	valueRE = regexp.MustCompile(`:[A-Za-z0-9_]+`)
)

// Build returns the expressions with exactly the names and values they use.
// It fails when a placeholder has no value or a value is never used; both
// are programming errors that DynamoDB would otherwise report as a
// ValidationException after a round trip.
func (e *Expr) Build() (Built, error) {
	var clauses []string
	if len(e.set) > 0 {
		clauses = append(clauses, "SET "+strings.Join(e.set, ", "))
	}
	if len(e.remove) > 0 {
		clauses = append(clauses, "REMOVE "+strings.Join(e.remove, ", "))
	}
	if len(e.add) > 0 {
		clauses = append(clauses, "ADD "+strings.Join(e.add, ", "))
	}
	update := strings.Join(clauses, " ")
	all := update + " " + e.cond

	var b Built
	if update != "" {
		b.Update = &update
	}
	if e.cond != "" {
		cond := e.cond
		b.Condition = &cond
	}
	for _, n := range nameRE.FindAllString(all, -1) {
		if b.Names == nil {
			b.Names = make(map[string]string, 8)
		}
		b.Names[n] = n[1:]
	}
	used := make(map[string]bool, len(e.values))
	var errs []error
	for _, v := range valueRE.FindAllString(all, -1) {
		used[v] = true
		if _, ok := e.values[v]; !ok {
			errs = append(errs, fmt.Errorf("placeholder %s has no value", v))
		}
	}
	var unused []string
	for v := range e.values {
		if !used[v] {
			unused = append(unused, v)
		}
	}
	sort.Strings(unused)
	for _, v := range unused {
		errs = append(errs, fmt.Errorf("value %s is not used by the expression", v))
	}
	if len(errs) > 0 {
		return Built{}, fmt.Errorf("ddbexpr: %q: %w", strings.TrimSpace(all), errors.Join(errs...))
	}
	b.Values = e.values
	return b, nil
}
