// Package ddbexpr builds the expressions of ddbtrack's conditional writes.
//
// DynamoDB refuses a request whose expression names a placeholder that has
// no value, and also one that carries a name or value the expression does
// not use. Writing the strings and the maps by hand invites both mistakes,
// so [Expr] derives the name map from the expressions themselves and
// [Expr.Build] checks the values against them.
//
// A tracker sends the same few kinds of write over and over, each with the
// same expressions and only its values changed. [Cache.Build] therefore
// writes out and checks each shape of expression once, and from then on
// only puts the values in a map.
package ddbexpr

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Expr collects the parts of an update and its condition. Attribute names
// are written as #name and values as :name; every #name stands for the
// attribute of the same name. The zero value is ready to use.
//
// Parts are kept as given and written out by Build, so that adding one
// allocates nothing beyond its share of one slice.
type Expr struct {
	parts []part
	cond  string
}

// kind is what a part adds to the expression.
type kind uint8

const (
	setAttr kind = iota + 1 // "#s = :s" to the SET clause, with v as :s
	setRaw                  // s, raw, to the SET clause
	remove                  // "#s" to the REMOVE clause
	addAttr                 // "#s :s" to the ADD clause, with v as :s
	value                   // v as the value of :s
)

// part is one call of Set, SetExpr, Remove (per attribute), Add or Value.
type part struct {
	kind kind
	s    string
	v    types.AttributeValue
}

// partsCap is the capacity of an Expr's first allocation of parts: enough
// for ddbtrack's largest writes (a claim or an outcome has about 20), so
// that they grow no slice.
const partsCap = 24

func (e *Expr) add(p part) *Expr {
	if e.parts == nil {
		e.parts = make([]part, 0, partsCap)
	}
	e.parts = append(e.parts, p)
	return e
}

// Set adds "#attr = :attr" to the SET clause with v as the value.
func (e *Expr) Set(attr string, v types.AttributeValue) *Expr {
	return e.add(part{kind: setAttr, s: attr, v: v})
}

// SetExpr adds a raw SET action, such as "#started_at = :now", whose values
// are given with [Expr.Value].
func (e *Expr) SetExpr(raw string) *Expr {
	return e.add(part{kind: setRaw, s: raw})
}

// Remove adds attributes to the REMOVE clause.
func (e *Expr) Remove(attrs ...string) *Expr {
	for _, a := range attrs {
		e.add(part{kind: remove, s: a})
	}
	return e
}

// Add adds "#attr :attr" to the ADD clause with v as the value.
func (e *Expr) Add(attr string, v types.AttributeValue) *Expr {
	return e.add(part{kind: addAttr, s: attr, v: v})
}

// Where sets the condition expression.
func (e *Expr) Where(cond string) *Expr {
	e.cond = cond
	return e
}

// Value gives the value of the placeholder :name. Each placeholder takes
// one value: Build refuses a second.
func (e *Expr) Value(name string, v types.AttributeValue) *Expr {
	return e.add(part{kind: value, s: name, v: v})
}

// Built holds the pieces of a request, ready to copy into an SDK input.
// Update is empty when the Expr had no actions. Built by a [Cache], Update,
// Condition and Names are shared by every request of the same shape, and
// must not be changed; Values is the request's own.
type Built struct {
	Update    *string
	Condition *string
	Names     map[string]string
	Values    map[string]types.AttributeValue
}

// Build returns the expressions with exactly the names and values they use.
// It fails when a placeholder has no value, has two, or a value is never
// used; each is a programming error that DynamoDB would otherwise report
// as a ValidationException after a round trip.
func (e *Expr) Build() (Built, error) {
	s, err := e.shape()
	if err != nil {
		return Built{}, err
	}
	return s.fill(e), nil
}

// shape is what Build derives from an Expr's parts and condition, apart
// from the values: the same for every Expr of the same parts.
type shape struct {
	parts  []part // the parts it was built from, without values
	cond   string
	update *string // nil if there are no actions
	condP  *string // nil if there is no condition
	names  map[string]string
	// keys holds, for each part, the placeholder its value fills
	// (":name"), or "" for a part without a value.
	keys    []string
	nvalues int
}

// fill returns the built expressions with e's values, which must have
// shape s.
func (s *shape) fill(e *Expr) Built {
	b := Built{Update: s.update, Condition: s.condP, Names: s.names}
	if s.nvalues > 0 {
		b.Values = make(map[string]types.AttributeValue, s.nvalues)
		for i, p := range e.parts {
			if k := s.keys[i]; k != "" {
				b.Values[k] = p.v
			}
		}
	}
	return b
}

// matches reports whether e has the parts and condition s was built from.
// The strings are nearly always the same constants, which compare by
// pointer and length without reading their bytes.
func (s *shape) matches(e *Expr) bool {
	if len(s.parts) != len(e.parts) || s.cond != e.cond {
		return false
	}
	for i, p := range e.parts {
		if q := s.parts[i]; p.kind != q.kind || p.s != q.s {
			return false
		}
	}
	return true
}

// shape writes out e's expressions and checks its values against them.
func (e *Expr) shape() (*shape, error) {
	update := e.update()
	s := &shape{cond: e.cond, parts: make([]part, len(e.parts)), keys: make([]string, len(e.parts))}
	if update != "" {
		s.update = &update
	}
	if e.cond != "" {
		cond := e.cond
		s.condP = &cond
	}
	if n := strings.Count(update, "#") + strings.Count(e.cond, "#"); n > 0 {
		s.names = make(map[string]string, n)
	}
	given := make(map[string]bool, len(e.parts))
	var errs []error
	for i, p := range e.parts {
		s.parts[i] = part{kind: p.kind, s: p.s}
		if p.kind == setRaw || p.kind == remove {
			continue
		}
		k := ":" + p.s
		if given[k] {
			errs = append(errs, fmt.Errorf("placeholder %s is given two values", k))
			continue
		}
		given[k] = true
		s.keys[i] = k
		s.nvalues++
	}
	// Every placeholder of the text must have a value, and every value a
	// placeholder.
	used := make(map[string]bool, len(given))
	check := func(tok string) {
		switch {
		case tok[0] == '#':
			s.names[tok] = tok[1:]
		case !given[tok]:
			if !used[tok] {
				errs = append(errs, fmt.Errorf("placeholder %s has no value", tok))
			}
			used[tok] = true
		default:
			used[tok] = true
		}
	}
	placeholders(update, check)
	placeholders(e.cond, check)
	for _, k := range slices.Sorted(maps.Keys(given)) {
		if !used[k] {
			errs = append(errs, fmt.Errorf("value %s is not used by the expression", k))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("ddbexpr: %q: %w", strings.TrimSpace(update+" "+e.cond), errors.Join(errs...))
	}
	return s, nil
}

// placeholders calls fn with each name (#word) and value placeholder
// (:word) of an expression's text, in order.
func placeholders(text string, fn func(tok string)) {
	for i := 0; i < len(text); i++ {
		if text[i] != '#' && text[i] != ':' {
			continue
		}
		j := i + 1
		for j < len(text) && isWord(text[j]) {
			j++
		}
		if j > i+1 {
			fn(text[i:j])
			i = j - 1
		}
	}
}

// update writes out the update expression, "" if it has no actions, with
// one allocation.
func (e *Expr) update() string {
	n := 0
	for _, p := range e.parts {
		switch p.kind {
		case setAttr, addAttr:
			n += 2*len(p.s) + len("# = :, ")
		case setRaw, remove:
			n += len(p.s) + len("#, ")
		}
	}
	if n == 0 {
		return ""
	}
	var sb strings.Builder
	sb.Grow(n + len("SET  REMOVE  ADD "))
	clause := func(name string, k1, k2 kind, write func(p part)) {
		first := true
		for _, p := range e.parts {
			if p.kind != k1 && p.kind != k2 {
				continue
			}
			switch {
			case !first:
				sb.WriteString(", ")
			case sb.Len() > 0:
				sb.WriteByte(' ')
				fallthrough
			default:
				sb.WriteString(name)
				sb.WriteByte(' ')
			}
			first = false
			write(p)
		}
	}
	clause("SET", setAttr, setRaw, func(p part) {
		if p.kind == setRaw {
			sb.WriteString(p.s)
			return
		}
		sb.WriteByte('#')
		sb.WriteString(p.s)
		sb.WriteString(" = :")
		sb.WriteString(p.s)
	})
	clause("REMOVE", remove, remove, func(p part) {
		sb.WriteByte('#')
		sb.WriteString(p.s)
	})
	clause("ADD", addAttr, addAttr, func(p part) {
		sb.WriteByte('#')
		sb.WriteString(p.s)
		sb.WriteString(" :")
		sb.WriteString(p.s)
	})
	return sb.String()
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Cache remembers the shapes of the expressions built through it, so that
// an Expr of a shape seen before costs only the map of its values. The
// zero value is ready to use; it is safe for concurrent use, and must not
// be copied after first use.
//
// A shape is looked up by a key derived from the parts' kinds and lengths,
// and then compared part by part, so two shapes with the same key are told
// apart, never confused.
type Cache struct {
	mu sync.Mutex // held to add shapes
	// shapes maps keys to the shapes with that key. It is replaced, never
	// changed, so that lookups take no lock.
	shapes atomic.Pointer[map[uint64][]*shape]
	n      int // shapes held, under mu
}

// maxShapes bounds what a Cache holds. A tracker's writes have a few dozen
// shapes; one that built expressions from changing text would otherwise
// grow the cache without end. Beyond the bound, Build still works, without
// remembering.
const maxShapes = 256

// Build is [Expr.Build], writing out and checking each shape of expression
// only the first time it sees it.
func (c *Cache) Build(e *Expr) (Built, error) {
	key := e.key()
	if m := c.shapes.Load(); m != nil {
		for _, s := range (*m)[key] {
			if s.matches(e) {
				return s.fill(e), nil
			}
		}
	}
	s, err := e.shape()
	if err != nil {
		return Built{}, err
	}
	c.remember(key, s)
	return s.fill(e), nil
}

// remember adds s, under key, to the shapes, unless the cache is full or
// another goroutine added the same shape meanwhile.
func (c *Cache) remember(key uint64, s *shape) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.shapes.Load()
	if c.n >= maxShapes {
		return
	}
	m := make(map[uint64][]*shape, c.n+1)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	for _, have := range m[key] {
		if have.cond == s.cond && partsEqual(have.parts, s.parts) {
			return
		}
	}
	m[key] = append(m[key][:len(m[key]):len(m[key])], s)
	c.n++
	c.shapes.Store(&m)
}

func partsEqual(a, b []part) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].kind != b[i].kind || a[i].s != b[i].s {
			return false
		}
	}
	return true
}

// key returns the key under which e's shape is cached: a hash of the
// parts' kinds and lengths, cheap to compute, which matches then confirms.
func (e *Expr) key() uint64 {
	h := uint64(len(e.cond))
	for _, p := range e.parts {
		h = h*0x100000001b3 ^ (uint64(p.kind)<<32 | uint64(len(p.s)))
	}
	return h
}
