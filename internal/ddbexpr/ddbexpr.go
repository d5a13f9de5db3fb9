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
	// Build runs for every write, so it scans the text by hand: the
	// regular expressions it used before were a third of a lifecycle's CPU
	// time against an in-memory client.
	var errs []error
	used := 0 // distinct :values used, counted at their first occurrence
	for i := 0; i < len(all); i++ {
		c := all[i]
		if c != '#' && c != ':' {
			continue
		}
		j := i + 1
		for j < len(all) && isWord(all[j]) {
			j++
		}
		if j == i+1 {
			continue
		}
		start, tok := i, all[i:j]
		i = j - 1
		if c == '#' {
			if b.Names == nil {
				b.Names = make(map[string]string, 8)
			}
			b.Names[tok] = tok[1:]
			continue
		}
		if _, ok := e.values[tok]; !ok {
			errs = append(errs, fmt.Errorf("placeholder %s has no value", tok))
		} else if !usesValue(all[:start], tok) {
			used++
		}
	}
	if used != len(e.values) {
		var unused []string
		for v := range e.values {
			if !usesValue(all, v) {
				unused = append(unused, v)
			}
		}
		sort.Strings(unused)
		for _, v := range unused {
			errs = append(errs, fmt.Errorf("value %s is not used by the expression", v))
		}
	}
	if len(errs) > 0 {
		return Built{}, fmt.Errorf("ddbexpr: %q: %w", strings.TrimSpace(all), errors.Join(errs...))
	}
	b.Values = e.values
	return b, nil
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// usesValue reports whether s contains the placeholder v as a whole token,
// not as the start of a longer one (":now" in ":nowhere").
func usesValue(s, v string) bool {
	for {
		i := strings.Index(s, v)
		if i < 0 {
			return false
		}
		if end := i + len(v); end == len(s) || !isWord(s[end]) {
			return true
		}
		s = s[i+len(v):]
	}
}
